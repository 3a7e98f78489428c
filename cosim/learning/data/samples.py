"""From a decoded frame to what the model sees: inputs and the four tasks' targets.

Inputs: the front image resized to the tower's input and CLIP-normalised; the LiDAR pseudo-image
[range / 75 m, intensity clipped to [0, 1], elongation / 1.5] of the TOP laser's first return,
resized to the tower's input; "augmented text" built from the scene's stats. Targets follow the
codec's conventions at the heads' output grid; evaluation extras (boxes, point counts, instance
ids) ride along.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from cosim.learning.backbone import to_tensor
from cosim.learning.classes import IGNORE_INDEX
from cosim.learning.codec import encode_boxes_2d, encode_boxes_3d, encode_panoptic
from cosim.learning.data.waymo_v2 import Frame

RANGE_SCALE_M = 75.0
ELONGATION_SCALE = 1.5


@dataclass(frozen=True)
class Geometry:
    """Sizes the model imposes: tower input (pixels), head grid (cells), BEV half-range (m)."""

    image_size: int
    grid: int
    bev_range_m: float


def augmented_text(frame: Frame) -> str:
    return (f"a {frame.weather} {frame.time_of_day} drive in {frame.location}: "
            "cars, pedestrians, cyclists and signs around the vehicle")


def lidar_pseudo_image(range_image: np.ndarray, size: int) -> torch.Tensor:
    r = np.clip(range_image[..., 0] / RANGE_SCALE_M, 0.0, None)  # no return (-1) -> 0
    x = np.stack([r, np.clip(range_image[..., 1], 0.0, 1.0), range_image[..., 2] / ELONGATION_SCALE])
    t = torch.from_numpy(x.astype(np.float32))[None]
    return F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)[0]


def _nearest(labels: np.ndarray, size: int) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(labels)).float()[None, None]
    return F.interpolate(t, size=(size, size), mode="nearest")[0, 0].long()


def build_sample(frame: Frame, geo: Geometry, n_det_classes: int = 4) -> tuple[dict, dict]:
    """(inputs, targets) of one frame; tensors without a batch axis."""
    s, g = geo.image_size, geo.grid
    image = F.interpolate(to_tensor(frame.image[None]), size=(s, s), mode="bilinear",
                          align_corners=False)[0]
    inputs = {"image": image, "lidar": lidar_pseudo_image(frame.range_image, s),
              "text": augmented_text(frame), "sequence": frame.segment}
    seg_labels = np.where(frame.range_image[..., 0] > 0, frame.lidar_labels[..., 1], IGNORE_INDEX)
    seg_labels = np.where(seg_labels == 0, IGNORE_INDEX, seg_labels)  # undefined is not a class
    h, w = frame.image.shape[:2]
    boxes2d = frame.camera_boxes * np.array([s / w, s / h, s / w, s / h])
    det3d = encode_boxes_3d(frame.lidar_boxes, frame.lidar_box_labels, n_det_classes, g, geo.bev_range_m)
    det3d.update(boxes=frame.lidar_boxes, box_labels=frame.lidar_box_labels,
                 points=frame.lidar_box_points)
    det2d = encode_boxes_2d(boxes2d, frame.camera_box_labels, n_det_classes, g, s)
    det2d.update(boxes=boxes2d, box_labels=frame.camera_box_labels)
    instance = _nearest(frame.instance, g)
    pan2d = encode_panoptic(_nearest(frame.semantic, g), instance)
    pan2d["instance"] = instance
    targets = {"seg3d": {"labels": _nearest(seg_labels, g)}, "det3d": det3d, "det2d": det2d,
               "pan2d": pan2d}
    return inputs, targets


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
