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


MAX_WEIGHTS_BYTES = 8 * 2**30  # a ViT-L checkpoint is 1.7 GB; what inflates beyond is not one
MAX_INFLATION = 20  # torch stores tensors uncompressed: a file that inflates more is crafted


def check_inflated_size(path: Path, field: str) -> None:
    """A torch zip archive's declared member sizes, read from its directory before any member:
    a 2 MB file that would inflate to gigabytes is refused here, not after filling memory."""
    import zipfile

    if not zipfile.is_zipfile(path):
        return  # torch's legacy format or safetensors: read as they come, or refused by torch
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(path, field, f"not a readable archive: {exc}") from None
    inflated = sum(m.file_size for m in members)
    stored = max(path.stat().st_size, 1)
    if inflated > MAX_WEIGHTS_BYTES or (inflated > 64 * 2**20 and inflated > MAX_INFLATION * stored):
        raise InputError(path, field, f"would inflate to {inflated:,} bytes from {stored:,} "
                         f"(at most {MAX_WEIGHTS_BYTES:,}, or {MAX_INFLATION}x its size)")


def torch_archive(path: Path) -> bool:
    """Whether ``path`` is a file ``torch.save`` wrote (a zip archive with its pickle record):
    what a command may replace when told to, unlike a user's other files."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            return any(name == "data.pkl" or name.endswith("/data.pkl") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False


def load_weights(path: Path, field: str, what: str) -> Any:
    """The file's content (tensors in plain containers), read without executing anything."""
    import warnings

    check_inflated_size(path, field)
    try:
        # what torch warns of while reading (a sparse tensor's unchecked invariants) is said by
        # the checks that follow, in one line, not as warnings around it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if str(path).endswith(".safetensors"):
                from safetensors.torch import load_file

                return load_file(str(path), device="cpu")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many kinds on a corrupt file
        raise InputError(path, field, f"not {what}: {first_line(exc)}") from None


FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def check_finite(path: Path, field: str, tensors: dict[str, torch.Tensor]) -> None:
    """Every tensor is no larger than the data its file stores (an expanded, stride-0 tensor of
    a 1 kB file can claim terabytes), and every floating one holds finite numbers that stay
    finite in float32, the precision the model trains in."""
    for key, tensor in tensors.items():
        if not isinstance(tensor, torch.Tensor):
            continue
        if tensor.layout != torch.strided or tensor.is_meta:  # sparse, quantised-less layouts
            raise InputError(path, field, f"{key} is a {str(tensor.layout).removeprefix('torch.')}"
                             f"{' meta' if tensor.is_meta else ''} tensor, not the dense weights "
                             "a model holds")
        stored = tensor.untyped_storage().nbytes()
        if tensor.numel() * tensor.element_size() > max(stored, tensor.element_size()):
            raise InputError(path, field, f"{key} is {tuple(tensor.shape)}, more than the "
                             f"{stored:,} bytes its file stores (an expanded tensor)")
        if not (tensor.is_floating_point() or tensor.is_complex()):
            continue
        try:
            finite = bool(torch.isfinite(tensor).all())
            largest = float(tensor.abs().max()) if tensor.numel() else 0.0
        except (RuntimeError, NotImplementedError, TypeError) as exc:  # float8, ...: no arithmetic
            raise InputError(path, field, f"{key} is {tensor.dtype}, which cosim cannot check "
                             f"or train ({first_line(exc)})") from None
        if not finite:
            raise InputError(path, field, f"{key} holds NaN or infinite values")
        if largest > FLOAT32_MAX:
            raise InputError(path, field, f"{key} holds values beyond float32's range "
                             f"(|x| up to {largest:.3g}): infinite in training")


def number_kind(tensor: torch.Tensor) -> str:
    """What a tensor's numbers are: copying into a tensor of another kind silently drops an
    imaginary part, truncates fractions or turns every value into 0 or 1."""
    if tensor.dtype == torch.bool:
        return "bool"
    if tensor.is_complex():
        return "complex"
    return "floating" if tensor.is_floating_point() else "integer"


def check_kinds(path: Path, field: str, saved: dict[str, torch.Tensor],
                model: dict[str, torch.Tensor]) -> None:
    """Each saved tensor the model has holds the model's kind of number (InputError otherwise)."""
    for key, tensor in saved.items():
        want = model.get(key)
        if want is not None and number_kind(tensor) != number_kind(want):
            raise InputError(path, field, f"{key} holds {tensor.dtype} values, the model's are "
                             f"{want.dtype}")
