"""What this machine does natively: the facts `bard_core.precision` decides from, probed where the work runs.

Training loops and engines call this inside their worker, so on a cluster the answer is the worker's node,
not the driver's. ``BARD_NATIVE_BF16=0|1`` overrides the CPU probe (the tests force the "no native bf16"
path with it, whatever CPU runs them; a user can too).
"""

from __future__ import annotations

import functools
import os
import platform
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bard_core.precision import (
    Hardware,
    PrecisionChoice,
    choose_inference_precision,
    choose_training_precision,
)

NATIVE_BF16_ENV = "BARD_NATIVE_BF16"
# x86: AMX and AVX512-BF16 run bf16 matmuls in hardware; aarch64: the BF16 extension ("bf16" in Features).
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")


def parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    """(model name, flags) from the text of /proc/cpuinfo (x86 "flags", Arm "Features")."""
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model or platform.machine(), flags


def _cpuinfo() -> tuple[str, set[str]]:
    try:
        return parse_cpuinfo(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:  # no /proc (macOS, Windows): torch's probes below still answer
        return platform.processor() or platform.machine(), set()


@functools.lru_cache(maxsize=1)
def _probed_cpu() -> Hardware:
    import torch

    model, flags = _cpuinfo()
    found = tuple(f for f in NATIVE_BF16_FLAGS if f in flags)
    # torch's own view, where the flags file is missing or a hypervisor hides flags it still executes.
    cpu = getattr(torch, "cpu", None)
    for probe, name in (("_is_amx_tile_supported", "amx_bf16"), ("_is_avx512_bf16_supported", "avx512_bf16")):
        check = getattr(cpu, probe, None)
        if check is not None and name not in found and check():
            found += (name,)
    capability = torch.backends.cpu.get_cpu_capability()
    return Hardware("cpu", bool(found), f"{model} [torch {capability}]", found)


def cpu_hardware() -> Hardware:
    probed = _probed_cpu()
    forced = os.environ.get(NATIVE_BF16_ENV)
    if forced in ("0", "1"):
        return Hardware("cpu", forced == "1", probed.model, probed.features, forced=True)
    return probed


def gpu_hardware() -> Hardware:
    import torch

    name = torch.cuda.get_device_name(0)
    native = bool(torch.cuda.is_bf16_supported())
    return Hardware("cuda", native, name, ("bf16",) if native else ())


def hardware(use_gpu: bool) -> Hardware:
    """The device this process trains or generates on."""
    import torch

    return gpu_hardware() if use_gpu and torch.cuda.is_available() else cpu_hardware()


def training_precision(trl: Mapping[str, Any], use_gpu: bool) -> PrecisionChoice:
    return choose_training_precision(trl, hardware(use_gpu))


def inference_precision(dtype: str, device: str) -> PrecisionChoice:
    return choose_inference_precision(dtype, hardware(device.startswith("cuda")))
