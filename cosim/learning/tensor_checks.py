"""Checks of user-given weight files (a backbone checkpoint, ``learning.init_modules``).

Files are read with ``torch.load(weights_only=True)`` (or safetensors), which refuses anything
but tensors and plain containers: no code from a file is ever executed. A read that fails, or
tensors with NaN or infinite values, are one InputError naming the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cosim.errors import InputError

_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


def first_line(exc: BaseException) -> str:
    """The informative part of an exception's message: torch's state-dict errors start with a
    header line, its weights-only refusals with advice to load unsafely, which cosim never does."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    lines = [line.removeprefix("WeightsUnpickler error:").strip() for line in lines
             if not line.startswith(_BOILERPLATE)]
    lines = [line for line in lines if line]
    if not lines:
        return type(exc).__name__
    line = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
    return line.split(". ")[0]


def load_weights(path: Path, field: str, what: str) -> Any:
    """The file's content (tensors in plain containers), read without executing anything."""
    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            return load_file(str(path), device="cpu")
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many kinds on a corrupt file
        raise InputError(path, field, f"not {what}: {first_line(exc)}") from None


def check_finite(path: Path, field: str, tensors: dict[str, torch.Tensor]) -> None:
    """Every floating tensor holds finite numbers only."""
    for key, tensor in tensors.items():
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(torch.isfinite(tensor).all()):
            raise InputError(path, field, f"{key} holds NaN or infinite values")
