"""open_clip as cosim uses it: cosim's own configurations registered on first use, the
tokenizer, CLIP's image normalisation, and quiet random initialisation. Both the backbone loader
and the synthetic pre-training build on this module (neither imports the other's internals)."""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from cosim.errors import MissingDependencyError

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # the normalisation CLIP towers expect
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def open_clip_module():
    """open_clip, with cosim's configurations (``model_configs/*.json``) registered."""
    try:
        import open_clip
    except ImportError as exc:
        raise MissingDependencyError(
            f"open_clip could not be imported ({exc}); install the learning stack with "
            "'pip install torch torchvision open_clip_torch' (a matching torch/torchvision pair)"
        ) from None
    for config in sorted(CONFIG_DIR.glob("*.json")):
        if config.stem not in open_clip.list_models():
            open_clip.add_model_config(config)
    return open_clip


@contextlib.contextmanager
def quiet_random_init():
    """open_clip logs a root-logger warning for every model built without weights; in cosim that
    is deliberate (pre-training starts from random, weights come in through load_clip)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def tokenizer(name: str):
    """The model's tokenizer (works offline)."""
    return open_clip_module().get_tokenizer(name)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> CLIP-normalised float (N, 3, H, W)."""
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 255.0  # PIL arrays are read-only
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std
