"""The frozen CLIP backbone from open_clip: a configuration by name, weights from a local file.

Nothing is downloaded. ``checkpoint`` is a local state dict / safetensors file or None (random
initialisation); a hub tag such as ``openai`` is refused with a message that says which file to
fetch elsewhere and where to point the scenario. cosim's own tiny configurations (CPU default,
tests) are registered with open_clip on import.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import torch

from cosim.errors import InputError, MissingDependencyError

CONFIG_DIR = Path(__file__).resolve().parent / "model_configs"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # the normalisation CLIP towers expect
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
TINY = "cosim-tiny"


def _open_clip():
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


def model_names() -> list[str]:
    return list(_open_clip().list_models())


def load_clip(name: str, checkpoint: Path | str | None, field: str = "learning.model"
              ) -> torch.nn.Module:
    """An open_clip CLIP model by configuration name, weights from ``checkpoint`` or random;
    ``"synthetic"``: cosim's synthetic pre-training of this configuration (cached)."""
    open_clip = _open_clip()
    if checkpoint == "synthetic":
        from cosim.learning.pretrain import PretrainConfig, ensure_pretrained

        checkpoint = ensure_pretrained(PretrainConfig(model=name))
    if name not in open_clip.list_models():
        raise InputError(None, f"{field}.name", f"unknown open_clip configuration {name!r}")
    if checkpoint is not None and not Path(checkpoint).is_file():
        tags = open_clip.list_pretrained_tags_by_model(name)
        hint = (f"; {str(checkpoint)!r} looks like a hub tag: download the {name} weights "
                f"({', '.join(tags) or 'a checkpoint'}) on a machine with internet and set "
                f"{field}.checkpoint to the local file") if str(checkpoint) in tags else ""
        raise InputError(None, f"{field}.checkpoint", f"no such file: {checkpoint}{hint}")
    with quiet_random_init():
        model = open_clip.create_model(name, pretrained=str(checkpoint) if checkpoint else None,
                                       device="cpu")
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


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
    return _open_clip().get_tokenizer(name)


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> CLIP-normalised float (N, 3, H, W)."""
    x = torch.from_numpy(np.array(images)).permute(0, 3, 1, 2).float() / 255.0  # PIL arrays are read-only
    mean = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std
