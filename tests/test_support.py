"""What a headline metric rests on, counted from held-out targets whose answer is known."""

from __future__ import annotations

import numpy as np
import torch

from cosim.learning.classes import DETECTION, IGNORE_INDEX, PAN2D, SEG3D
from cosim.learning.support import MIN_OBJECTS_PER_CLASS, heldout_support
from cosim.scenario import EvaluationConfig


def _batch():
    """Two frames of one sequence, 64-px input: boxes of known size and class, cells of known
    labels, two pan2d car instances of which one is seen in both frames."""
    det2d = {"boxes": [np.array([[0, 0, 10, 10], [0, 0, 1.5, 10], [5, 5, 20, 30]], float),
                       np.array([[1, 1, 9, 9]], float)],
             "box_labels": [np.array([0, 1, 2]), np.array([3])]}
    det3d = {"boxes": [np.array([[1, 1, 0, 4, 2, 2, 0], [80, 0, 0, 4, 2, 2, 0]], float),
                       np.array([[2, -3, 0, 1, 1, 2, 0], [3, 3, 0, 1, 1, 2, 0]], float)],
             "box_labels": [np.array([0, 0]), np.array([1, 2])],
             "points": [np.array([10, 10]), np.array([5, 0])]}
    seg = torch.full((2, 4, 4), IGNORE_INDEX)
    seg[0, 0, :3] = SEG3D.index("car")
    seg[1, 1, :] = SEG3D.index("road")
    semantic = torch.full((2, 4, 4), PAN2D.index("road"))
    instance = torch.zeros((2, 4, 4), dtype=torch.long)
    semantic[:, 0, :2], instance[:, 0, :2] = PAN2D.index("car"), 7  # one track, two frames
    semantic[1, 3, 3], instance[1, 3, 3] = PAN2D.index("car"), 8
    targets = {"det2d": det2d, "det3d": det3d, "seg3d": {"labels": seg},
               "pan2d": {"labels": semantic, "instance": instance}}
    return {"sequence": ["s0", "s0"]}, targets


def test_support_counts_what_each_metric_scores():
    tasks = ["seg3d", "det3d", "pan2d", "det2d"]
    support = heldout_support([_batch()], tasks, EvaluationConfig(), image_size=64, bev_range_m=50.0)
    # det2d: the 1.5-px-wide box is don't-care at 64 px (min 2 px wide); the rest count
    assert support["det2d"]["per_class"] == {"vehicle": 1, "pedestrian": 0, "cyclist": 1, "sign": 1}
    assert support["det2d"]["smallest_class"] == "pedestrian" and not support["det2d"]["meets_minimum"]
    assert support["det2d"]["minimum_per_class"] == MIN_OBJECTS_PER_CLASS
    assert {t: e["frames"] for t, e in support.items()} == dict.fromkeys(tasks, 2)
    # det3d: out of range (80 m) and point-less boxes do not count
    assert support["det3d"]["per_class"] == dict(zip(DETECTION, [1, 1, 0, 0], strict=True))
    assert support["seg3d"]["per_class"] == {"car": 3, "road": 4}
    # pan2d: instances are tracks: the car seen in two frames is one
    assert support["pan2d"]["total"] == 2 and support["pan2d"]["per_class"]["car"] == 2
    assert not support["pan2d"]["meets_minimum"]
