"""The precision rule: the recipe's own bf16/fp16 win; otherwise bf16 only where the device does it natively."""

from __future__ import annotations

import pytest

from bard_core.precision import Hardware, Precision, choose_inference_precision, choose_training_precision

AVX2 = Hardware("cpu", False, "AMD EPYC (AVX2 only)")
AMX = Hardware("cpu", True, "Intel Xeon (AMX)", ("amx_bf16", "avx512_bf16"))
H100 = Hardware("cuda", True, "NVIDIA H100", ("bf16",))
V100 = Hardware("cuda", False, "Tesla V100")


@pytest.mark.parametrize(
    ("hardware", "expected"),
    [(AVX2, Precision.FP32), (AMX, Precision.BF16), (H100, Precision.BF16), (V100, Precision.FP32)],
)
def test_without_a_recipe_setting_the_device_decides(hardware: Hardware, expected: Precision) -> None:
    choice = choose_training_precision({"learning_rate": 1e-3}, hardware)
    assert choice.precision is expected and choice.source == "hardware"
    assert choice.trl_flags() == {"bf16": expected is Precision.BF16, "fp16": False}


def test_a_cpu_without_native_bf16_trains_in_fp32_and_says_why() -> None:
    choice = choose_training_precision({}, AVX2)
    assert choice.trl_flags() == {"bf16": False, "fp16": False}
    assert choice.stats() == {
        "precision": "fp32",
        "source": "hardware",
        "reason": "fp32: cpu with no native bf16",
        "device": "cpu AMD EPYC (AVX2 only) (no native bf16 flags)",
    }


@pytest.mark.parametrize(
    ("trl", "expected"),
    [({"bf16": True}, Precision.BF16), ({"fp16": True}, Precision.FP16), ({"bf16": False}, Precision.FP32)],
)
def test_the_recipe_wins_over_the_hardware(trl: dict[str, bool], expected: Precision) -> None:
    for hardware in (AVX2, AMX):
        choice = choose_training_precision(trl, hardware)
        assert choice.precision is expected and choice.source == "recipe"
        assert choice.reason == f"{expected.value}: set by the recipe"


def test_inference_dtype_auto_follows_the_rule_and_explicit_dtypes_win() -> None:
    assert choose_inference_precision("auto", AVX2).precision is Precision.FP32
    assert choose_inference_precision("auto", AMX).precision.torch_dtype_name == "bfloat16"
    assert choose_inference_precision("float32", AMX).precision is Precision.FP32
    assert choose_inference_precision("bfloat16", AVX2).source == "recipe"
    with pytest.raises(ValueError, match="dtype 'fp8' is not one of auto, float32, bfloat16, float16"):
        choose_inference_precision("fp8", AMX)
