"""Task metrics with a torchmetrics-style interface: ``update(...)`` then ``compute()``.

- ``MeanIoU`` (3D semantic segmentation): IoU per class from torchmetrics' confusion matrix,
  averaged over the classes that occur (prediction or ground truth), "undefined" excluded.
- ``MeanAP2D`` (2D detection): mAP at IoU 0.5 from torchmetrics (faster-coco-eval backend).
- ``MeanAP3D`` (3D detection): AP and heading-weighted APH per class with rotated bird's-eye-view
  IoU (shapely polygons), Waymo thresholds (vehicle 0.7, others 0.5), difficulty L2 approximated
  by ignoring ground-truth boxes with no LiDAR point inside; and ``mAP_center``, nuScenes-style AP
  matching by BEV centre distance (0.5, 1, 2, 4 m), which still rewards a detector whose boxes are
  near but not IoU-tight (the tiny model's BEV cells are 2.5 m). Written here: no maintained
  library does this without Waymo's TensorFlow ops.
- ``SegmentationTrackingQuality`` (2D video panoptic): STQ = sqrt(SQ * AQ) of Weber et al. (2021),
  and wSTQ with per-pixel weights (pixels seen by several cameras weigh less). Written here.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import torch
from shapely.geometry import Polygon
from torchmetrics.classification import MulticlassConfusionMatrix
from torchmetrics.detection import MeanAveragePrecision

from cosim.learning.classes import IGNORE_INDEX


class MeanIoU:
    def __init__(self, num_classes: int, exclude: tuple[int, ...] = (0,)):
        self.cm = MulticlassConfusionMatrix(num_classes, ignore_index=IGNORE_INDEX)
        self.exclude = exclude

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.cm.update(pred.reshape(-1), target.reshape(-1))

    def compute(self) -> float:
        cm = self.cm.compute().double()
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        keep = union > 0
        keep[list(self.exclude)] = False
        return float((tp[keep] / union[keep]).mean()) if keep.any() else float("nan")


class MeanAP2D:
    """mAP@0.5 over boxes given as (x1, y1, x2, y2) pixels."""

    def __init__(self):
        self.map = MeanAveragePrecision(iou_thresholds=[0.5], backend="faster_coco_eval")

    def update(self, preds: list[dict], targets: list[dict]) -> None:
        self.map.update(preds, targets)

    def compute(self) -> float:
        return float(self.map.compute()["map_50"])


def bev_polygon(box: np.ndarray) -> Polygon:
    """Footprint of a box (x, y, z, length, width, height, yaw)."""
    x, y, _, length, width, _, yaw = box[:7]
    c, s = math.cos(yaw), math.sin(yaw)
    corners = [(dx * length / 2, dy * width / 2) for dx, dy in ((1, 1), (1, -1), (-1, -1), (-1, 1))]
    return Polygon([(x + c * u - s * v, y + s * u + c * v) for u, v in corners])


def bev_iou(a: np.ndarray, b: np.ndarray) -> float:
    pa, pb = bev_polygon(a), bev_polygon(b)
    inter = pa.intersection(pb).area
    union = pa.area + pb.area - inter
    return inter / union if union > 0 else 0.0


def average_precision(scores: np.ndarray, tp_weight: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP; ``tp_weight`` is 0 for a false positive, else the TP's weight
    (1 for AP, the heading accuracy for APH)."""
    if n_gt == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(tp_weight[order])
    fp = np.cumsum(tp_weight[order] == 0)
    recall = tp / n_gt
    precision = tp / np.maximum(tp + fp, 1e-12)
    precision = np.maximum.accumulate(precision[::-1])[::-1]  # the precision envelope
    previous = np.concatenate([[0.0], recall[:-1]])
    return float(np.sum((recall - previous) * precision))


