"""Task metrics with a torchmetrics-style interface: ``update(...)`` then ``compute()``.

- ``MeanIoU`` (3D semantic segmentation): IoU per class from torchmetrics' confusion matrix,
  averaged over the classes that occur (prediction or ground truth), "undefined" excluded.
- ``MeanAP2D`` (2D detection): COCO mAP at IoU 0.5 from torchmetrics (faster-coco-eval backend)
  with pycocotools' float64 recall thresholds.
- ``MeanAP3D`` (3D detection): Waymo's L2 AP and APH per class (Hungarian matching at Waymo's
  score cutoffs, 3D IoU or BEV IoU, thresholds vehicle 0.7 and others 0.5, APH's precision
  weighted by heading accuracy and its recall not), following Waymo's C++ metrics, which need
  TensorFlow ops; and ``mAP_center``, nuScenes-style AP matching by BEV centre distance.
- ``SegmentationTrackingQuality`` (2D video panoptic): STQ = sqrt(SQ * AQ) of Weber et al. (2021)
  as deeplab2 computes it, optionally with per-pixel weights.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import cast

import numpy as np
import shapely
import torch
from scipy.optimize import linear_sum_assignment
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
    """COCO mAP@0.5 over boxes given as (x1, y1, x2, y2) pixels, as pycocotools' COCOeval gives it.

    torchmetrics' default recall thresholds are a float32 ``torch.linspace``: 0.6 becomes
    0.60000002, so a recall of exactly 3/5 falls in the next bin; COCO's are
    ``np.linspace(0, 1, 101)`` in float64. The mean is taken here from the float64 precision
    table (``summarize`` averages it the same way: over recall thresholds and classes with ground
    truth), not from torchmetrics' float32 ``map_50``."""

    def __init__(self):
        self.map = MeanAveragePrecision(iou_thresholds=[0.5], rec_thresholds=np.linspace(0, 1, 101).tolist(),
                                        backend="faster_coco_eval", extended_summary=True)

    def update(self, preds: list[dict], targets: list[dict]) -> None:
        self.map.update(preds, targets)

    def compute(self) -> float:
        out = self.map.compute()
        if "precision" not in out:
            return float(out["map_50"])  # nothing to evaluate: COCO's -1
        # (IoU 0.5, recall thresholds, classes, area "all", the largest maxDets)
        precision = out["precision"][0, :, :, 0, -1].double()
        valid = precision > -1
        return float(precision[valid].mean()) if valid.any() else -1.0


def bev_polygon(box: np.ndarray) -> Polygon:
    """Footprint of a box (x, y, z, length, width, height, yaw)."""
    x, y, _, length, width, _, yaw = box[:7]
    c, s = math.cos(yaw), math.sin(yaw)
    corners = [(dx * length / 2, dy * width / 2) for dx, dy in ((1, 1), (1, -1), (-1, -1), (-1, 1))]
    return Polygon([(x + c * u - s * v, y + s * u + c * v) for u, v in corners])


def iou_matrix(a: np.ndarray, b: np.ndarray, kind: str = "3d") -> np.ndarray:
    """IoU of every box in ``a`` (N, 7) with every box in ``b`` (M, 7), as Waymo's ``iou.cc``
    computes it: "3d" (``ComputeIoU3d``) is the rotated footprint intersection times the z overlap
    over the union volume; "bev" (``ComputeIoU2d``, box type 2D) the footprints alone. Boxes with a
    dimension <= 1 cm or >= 1e6 m, and unions <= 1e-6, give 0."""
    a, b = np.asarray(a, float).reshape(-1, 7), np.asarray(b, float).reshape(-1, 7)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    # footprints whose circumscribed circles are apart cannot intersect: only the others are
    # intersected as polygons (the slow part); the rest stay exactly 0
    reach = np.hypot(a[:, None, 3] / 2, a[:, None, 4] / 2) + np.hypot(b[None, :, 3] / 2, b[None, :, 4] / 2)
    near = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1]) <= reach
    inter = np.zeros((len(a), len(b)))
    if near.any():
        rows, cols = np.nonzero(near)
        ia, ib = np.unique(rows), np.unique(cols)
        pa = dict(zip(ia.tolist(), (bev_polygon(a[i]) for i in ia), strict=True))
        pb = dict(zip(ib.tolist(), (bev_polygon(b[j]) for j in ib), strict=True))
        left = np.array([pa[i] for i in rows.tolist()], dtype=object)
        right = np.array([pb[j] for j in cols.tolist()], dtype=object)
        inter[rows, cols] = shapely.area(shapely.intersection(left, right))
    size_a, size_b = a[:, 3] * a[:, 4], b[:, 3] * b[:, 4]
    dims = [3, 4, 5] if kind == "3d" else [3, 4]
    if kind == "3d":
        top = np.minimum(a[:, None, 2] + a[:, None, 5] / 2, b[None, :, 2] + b[None, :, 5] / 2)
        bottom = np.maximum(a[:, None, 2] - a[:, None, 5] / 2, b[None, :, 2] - b[None, :, 5] / 2)
        inter = inter * np.maximum(top - bottom, 0.0)
        size_a, size_b = size_a * a[:, 5], size_b * b[:, 5]
    union = size_a[:, None] + size_b[None, :] - inter
    iou = np.where(union > 1e-6, inter / np.where(union > 1e-6, union, 1.0), 0.0)
    # .all(1) of a 2-D array is an array (numpy's stub also allows a scalar)
    sane_a = cast(np.ndarray, (a[:, dims] > 1e-2).all(1) & (a[:, 3:6] < 1e6).all(1))
    sane_b = cast(np.ndarray, (b[:, dims] > 1e-2).all(1) & (b[:, 3:6] < 1e6).all(1))
    return np.clip(np.where(sane_a[:, None] & sane_b[None, :], iou, 0.0), 0.0, 1.0)


