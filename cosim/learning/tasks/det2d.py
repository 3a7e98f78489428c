"""2D object detection in the front camera: CenterNet heatmaps and box regression (dx, dy offset,
log w, log h); COCO-style mAP at IoU 0.5, boxes too low or too narrow for the input "don't care"."""

from __future__ import annotations

import numpy as np
import torch

from cosim.learning.classes import DETECTION
from cosim.learning.codec import decode_boxes_2d, encode_boxes_2d
from cosim.learning.losses import centernet_loss
from cosim.learning.metrics import MeanAP2D
from cosim.learning.tasks.spec import TaskSpec

# Boxes lower or narrower than these shares of the input are not drawn in the training
# heatmaps: at the input's resolution they are a pixel or less (the evaluation's default
# "don't care" size, ``learning.evaluation.det2d_min_height`` / ``det2d_min_width``).
TRAIN_MIN_HEIGHT, TRAIN_MIN_WIDTH = 0.0625, 0.03125


def targets(frame, geo) -> dict:
    s = geo.image_size
    h, w = frame.image.shape[:2]
    boxes = frame.camera_boxes * np.array([s / w, s / h, s / w, s / h])  # in input pixels
    drawn = ((boxes[:, 3] - boxes[:, 1] >= TRAIN_MIN_HEIGHT * s)
             & (boxes[:, 2] - boxes[:, 0] >= TRAIN_MIN_WIDTH * s))
    out = encode_boxes_2d(boxes[drawn], frame.camera_box_labels[drawn], len(DETECTION), geo.grid, s)
    out.update(boxes=boxes, box_labels=frame.camera_box_labels)
    return out


class Evaluator:
    def __init__(self, model, settings):
        self.metric, self.image_size = MeanAP2D(), model.image_size
        self.min_height_px = settings.det2d_min_height * model.image_size
        self.min_width_px = settings.det2d_min_width * model.image_size

    def update(self, scores, reg, target, i, inputs) -> None:
        boxes = torch.as_tensor(target["boxes"][i]).float().reshape(-1, 4)
        truth = {"boxes": boxes, "labels": torch.as_tensor(target["box_labels"][i]).long(),
                 "iscrowd": ((boxes[:, 3] - boxes[:, 1] < self.min_height_px)
                             | (boxes[:, 2] - boxes[:, 0] < self.min_width_px)).long()}
        self.metric.update([decode_boxes_2d(scores, reg, self.image_size)], [truth])

    def compute(self) -> dict[str, float]:
        return {"mAP50": self.metric.compute()}


SPEC = TaskSpec("det2d", DETECTION, regression=4, targets=targets, loss=centernet_loss, evaluator=Evaluator,
                view="image", heatmap_prior=True)