class MeanAP3D:
    """mAP and mAPH (L2) over classes; boxes (N, 7) = x, y, z, length, width, height, yaw."""

    def __init__(self, num_classes: int, iou_thresholds: tuple[float, ...] = (0.7, 0.5, 0.5, 0.5),
                 center_thresholds_m: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)):
        self.num_classes = num_classes
        self.thresholds = iou_thresholds
        self.center_thresholds = center_thresholds_m
        self.records: dict[int, list[tuple[float, float, float]]] = defaultdict(list)
        # (class, distance threshold) -> (score, 1 if TP else 0)
        self.center_records: dict[tuple[int, float], list[tuple[float, float]]] = defaultdict(list)
        self.n_gt = np.zeros(num_classes, dtype=int)

    def update(self, pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, gt_points) -> None:
        """One frame. ``gt_points``: LiDAR points inside each ground-truth box."""
        pred_boxes, gt_boxes = np.asarray(pred_boxes, float), np.asarray(gt_boxes, float)
        for c in range(self.num_classes):
            g = np.flatnonzero(np.asarray(gt_labels) == c)
            valid = np.asarray(gt_points)[g] > 0 if len(g) else np.zeros(0, bool)
            self.n_gt[c] += int(valid.sum())
            p = np.flatnonzero(np.asarray(pred_labels) == c)
            p = p[np.argsort(-np.asarray(pred_scores)[p], kind="stable")]
            taken = np.zeros(len(g), bool)
            for i in p:
                ious = np.array([bev_iou(pred_boxes[i], gt_boxes[j]) for j in g])
                ious[taken] = -1.0
                j = int(ious.argmax()) if len(g) else -1
                score = float(np.asarray(pred_scores)[i])
                if j >= 0 and ious[j] >= self.thresholds[c]:
                    taken[j] = True
                    if not valid[j]:
                        continue  # matched a box too hard for L2: neither TP nor FP
                    dyaw = abs((pred_boxes[i, 6] - gt_boxes[g[j], 6] + math.pi) % (2 * math.pi) - math.pi)
                    self.records[c].append((score, 1.0, 1.0 - dyaw / math.pi))
                else:
                    self.records[c].append((score, 0.0, 0.0))
            self._match_centers(c, pred_boxes[p], np.asarray(pred_scores)[p], gt_boxes[g], valid)

    def _match_centers(self, c: int, pred: np.ndarray, scores: np.ndarray, gt: np.ndarray,
                       valid: np.ndarray) -> None:
        """Greedy by score: each prediction takes the nearest free ground-truth centre."""
        dist = (np.hypot(pred[:, None, 0] - gt[None, :, 0], pred[:, None, 1] - gt[None, :, 1])
                if len(pred) and len(gt) else np.zeros((len(pred), len(gt))))
        for threshold in self.center_thresholds:
            taken = np.zeros(len(gt), bool)
            for i in range(len(pred)):
                d = np.where(taken, np.inf, dist[i]) if len(gt) else np.array([np.inf])
                j = int(d.argmin())
                if d[j] <= threshold:
                    taken[j] = True
                    if valid[j]:
                        self.center_records[(c, threshold)].append((float(scores[i]), 1.0))
                else:
                    self.center_records[(c, threshold)].append((float(scores[i]), 0.0))

    def compute(self) -> dict[str, float]:
        ap, aph = [], []
        for c in range(self.num_classes):
            if self.n_gt[c] == 0:
                continue
            rec = np.array(self.records[c], float).reshape(-1, 3)
            ap.append(average_precision(rec[:, 0], rec[:, 1], self.n_gt[c]))
            aph.append(average_precision(rec[:, 0], rec[:, 2], self.n_gt[c]))
        center = []
        for c in range(self.num_classes):
            if self.n_gt[c] == 0:
                continue
            for threshold in self.center_thresholds:
                rec = np.array(self.center_records[(c, threshold)], float).reshape(-1, 2)
                center.append(average_precision(rec[:, 0], rec[:, 1], self.n_gt[c]))
        nan = float("nan")
        return {"mAP": float(np.mean(ap)) if ap else nan, "mAPH": float(np.mean(aph)) if aph else nan,
                "mAP_center": float(np.mean(center)) if center else nan}


class SegmentationTrackingQuality:
    """STQ / wSTQ over video sequences of panoptic maps (semantic class + instance id)."""

    def __init__(self, num_classes: int, thing_classes: tuple[int, ...]):
        self.num_classes = num_classes
        self.things = torch.tensor(thing_classes)
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        self.intersection: dict[tuple[int, int], float] = defaultdict(float)
        self.pred_size: dict[int, float] = defaultdict(float)
        self.gt_size: dict[int, float] = defaultdict(float)
        self._sequence = 0

    def new_sequence(self) -> None:
        """Track ids are per sequence: start a new one."""
        self._sequence += 1

    def update(self, pred_sem, pred_id, gt_sem, gt_id, weight=None) -> None:
        """One frame: (H, W) tensors; instance id 0 = no instance; optional per-pixel weights."""
        valid = gt_sem != IGNORE_INDEX
        w = (torch.ones_like(gt_sem, dtype=torch.float64) if weight is None
             else weight.to(torch.float64))[valid]
        ps, pi, gs, gi = pred_sem[valid], pred_id[valid], gt_sem[valid], gt_id[valid]
        idx = gs * self.num_classes + ps
        self.confusion += torch.bincount(idx, weights=w, minlength=self.num_classes**2).reshape(
            self.num_classes, self.num_classes)
        # Tracks are keyed by (sequence, class, id) so ids of different classes never collide.
        base = self._sequence * 10**9
        p_key = torch.where(torch.isin(ps, self.things) & (pi > 0), base + ps * 10**6 + pi, -1)
        g_key = torch.where(torch.isin(gs, self.things) & (gi > 0), base + gs * 10**6 + gi, -1)
        for keys, sizes in ((p_key, self.pred_size), (g_key, self.gt_size)):
            for k, v in zip(*_grouped_sum(keys[keys >= 0], w[keys >= 0]), strict=True):
                sizes[k] += v
        both = (p_key >= 0) & (g_key >= 0)
        pair = torch.stack([p_key[both], g_key[both]], dim=1)
        if len(pair):
            uniq, inv = torch.unique(pair, dim=0, return_inverse=True)
            sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inv, w[both])
            for (p, g), v in zip(uniq.tolist(), sums.tolist(), strict=True):
                self.intersection[(p, g)] += v

    def compute(self) -> dict[str, float]:
        cm = self.confusion
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        sq = float((tp[union > 0] / union[union > 0]).mean()) if (union > 0).any() else 0.0
        per_gt: dict[int, float] = defaultdict(float)
        for (p, g), inter in self.intersection.items():
            iou = inter / (self.pred_size[p] + self.gt_size[g] - inter)
            per_gt[g] += inter * iou
        aq = (float(np.mean([per_gt[g] / size for g, size in self.gt_size.items()]))
              if self.gt_size else 0.0)
        return {"STQ": math.sqrt(sq * aq), "SQ": sq, "AQ": aq}


def _grouped_sum(keys: torch.Tensor, weights: torch.Tensor) -> tuple[list[int], list[float]]:
    if len(keys) == 0:
        return [], []
    uniq, inv = torch.unique(keys, return_inverse=True)
    sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inv, weights)
    return uniq.tolist(), sums.tolist()