def bev_iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(iou_matrix(a, b, "bev")[0, 0])


def heading_accuracy(pred_yaw: np.ndarray, gt_yaw: np.ndarray) -> np.ndarray:
    """Waymo's ``ComputeHeadingAccuracy``: 1 - |heading error| / pi, the error wrapped to [0, pi]."""
    pred, gt = (((np.asarray(x, float) + math.pi) % (2 * math.pi)) - math.pi for x in (pred_yaw, gt_yaw))
    d = np.abs(pred - gt)
    d = np.where(d > math.pi, 2 * math.pi - d, d)
    return np.clip(1.0 - d / math.pi, 0.0, 1.0)


def average_precision(scores: np.ndarray, tp_weight: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP (``mAP_center``); ``tp_weight`` is 1 for a TP, 0 for an FP."""
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


# Waymo's score cutoffs (compute_detection_metrics_main.cc, GetConfig): 0, 0.01, ..., 0.99, 1,
# held as the proto's float.
WAYMO_SCORE_CUTOFFS = np.array([i * 0.01 for i in range(100)] + [1.0], dtype=np.float32)


def waymo_average_precision(precisions: np.ndarray, recalls: np.ndarray,
                            max_recall_delta: float = 0.05) -> float:
    """Waymo's ``ComputeMeanAveragePrecision`` (metrics_utils.cc), in its float32: the best
    precision per recall plus (recall 0, precision 1); from high recall to low, the running
    maximum precision (the envelope), with a point added every ``max_recall_delta`` across wider
    gaps; the recall-0 point takes the precision of the point above it; trapezoidal area."""
    f = np.float32
    best: dict[float, np.float32] = {0.0: f(1.0)}
    for p, r in zip(np.asarray(precisions, f), np.asarray(recalls, f), strict=True):
        best[float(r)] = max(best.get(float(r), f(0.0)), p)
    delta, tolerance = f(max_recall_delta), f(max_recall_delta) + f(1e-6)
    curve: list[tuple[np.float32, np.float32]] = []  # (precision, recall), recall descending
    last_recall, max_precision = f(min(best)), f(0.0)
    for r in sorted(best, reverse=True):
        while last_recall - f(r) > tolerance:
            last_recall = last_recall - delta
            curve.append((max_precision, last_recall))
        max_precision = max(best[r], max_precision)
        curve.append((max_precision, f(r)))
        last_recall = f(r)
    if len(curve) >= 2:
        curve[-1] = (curve[-2][0], curve[-1][1])
    ap = f(0.0)
    for (p0, r0), (p1, r1) in zip(curve[:-1], curve[1:], strict=True):
        ap = f(float(ap) + 0.5 * float(r0 - r1) * float(p0 + p1))
    return float(ap)


class MeanAP3D:
    """Waymo's L2 mAP and mAPH over classes, as its ``detection_metrics.cc`` computes them, and
    ``mAP_center``. Boxes (N, 7) = x, y, z, length, width, height, yaw.

    Per frame and class, at each of Waymo's 101 score cutoffs, the predictions at or above the
    cutoff are matched to the ground truth by the Hungarian matcher (maximum sum of IoUs rounded
    to 1e-6 over pairs at or above the class's IoU threshold; ``matcher.cc``). TP, FP and
    sum(heading accuracy) add up over frames; then precision = TP / (TP + FP), APH's precision =
    sum(heading accuracy) / (TP + FP), and both use recall = TP / n_gt (``ToDetectionMetrics``);
    AP is ``waymo_average_precision`` of that curve. Ground-truth boxes with no LiDAR point are
    removed before matching, as Waymo's tool does, so a detection of one is a false positive; L2
    counts all the others. ``iou``: "3d" (Waymo's box type for 3D detection) or "bev".
    ``mAP_center``: nuScenes-style AP matching by BEV centre distance, which still rewards a
    detector whose boxes are near but not IoU-tight (the tiny model's BEV cells are 2.5 m)."""

    def __init__(self, num_classes: int, iou_thresholds: tuple[float, ...] = (0.7, 0.5, 0.5, 0.5),
                 center_thresholds_m: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0), iou: str = "3d"):
        if iou not in ("3d", "bev"):
            raise ValueError(f"iou must be '3d' or 'bev', not {iou!r}")
        self.num_classes = num_classes
        self.thresholds = iou_thresholds
        self.center_thresholds = center_thresholds_m
        self.iou = iou
        shape = (num_classes, len(WAYMO_SCORE_CUTOFFS))
        self.tp, self.fp = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.int64)
        self.sum_ha = np.zeros(shape)
        # (class, distance threshold) -> (score, 1 if TP else 0)
        self.center_records: dict[tuple[int, float], list[tuple[float, float]]] = defaultdict(list)
        self.n_gt = np.zeros(num_classes, dtype=int)

    def update(self, pred_boxes, pred_scores, pred_labels, gt_boxes, gt_labels, gt_points) -> None:
        """One frame. ``gt_points``: LiDAR points inside each ground-truth box."""
        pred_boxes = np.asarray(pred_boxes, float).reshape(-1, 7)
        gt_boxes = np.asarray(gt_boxes, float).reshape(-1, 7)
        scores = np.asarray(pred_scores, np.float32).reshape(-1)  # Waymo's Object.score is a float
        pred_labels, gt_labels = np.asarray(pred_labels).reshape(-1), np.asarray(gt_labels).reshape(-1)
        points = np.asarray(gt_points).reshape(-1)
        for c in range(self.num_classes):
            g = np.flatnonzero(gt_labels == c)
            valid = points[g] > 0
            self.n_gt[c] += int(valid.sum())
            p = np.flatnonzero(pred_labels == c)
            p = p[np.argsort(-scores[p], kind="stable")]
            self._match_iou(c, pred_boxes[p], scores[p], gt_boxes[g[valid]])
            self._match_centers(c, pred_boxes[p], scores[p], gt_boxes[g], valid)

    def _match_iou(self, c: int, pred: np.ndarray, scores: np.ndarray, gt: np.ndarray) -> None:
        """``pred`` sorted by score, so each cutoff keeps a prefix: match each distinct prefix."""
        iou = iou_matrix(pred, gt, self.iou)
        matchable = iou >= self.thresholds[c]
        weight = np.where(matchable, np.round(iou.astype(np.float32) * 1e6), 0.0)
        kept = (scores[:, None] >= WAYMO_SCORE_CUTOFFS[None, :]).sum(0)
        # a prefix without a matchable prediction matches nothing: no assignment to solve
        hits = np.flatnonzero(matchable.any(1))
        first = int(hits[0]) if len(hits) else len(pred)
        for n in np.unique(kept):
            tp, sum_ha = 0, 0.0
            if n > first:
                rows, cols = linear_sum_assignment(weight[:n], maximize=True)
                ok = matchable[rows, cols]
                tp = int(ok.sum())
                sum_ha = float(heading_accuracy(pred[rows[ok], 6], gt[cols[ok], 6]).sum())
            at = kept == n
            self.tp[c, at] += tp
            self.fp[c, at] += n - tp
            self.sum_ha[c, at] += sum_ha

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
        f = np.float32
        ap, aph = [], []
        for c in np.flatnonzero(self.n_gt > 0):
            tp, detections = self.tp[c], (self.tp[c] + self.fp[c]).astype(f)
            recall = tp.astype(f) / f(self.n_gt[c])
            # Both precisions over TP + FP (0 with no detection); "if recall = 0.0, manually set
            # precision = 1.0".
            precision, precision_ha = (
                np.where(recall == 0, f(1.0), x.astype(f) / np.maximum(detections, f(1.0)))
                for x in (tp, self.sum_ha[c]))
            ap.append(waymo_average_precision(precision, recall))
            aph.append(waymo_average_precision(precision_ha, recall))
        center = []
        for k in range(self.num_classes):
            if self.n_gt[k] == 0:
                continue
            for threshold in self.center_thresholds:
                rec = np.array(self.center_records[(k, threshold)], float).reshape(-1, 2)
                center.append(average_precision(rec[:, 0], rec[:, 1], self.n_gt[k]))
        nan = float("nan")
        return {"mAP": float(np.mean(ap)) if ap else nan, "mAPH": float(np.mean(aph)) if aph else nan,
                "mAP_center": float(np.mean(center)) if center else nan}


class SegmentationTrackingQuality:
    """STQ = sqrt(SQ * AQ) of Weber et al. (2021), as deeplab2 computes it
    (``evaluation/numpy/segmentation_and_tracking_quality.py``).

    SQ: IoU per class over all frames, averaged over the classes with a non-empty union; pixels
    whose ground truth is void (``IGNORE_INDEX``) are left out, and a prediction of void counts as
    a class of its own (IoU 0). AQ: per sequence, tubes are (class, id) over its frames; every
    thing pixel a prediction claims counts, id 0 included (one tube per class) and void ground
    truth included, except "crowd" pixels (ground-truth thing class with id 0). Each ground-truth
    tube g scores sum_p |p & g| IoU(p, g) / |g|; AQ is their mean. Optional per-pixel weights
    scale every count."""

    def __init__(self, num_classes: int, thing_classes: tuple[int, ...]):
        self.num_classes = num_classes
        self.things = torch.tensor(thing_classes)
        size = num_classes + 1  # the last row and column: void
        self.confusion = torch.zeros(size, size, dtype=torch.float64)
        # tubes are (sequence, class, id); intersections (sequence, ground-truth tube, predicted tube)
        self.pred_size: dict[tuple[int, ...], float] = defaultdict(float)
        self.gt_size: dict[tuple[int, ...], float] = defaultdict(float)
        self.intersection: dict[tuple[int, ...], float] = defaultdict(float)
        self._sequence = 0

    def new_sequence(self) -> None:
        """Track ids are per sequence: start a new one."""
        self._sequence += 1

    def update(self, pred_sem, pred_id, gt_sem, gt_id, weight=None) -> None:
        """One frame: (H, W) tensors; instance id 0 = no instance; optional per-pixel weights."""
        ps, pi, gs, gi = (torch.as_tensor(x).reshape(-1).long() for x in (pred_sem, pred_id, gt_sem, gt_id))
        w = (torch.ones(len(gs), dtype=torch.float64) if weight is None
             else torch.as_tensor(weight).reshape(-1).to(torch.float64))
        n, void = self.num_classes + 1, gs == IGNORE_INDEX
        cell = gs * n + torch.where(ps == IGNORE_INDEX, n - 1, ps)
        self.confusion += torch.bincount(cell[~void], weights=w[~void], minlength=n * n).reshape(n, n)
        gt_thing = torch.isin(gs, self.things)
        crowd = gt_thing & (gi == 0)
        g_mask, p_mask = gt_thing & ~crowd, torch.isin(ps, self.things) & ~crowd
        for columns, mask, sums in (((ps, pi), p_mask, self.pred_size), ((gs, gi), g_mask, self.gt_size),
                                    ((gs, gi, ps, pi), g_mask & p_mask, self.intersection)):
            for key, v in _grouped_sum(torch.stack(columns, 1)[mask], w[mask]):
                sums[(self._sequence, *key)] += v

    def compute(self) -> dict[str, float]:
        cm = self.confusion
        tp = cm.diag()
        union = cm.sum(0) + cm.sum(1) - tp
        # nothing but void: no class to average over, NaN as deeplab2's mean IoU (0 / 0)
        sq = float((tp[union > 0] / union[union > 0]).mean()) if (union > 0).any() else math.nan
        per_gt: dict[tuple[int, ...], float] = defaultdict(float)
        for (s, gc, gi, pc, pi), inter in self.intersection.items():
            g, p = (s, gc, gi), (s, pc, pi)
            per_gt[g] += inter * inter / (self.pred_size[p] + self.gt_size[g] - inter)
        aq = (float(np.mean([per_gt[g] / size for g, size in self.gt_size.items()]))
              if self.gt_size else 0.0)
        return {"STQ": math.sqrt(sq * aq), "SQ": sq, "AQ": aq}


def _grouped_sum(keys: torch.Tensor, weights: torch.Tensor) -> list[tuple[tuple[int, ...], float]]:
    """Sum of ``weights`` per distinct row of ``keys``."""
    if len(keys) == 0:
        return []
    # rows of non-negative ints as one int64 each (mixed radix: the same sorted order as the
    # rows'), so the distinct rows come from a 1-D unique, many times faster than unique(dim=0)
    radix = keys.max(0).values + 1
    if keys.min() < 0 or float(torch.prod(radix.double())) >= 2.0**62:
        uniq, inv = torch.unique(keys, dim=0, return_inverse=True)
    else:
        code = torch.zeros(len(keys), dtype=torch.long)
        for j in range(keys.shape[1]):
            code = code * radix[j] + keys[:, j]
        codes, inv = torch.unique(code, return_inverse=True)
        uniq = torch.empty((len(codes), keys.shape[1]), dtype=torch.long)
        for j in reversed(range(keys.shape[1])):
            uniq[:, j] = codes % radix[j]
            codes = codes // radix[j]
    sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inv, weights)
    return [(tuple(k), v) for k, v in zip(uniq.tolist(), sums.tolist(), strict=True)]
