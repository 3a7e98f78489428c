"""The sizes the model imposes on a sample, and label maps resized to the heads' grid."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Geometry:
    """Sizes the model imposes: tower input (pixels), head grid (cells), BEV half-range (m)."""

    image_size: int
    grid: int
    bev_range_m: float


def nearest(labels: np.ndarray, size: int) -> torch.Tensor:
    """A label map resized to size x size by nearest neighbour (labels stay labels)."""
    t = torch.from_numpy(np.ascontiguousarray(labels)).float()[None, None]
    return F.interpolate(t, size=(size, size), mode="nearest")[0, 0].long()
