"""3D object detection in a bird's-eye-view grid around the ego car: CenterNet heatmaps and box
regression (dx, dy, z, log l, log w, log h, sin yaw, cos yaw); Waymo's L2 AP/APH (3D IoU) and
nuScenes-style centre-distance AP."""

from __future__ import annotations

import numpy as np

from cosim.learning.classes import DETECTION
from cosim.learning.codec import decode_boxes_3d, encode_boxes_3d
from cosim.learning.losses import centernet_loss
from cosim.learning.metrics import MeanAP3D
from cosim.learning.tasks.spec import TaskSpec


def targets(frame, geo) -> dict:
    out = encode_boxes_3d(frame.lidar_boxes, frame.lidar_box_labels, len(DETECTION), geo.grid,
                          geo.bev_range_m)
    out.update(boxes=frame.lidar_boxes, box_labels=frame.lidar_box_labels,
               points=frame.lidar_box_points)
    return out


class Evaluator:
    def __init__(self, model, settings):
        self.metric = MeanAP3D(len(DETECTION),
                               center_thresholds_m=tuple(settings.det3d_center_thresholds_m))
        self.range_m = model.cfg.bev_range_m

    def update(self, scores, reg, target, i, inputs) -> None:
        pred = decode_boxes_3d(scores, reg, self.range_m)
        # Only ground truth inside the BEV grid counts: the head cannot see beyond its range.
        boxes = np.asarray(target["boxes"][i], float).reshape(-1, 7)
        inside = (np.abs(boxes[:, 0]) < self.range_m) & (np.abs(boxes[:, 1]) < self.range_m)
        self.metric.update(pred["boxes"].numpy(), pred["scores"].numpy(), pred["labels"].numpy(),
                           boxes[inside], np.asarray(target["box_labels"][i])[inside],
                           np.asarray(target["points"][i])[inside])

    def compute(self) -> dict[str, float]:
        return self.metric.compute()


SPEC = TaskSpec("det3d", DETECTION, regression=8, targets=targets, loss=centernet_loss, evaluator=Evaluator,
                view="lidar_bev", heatmap_prior=True)
