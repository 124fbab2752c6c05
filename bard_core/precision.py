"""Training and inference precision, decided from what the hardware does natively (pure rule, no torch).

Libraries pick a precision for a machine they have never seen: TRL's `SFTConfig`/`GRPOConfig` default to
``bf16=True``, which on a CPU means bf16 autocast. A CPU with native bf16 (AMX or AVX512-BF16 on x86, the
BF16 extension on Arm) runs that about 2x faster than fp32 on the toy student; an AVX2-only CPU emulates it
and runs it about 35x *slower* (measured, see the README). So the pipeline decides itself, in this one rule:

- a recipe that sets ``bf16`` or ``fp16`` in its ``trl`` section (or an engine's ``dtype``) wins;
- otherwise a GPU trains in bf16 where it supports it, else in fp32;
- otherwise a CPU trains in bf16 only when it has native bf16, else in fp32.

The facts about the machine come from ``bard_pipeline.infra.precision`` (torch and the CPU flags), where the work runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Precision(str, Enum):
    FP32 = "fp32"
    BF16 = "bf16"
    FP16 = "fp16"

    @property
    def torch_dtype_name(self) -> str:
        """The torch dtype of weights in pure (non-autocast) inference at this precision."""
        return {Precision.FP32: "float32", Precision.BF16: "bfloat16", Precision.FP16: "float16"}[self]


@dataclass(frozen=True)
class Hardware:
    """What a device does natively, as far as precision is concerned."""

    device: str  # "cpu" or "cuda"
    native_bf16: bool
    model: str  # the CPU model (lscpu "Model name") or the GPU name
    features: tuple[str, ...] = ()  # the flags that decided native_bf16 (e.g. amx_bf16, avx512_bf16)
    forced: bool = False  # native_bf16 was set by BARD_NATIVE_BF16, not detected

    def describe(self) -> str:
        flags = ", ".join(self.features) or "no native bf16 flags"
        return f"{self.device} {self.model} ({flags}{'; forced' if self.forced else ''})"


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision a stage runs at, and why: recorded in its manifest and its Prefect summary."""

    precision: Precision
    source: str  # "recipe" (set explicitly) or "hardware" (chosen by the rule above)
    hardware: Hardware

    @property
    def reason(self) -> str:
        if self.source == "recipe":
            return f"{self.precision.value}: set by the recipe"
        native = "native bf16" if self.hardware.native_bf16 else "no native bf16"
        return f"{self.precision.value}: {self.hardware.device} with {native}"

    def trl_flags(self) -> dict[str, bool]:
        """TrainingArguments' mixed-precision switches for this choice."""
        return {"bf16": self.precision is Precision.BF16, "fp16": self.precision is Precision.FP16}

    def stats(self) -> dict[str, Any]:
        return {
            "precision": self.precision.value,
            "source": self.source,
            "reason": self.reason,
            "device": self.hardware.describe(),
        }


def choose_training_precision(trl: Mapping[str, Any], hardware: Hardware) -> PrecisionChoice:
    """The mixed precision of a TRL trainer: the recipe's ``bf16``/``fp16`` if it sets either, else the rule."""
    if trl.get("fp16"):
        return PrecisionChoice(Precision.FP16, "recipe", hardware)
    if trl.get("bf16"):
        return PrecisionChoice(Precision.BF16, "recipe", hardware)
    if "bf16" in trl or "fp16" in trl:  # explicitly off
        return PrecisionChoice(Precision.FP32, "recipe", hardware)
    return PrecisionChoice(Precision.BF16 if hardware.native_bf16 else Precision.FP32, "hardware", hardware)


def choose_inference_precision(dtype: str, hardware: Hardware) -> PrecisionChoice:
    """Weights dtype of an inference engine: an explicit ``dtype`` wins; ``auto`` follows the rule."""
    explicit = {"float32": Precision.FP32, "bfloat16": Precision.BF16, "float16": Precision.FP16}
    if dtype in explicit:
        return PrecisionChoice(explicit[dtype], "recipe", hardware)
    if dtype != "auto":
        raise ValueError(f"dtype {dtype!r} is not one of auto, {', '.join(explicit)}")
    return PrecisionChoice(Precision.BF16 if hardware.native_bf16 else Precision.FP32, "hardware", hardware)
