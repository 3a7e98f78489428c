"""A saved global model: the trainable modules' tensors (``global_modules.pt`` of a run).

Checked before a run starts, so a corrupt file is a one-line input error, not a failed run.
"""

from __future__ import annotations

from pathlib import Path

import torch

from cosim.errors import InputError

FIELD = "learning.init_modules"


def load_module_file(path: Path) -> dict[str, torch.Tensor]:
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds on a corrupt or foreign file
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(path, FIELD, f"not a module file: {first}") from None
    if not isinstance(saved, dict) or not saved or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in saved.items()):
        raise InputError(path, FIELD, "not a state dict of module tensors")
    return saved
