"""From a decoded frame to what the model sees: inputs and the four tasks' targets.

Inputs: the front image resized to the tower's input and CLIP-normalised; two LiDAR
pseudo-images of the TOP laser's first return, at the tower's input size: the range view
[range / 75 m, intensity clipped to [0, 1], elongation / 1.5] (seg3d labels live on it), and a
bird's-eye view over the det3d grid's +-R m [highest return above the ground / 4 m, mean
intensity, log point count] (PointPillars-style: its tokens sit where the boxes are); "augmented
text" built from the scene's stats. Targets come from
each task's spec (``cosim/learning/tasks``) at the heads' output grid; evaluation extras (boxes,
point counts, instance ids) ride along.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from cosim.learning.data.waymo_v2 import Frame
from cosim.learning.grid import Geometry
from cosim.learning.openclip import to_tensor
from cosim.learning.tasks import SPECS

RANGE_SCALE_M = 75.0
ELONGATION_SCALE = 1.5
BEV_HEIGHT_SCALE_M = 4.0  # cars, people, signs: below 4 m; above is building or tree
BEV_COUNT_SCALE = 32.0


def augmented_text(frame: Frame) -> str:
    return (f"a {frame.weather} {frame.time_of_day} drive in {frame.location}: "
            "cars, pedestrians, cyclists and signs around the vehicle")


def lidar_pseudo_image(range_image: np.ndarray, size: int) -> torch.Tensor:
    r = np.clip(range_image[..., 0] / RANGE_SCALE_M, 0.0, None)  # no return (-1) -> 0
    x = np.stack([r, np.clip(range_image[..., 1], 0.0, 1.0), range_image[..., 2] / ELONGATION_SCALE])
    t = torch.from_numpy(x.astype(np.float32))[None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0]


def lidar_bev_pseudo_image(points: np.ndarray, intensity: np.ndarray, size: int, range_m: float
                           ) -> torch.Tensor:
    """(3, size, size) over [-R, R]^2 in the vehicle frame, column = x, row = y (det3d's grid)."""
    cell = 2 * range_m / size
    col = np.floor((points[:, 0] + range_m) / cell).astype(np.int64)
    row = np.floor((points[:, 1] + range_m) / cell).astype(np.int64)
    inside = (col >= 0) & (col < size) & (row >= 0) & (row < size)
    flat = row[inside] * size + col[inside]
    count = np.bincount(flat, minlength=size * size).astype(np.float32)
    height = np.zeros(size * size, np.float32)
    np.maximum.at(height, flat, np.clip(points[inside, 2] / BEV_HEIGHT_SCALE_M, 0.0, 1.0))
    mean_intensity = np.bincount(flat, weights=np.clip(intensity[inside], 0, 1), minlength=size * size)
    mean_intensity = np.where(count > 0, mean_intensity / np.maximum(count, 1), 0.0)
    density = np.log1p(count) / np.log1p(BEV_COUNT_SCALE)
    x = np.stack([height, mean_intensity, np.minimum(density, 1.0)]).reshape(3, size, size)
    return torch.from_numpy(x.astype(np.float32))


def build_sample(frame: Frame, geo: Geometry) -> tuple[dict, dict]:
    """(inputs, targets) of one frame; tensors without a batch axis; targets of every task."""
    s = geo.image_size
    image = F.interpolate(to_tensor(frame.image[None]), size=(s, s), mode="bilinear",
                          align_corners=False)[0]
    intensity = frame.range_image[..., 1].reshape(-1)[frame.point_pixels]
    inputs = {"image": image, "lidar": lidar_pseudo_image(frame.range_image, s),
              "lidar_bev": lidar_bev_pseudo_image(frame.points, intensity, s, geo.bev_range_m),
              "text": augmented_text(frame), "sequence": frame.segment}
    return inputs, {task: spec.targets(frame, geo) for task, spec in SPECS.items()}


def collate(samples: list[tuple[dict, dict]]) -> tuple[dict, dict]:
    """Stack tensors; keep variable-length annotations (boxes, point counts) and text as lists."""
    inputs: dict = {}
    for key in samples[0][0]:
        values = [s[0][key] for s in samples]
        inputs[key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    targets: dict = {}
    for task in samples[0][1]:
        targets[task] = {}
        for key in samples[0][1][task]:
            values = [s[1][task][key] for s in samples]
            targets[task][key] = torch.stack(values) if isinstance(values[0], torch.Tensor) else values
    return inputs, targets
