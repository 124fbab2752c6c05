"""Precision from this machine's hardware: the CPU probe, the forced "no native bf16" path, and what TRL and
the transformers engine get from it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bard_core.config import HFEngineConfig, SFTStageConfig
from bard_core.precision import Precision
from bard_pipeline.infra.precision import NATIVE_BF16_ENV, cpu_hardware, parse_cpuinfo, training_precision
from bard_pipeline.infra.training import trl_args

XEON = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_bf16 amx_tile
"""
EPYC = """processor\t: 0
model name\t: AMD EPYC 7B13
flags\t\t: fpu sse2 avx2 fma
"""
GRAVITON = """processor\t: 0
Features\t: fp asimd bf16 i8mm
CPU implementer\t: 0x41
"""


def test_cpuinfo_flags_are_read_for_x86_and_arm() -> None:
    assert parse_cpuinfo(XEON) == (
        "Intel(R) Xeon(R) Processor",
        {"fpu", "sse2", "avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"},
    )
    assert "bf16" not in parse_cpuinfo(EPYC)[1] and "avx512_bf16" not in parse_cpuinfo(EPYC)[1]
    assert "bf16" in parse_cpuinfo(GRAVITON)[1]


def test_trl_defaults_to_bf16_so_the_pipeline_must_decide(tmp_path: Path) -> None:
    import trl

    # The library default this guards against: bf16 autocast even on a CPU that emulates it.
    assert trl.SFTConfig(output_dir=str(tmp_path), use_cpu=True).bf16 is True


def test_a_cpu_without_native_bf16_gets_an_fp32_trl_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    hardware = cpu_hardware()
    assert hardware.native_bf16 is False and hardware.forced
    section = SFTStageConfig(trl={"max_steps": 1})
    choice = training_precision(section.trl, use_gpu=False)
    assert choice.precision is Precision.FP32 and choice.source == "hardware"
    args = trl_args(section, str(tmp_path), True, choice)
    assert args.bf16 is False and args.fp16 is False


def test_native_bf16_trains_in_bf16_and_an_explicit_setting_is_honoured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    args = trl_args(SFTStageConfig(), str(tmp_path), True, training_precision({}, use_gpu=False))
    assert args.bf16 is True
    monkeypatch.setenv(NATIVE_BF16_ENV, "0")
    explicit = SFTStageConfig(trl={"bf16": True})  # sft.trl.bf16=true on a CPU without native bf16
    choice = training_precision(explicit.trl, use_gpu=False)
    assert choice.source == "recipe" and trl_args(explicit, str(tmp_path), True, choice).bf16 is True
    monkeypatch.setenv(NATIVE_BF16_ENV, "1")
    off = SFTStageConfig(trl={"bf16": False})
    assert trl_args(off, str(tmp_path), True, training_precision(off.trl, use_gpu=False)).bf16 is False


@pytest.mark.parametrize(("native", "dtype"), [("0", "float32"), ("1", "bfloat16")])
def test_the_transformers_engine_loads_weights_at_the_resolved_precision(
    toy_model_dir: Path, monkeypatch: pytest.MonkeyPatch, native: str, dtype: str
) -> None:
    import torch

    from bard_pipeline.infra.engines.hf import HFEngine

    monkeypatch.setenv(NATIVE_BF16_ENV, native)
    engine = HFEngine(HFEngineConfig(model="toy", device="cpu"), str(toy_model_dir))
    assert engine.lm.dtype == getattr(torch, dtype)
    assert f"{engine.precision.precision.value}: cpu with" in engine.backend
    pinned = HFEngine(HFEngineConfig(model="toy", device="cpu", dtype="float32"), str(toy_model_dir))
    assert pinned.lm.dtype == torch.float32 and pinned.precision.source == "recipe"
