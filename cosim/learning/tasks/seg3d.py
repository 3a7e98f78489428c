"""3D semantic segmentation: a class per LiDAR point (through its range-image cell); mIoU."""

from __future__ import annotations

import numpy as np
import torch.nn.functional as F

from cosim.learning.classes import IGNORE_INDEX, SEG3D
from cosim.learning.grid import nearest
from cosim.learning.metrics import MeanIoU
from cosim.learning.tasks.spec import TaskSpec


def targets(frame, geo) -> dict:
    labels = np.where(frame.range_image[..., 0] > 0, frame.lidar_labels[..., 1], IGNORE_INDEX)
    labels = np.where(labels == 0, IGNORE_INDEX, labels)  # undefined is not a class
    return {"labels": nearest(labels, geo.grid)}


def loss(out, target):
    return F.cross_entropy(out["scores"], target["labels"], ignore_index=IGNORE_INDEX)


class Evaluator:
    def __init__(self, model, settings):
        self.metric = MeanIoU(len(SEG3D))

    def update(self, scores, reg, target, i, inputs) -> None:
        self.metric.update(scores.argmax(0), target["labels"][i])

    def compute(self) -> dict[str, float]:
        return {"mIoU": self.metric.compute()}


SPEC = TaskSpec("seg3d", SEG3D, regression=0, targets=targets, loss=loss, evaluator=Evaluator,
                view="lidar")
