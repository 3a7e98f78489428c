"""The arithmetic precision a run trains and scores in: float32, or bfloat16 mixed precision.

``bf16`` is mixed precision as GPU trainers run it, on a CPU's or GPU's bfloat16 matrix units:
- the frozen towers' matrix weights (linear, convolution, attention projections) are held in
  bfloat16 (open_clip's ``convert_weights_to_lp``; their layer norms stay float32, and so do
  projections under LoRA, so that the low-rank update is not rounded into the weight);
- the model's forward runs under ``torch.autocast(dtype=bfloat16)``: matrix products,
  convolutions and transposed convolutions in bfloat16, with float32 accumulation;
- attention on a CPU is computed as bfloat16 matrix products around a float32 softmax
  (``attention.py``: PyTorch's bfloat16 flash attention trains ~4x slower than its float32 one
  on this kind of CPU);
- norms compute their statistics in float32 (PyTorch's kernels accumulate bfloat16 in float32);
- the heads' outputs leave the model as float32, so losses and metrics are float32;
- trainable parameters, their gradients and the optimiser's moments stay float32 (master
  weights): autocast casts a weight for the product, never the parameter itself.

``auto`` picks bfloat16 where the device multiplies bfloat16 natively (a CUDA GPU that supports
it; a CPU reporting AMX-BF16 or AVX512-BF16) and float32 elsewhere; run.json says what ran and
why. An explicit ``bf16`` on a device without such units is refused when the scenario loads:
emulated bfloat16 would run slower than float32.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

FP32, BF16 = "fp32", "bf16"


@dataclass(frozen=True)
class Precision:
    """What a run computes in (``fp32`` or ``bf16``), what was asked for, and why."""

    name: str
    requested: str
    reason: str

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.name == BF16 else torch.float32

    def summary(self) -> dict[str, str]:
        return {"precision": self.name, "requested": self.requested, "reason": self.reason}


def pick_device(choice: str = "auto") -> torch.device:
    """``learning.local.device``: cuda, cpu, or auto (CUDA when there is a GPU)."""
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """Whether ``device`` multiplies bfloat16 in hardware, and what says so."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return False, "no CUDA device is available"
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return True, f"CUDA device {torch.cuda.get_device_name(device)} supports bfloat16"
        return False, f"CUDA device {torch.cuda.get_device_name(device)} has no native bfloat16"
    if device.type == "cpu":
        # torch.cpu's probes (AMX's tiles come with its bf16 unit on every CPU that has them)
        found = [name for name, probe in (("AMX-BF16", torch.cpu._is_amx_tile_supported),
                                          ("AVX512-BF16", torch.cpu._is_avx512_bf16_supported))
                 if probe()]
        if found:
            return True, f"this CPU reports {' and '.join(found)}"
        return False, "this CPU reports neither AMX-BF16 nor AVX512-BF16"
    return False, f"no bfloat16 support is known for device type {device.type}"


def resolve(requested: str, device: torch.device) -> Precision:
    """The precision to run for ``requested`` (``fp32``, ``bf16`` or ``auto``) on ``device``."""
    if requested == FP32:
        return Precision(FP32, requested, "asked for")
    native, why = native_bf16(device)
    if requested == BF16:
        if not native:
            raise UnsupportedPrecision(f"bf16 asked for, but {why}: use fp32 or auto")
        return Precision(BF16, requested, f"asked for; {why}")
    if requested != "auto":
        raise ValueError("give fp32, bf16 or auto")
    return Precision(BF16 if native else FP32, requested, why)


class UnsupportedPrecision(ValueError):
    """bfloat16 asked for on a device that would emulate it."""


def autocast(precision: str, device: torch.device):
    """The forward's autocast context for ``precision`` (none for float32)."""
    if precision == BF16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
