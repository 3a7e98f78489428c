"""Metrics on hand-made cases whose values are worked out in the comments or come from the reference
implementations (pycocotools, deeplab2, Waymo's documented algorithm)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosim.learning.classes import IGNORE_INDEX
from cosim.learning.metrics import (
    MeanAP2D,
    MeanAP3D,
    MeanIoU,
    SegmentationTrackingQuality,
    average_precision,
    bev_iou,
    iou_matrix,
    waymo_average_precision,
)


def test_mean_iou_by_hand():
    m = MeanIoU(num_classes=4, exclude=(0,))
    target = torch.tensor([1, 1, 2, 2, 0, 255])
    pred = torch.tensor([1, 2, 2, 2, 3, 3])
    m.update(pred, target)
    # class 1: tp 1, union 2 -> 0.5; class 2: tp 2, union 3 -> 2/3; class 3: tp 0, union 1 -> 0
    # (the 255 pixel is ignored; class 0 is excluded from the mean)
    assert m.compute() == pytest.approx((0.5 + 2 / 3 + 0.0) / 3)


def test_map_2d_at_half_iou():
    m = MeanAP2D()
    m.update([{"boxes": torch.tensor([[0.0, 0, 10, 10], [50, 50, 60, 60]]),
               "scores": torch.tensor([0.9, 0.8]), "labels": torch.tensor([0, 0])}],
             [{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "labels": torch.tensor([0])}])
    # the top-scored box is a true positive, so recall 1 is reached at precision 1: AP 1
    assert m.compute() == pytest.approx(1.0)
    m = MeanAP2D()
    m.update([{"boxes": torch.tensor([[0.0, 0, 10, 10]]), "scores": torch.tensor([0.9]),
               "labels": torch.tensor([0])}],
             [{"boxes": torch.tensor([[0.0, 5, 10, 15]]), "labels": torch.tensor([0])}])
    assert m.compute() == pytest.approx(0.0)  # IoU 1/3 < 0.5


def test_bev_iou_rotated():
    a = np.array([0, 0, 0, 4, 2, 1, 0.0])
    assert bev_iou(a, a) == pytest.approx(1.0)
    assert bev_iou(a, np.array([2, 0, 0, 4, 2, 1, 0.0])) == pytest.approx(4 / 12)
    # a square rotated by 45 degrees inside itself: identical footprint area, IoU by geometry
    sq = np.array([0, 0, 0, 2, 2, 1, 0.0])
    rot = np.array([0, 0, 0, 2, 2, 1, math.pi / 4])
    inter = 8 * (math.sqrt(2) - 1)  # regular octagon of two unit-half-width squares
    assert bev_iou(sq, rot) == pytest.approx(inter / (8 - inter), rel=1e-6)


def test_average_precision_by_hand():
    # scores 0.9 TP, 0.8 FP, 0.7 TP; 2 ground truths: P/R = (1, .5), (.5, .5), (2/3, 1)
    # envelope: precision at recall .5 is 1, at recall 1 is 2/3 -> AP = .5 * 1 + .5 * 2/3
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([1.0, 0.0, 1.0]), 2)
    assert ap == pytest.approx(0.5 + 1 / 3)


def test_stq_by_hand():
    stq = SegmentationTrackingQuality(num_classes=3, thing_classes=(1,))
    # two frames, 1 x 4 pixels; class 1 is a thing with one ground-truth track (id 1)
    gt_sem = torch.tensor([[1, 1, 0, 2]])
    gt_id = torch.tensor([[1, 1, 0, 0]])
    # frame 1: perfect; frame 2: the tracker switches id for one of the two pixels
    stq.update(gt_sem, gt_id, gt_sem, gt_id)
    stq.update(gt_sem, torch.tensor([[1, 2, 0, 0]]), gt_sem, gt_id)
    out = stq.compute()
    assert out["SQ"] == pytest.approx(1.0)
    # gt track g: 4 pixels; pred id 1: 3 pixels, overlap 3 -> IoU 3/4; pred id 2: 1 pixel,
    # overlap 1 -> IoU 1/4. AQ = (3 * 3/4 + 1 * 1/4) / 4 = 0.625
    assert out["AQ"] == pytest.approx(0.625)
    assert out["STQ"] == pytest.approx(math.sqrt(0.625))


def test_weighted_stq_discounts_shared_pixels():
    stq = SegmentationTrackingQuality(num_classes=2, thing_classes=(1,))
    gt_sem, gt_id = torch.tensor([[1, 1]]), torch.tensor([[1, 1]])
    pred_id = torch.tensor([[1, 2]])  # the second pixel is tracked wrong
    # the wrongly tracked pixel is seen by two cameras: weight 1/2
    stq.update(gt_sem, pred_id, gt_sem, gt_id, weight=torch.tensor([[1.0, 0.5]]))
    # |g| = 1.5; id 1: overlap 1, IoU 1/1.5; id 2: overlap .5, IoU .5/1.5
    aq = (1 * (1 / 1.5) + 0.5 * (0.5 / 1.5)) / 1.5
    assert stq.compute()["AQ"] == pytest.approx(aq)


def test_map_3d_by_centre_distance():
    m = MeanAP3D(num_classes=1, center_thresholds_m=(0.5, 1.0, 2.0, 4.0))
    gt = np.array([[0, 0, 0, 4, 2, 1.5, 0.0]])
    pred = np.array([[1.5, 0, 0, 4, 2, 1.5, 0.0]])  # 1.5 m off: a hit at 2 and 4 m only
    m.update(pred, [0.9], [0], gt, [0], gt_points=[12])
    out = m.compute()
    assert out["mAP_center"] == pytest.approx(0.5)
    assert out["mAP"] == pytest.approx(0.0)  # IoU 2.5 / 5.5 < 0.7


def test_small_2d_boxes_are_dont_care():
    from types import SimpleNamespace

    from cosim.learning.tasks import SPECS
    from cosim.scenario import EvaluationConfig

    scores = torch.full((4, 32, 32), -10.0)
    scores[0, 10, 10] = 5.0
    reg = torch.zeros(4, 32, 32)
    reg[:2, 10, 10] = 0.5
    reg[2:, 10, 10] = math.log(4.0)  # 4 cells of 2 px: an 8 x 8 px box centred at (21, 21)
    target = {"boxes": [np.array([[17.0, 17, 25, 25], [50, 50, 51, 52]])],
              "box_labels": [np.array([0, 0])]}
    model = SimpleNamespace(image_size=64)
    results = {}
    for min_size in (0.0625, 0.0):
        ev = SPECS["det2d"].evaluator(model, EvaluationConfig(det2d_min_height=min_size,
                                                              det2d_min_width=min_size))
        ev.update(scores, reg, target, 0, {})
        results[min_size] = ev.compute()["mAP50"]
    assert results[0.0625] == pytest.approx(1.0)  # the 1 x 2 px box is don't care
    assert results[0.0] == pytest.approx(51 / 101)  # all count: recall 1/2 (COCO 101 points)
    narrow = {"boxes": [np.array([[17.0, 17, 25, 25], [40, 40, 42, 52]])],  # 2 px wide, 12 tall
              "box_labels": [np.array([0, 0])]}
    for min_width, expected in ((0.0625, 1.0), (0.0, 51 / 101)):
        ev = SPECS["det2d"].evaluator(model, EvaluationConfig(det2d_min_width=min_width))
        ev.update(scores, reg, narrow, 0, {})
        assert ev.compute()["mAP50"] == pytest.approx(expected)


# ---- 2D AP: pycocotools' COCOeval is the reference -----------------------------------------------
def _cocoeval_map50(gt: np.ndarray, det: np.ndarray, scores: np.ndarray) -> float:
    """COCOeval at IoU 0.5 on one image and one class of 30 x 30 px boxes given as (x1, y1, ...)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    coco = COCO()
    coco.dataset = {"images": [{"id": 0, "width": 2000, "height": 500}], "categories": [{"id": 0}],
                    "annotations": [{"id": k + 1, "image_id": 0, "category_id": 0, "iscrowd": 0,
                                     "bbox": [b[0], b[1], 30.0, 30.0], "area": 900.0}
                                    for k, b in enumerate(gt)]}
    coco.createIndex()
    found = coco.loadRes([{"image_id": 0, "category_id": 0, "score": float(s),
                           "bbox": [b[0], b[1], 30.0, 30.0]} for b, s in zip(det, scores, strict=True)])
    ev = COCOeval(coco, found, "bbox")
    ev.params.iouThrs = np.array([0.5])
    ev.evaluate()
    ev.accumulate()
    return float(ev.eval["precision"][0, :, 0, 0, -1].mean())  # IoU 0.5, all areas, 100 dets


@pytest.mark.parametrize(("n_gt", "first_hits"), [(5, 3), (25, 7), (20, 11), (10, 3)])
def test_map_2d_equals_pycocotools_where_recall_hits_exact_fractions(n_gt, first_hits):
    """The ``first_hits`` best-scored detections hit (recall exactly first_hits / n_gt at precision
    1), five misses follow, then the other ground truths are hit. COCO reads precision at the recall
    thresholds np.linspace(0, 1, 101) (float64); torchmetrics' default float32 torch.linspace puts
    0.6, 0.28 and 0.55 just above themselves (0.60000002, ...), past the recall reached, and so
    lost precision 1 at that threshold (before this fix: -5.0e-3, -1.7e-3, -2.0e-3 against COCO).
    0.3 (10, 3) rounds down in float32 and was already right."""
    pytest.importorskip("pycocotools", reason="pycocotools is in the dev extra")
    gt = np.array([[40.0 * i, 0, 40.0 * i + 30, 30] for i in range(n_gt)])
    misses = np.array([[40.0 * i, 200, 40.0 * i + 30, 230] for i in range(5)])
    det = np.vstack([gt[:first_hits], misses, gt[first_hits:]])
    scores = np.linspace(0.95, 0.1, len(det))
    m = MeanAP2D()
    m.update([{"boxes": torch.tensor(det), "scores": torch.tensor(scores),
               "labels": torch.zeros(len(det), dtype=torch.long)}],
             [{"boxes": torch.tensor(gt), "labels": torch.zeros(n_gt, dtype=torch.long)}])
    assert m.compute() == pytest.approx(_cocoeval_map50(gt, det, scores), abs=1e-12)
    k = round(100 * first_hits / n_gt)
    float32_bin = torch.linspace(0.0, 1.0, 101)[k].item()
    assert (float32_bin > first_hits / n_gt) == (k != 30), "the case bites where float32 rounds up"


# ---- 3D detection: Waymo's detection metrics ---------------------------------------------------
# Expected values are worked out from waymo-research/waymo-open-dataset at commit
# 99a4cb3ff07e2fe06c2ce73da001f850f628e45a (its C++ cannot run here), src/waymo_open_dataset/metrics/:
# - tools/compute_detection_metrics_main.cc, GetConfig: score cutoffs 0, 0.01, ..., 0.99, 1; box type
#   3D; Hungarian matcher; IoU thresholds vehicle 0.7, others 0.5. Compute(): ground truths with
#   num_lidar_points_in_box <= 0 are dropped before matching; L2 counts every other one.
# - detection_metrics.cc, ComputeDetectionMeasurementFromMatchingResult: at each cutoff TP =
#   matched predictions, sum_ha += their heading accuracy, FP = unmatched predictions, FN =
#   unmatched ground truths. ToDetectionMetrics: precision = TP / (TP + FP), precision_ha =
#   sum_ha / (TP + FP), recall = recall_ha = TP / (TP + FN); where recall is 0, precision := 1.
# - metrics_utils.cc, ComputeMeanAveragePrecision (desired_recall_delta 0.05): best precision per
#   recall plus (0, 1); from high recall down, running max precision, a point added every 0.05
#   across wider gaps; the recall-0 point takes the precision above it; trapezoidal area.
#   ComputeHeadingAccuracy: 1 - |heading error| / pi.
# - iou.cc, ComputeIoU3d: footprint intersection x z overlap / union volume.


def test_iou_3d_with_z_offset():
    a = np.array([[0, 0, 0, 4, 2, 2, 0.0]])
    b = np.array([[1, 0, 0.5, 4, 2, 2, 0.0]])  # 1 m ahead, 0.5 m higher
    # footprint overlap 3 x 2 = 6; z ranges [-1, 1] and [-0.5, 1.5] overlap 1.5: 9 m^3 of 16 + 16
    assert iou_matrix(a, b)[0, 0] == pytest.approx(9 / (32 - 9))
    assert iou_matrix(a, b, "bev")[0, 0] == pytest.approx(6 / (16 - 6))
    # a 2 x 2 x 2 cube and the same cube turned 45 degrees and raised 1 m: octagon 8(sqrt 2 - 1) m^2
    # (see test_bev_iou_rotated) times 1 m of z overlap, over 8 + 8 m^3
    sq, rot = np.array([[0, 0, 0, 2, 2, 2, 0.0]]), np.array([[0, 0, 1, 2, 2, 2, math.pi / 4]])
    inter = 8 * (math.sqrt(2) - 1)
    assert iou_matrix(sq, rot)[0, 0] == pytest.approx(inter / (16 - inter), rel=1e-6)
    # stacked boxes only touch (closed z ranges meet at z = 1): no volume in common
    assert iou_matrix(a, np.array([[0, 0, 2, 4, 2, 2, 0.0]]))[0, 0] == 0.0


def test_maph_weights_precision_by_heading_not_recall():
    m = MeanAP3D(num_classes=1, iou_thresholds=(0.5,))
    # 2 x 2 m footprints: a quarter turn keeps the footprint (IoU 1) but halves heading accuracy
    gt = np.array([[0, 0, 0, 2, 2, 1.5, 0.0], [10, 0, 0, 2, 2, 1.5, 0.0]])
    pred = np.array([[0, 0, 0, 2, 2, 1.5, 0.0], [10, 0, 0, 2, 2, 1.5, math.pi / 2]])
    m.update(pred, [0.9, 0.8], [0, 0], gt, [0, 0], gt_points=[10, 10])
    out = m.compute()
    # cutoffs 0-0.80: TP 2, FP 0, sum_ha 1 + 0.5: recall 1, precision 1, precision_ha 0.75
    # cutoffs 0.81-0.90: TP 1: recall 0.5, precision 1, precision_ha 1; above: recall 0, precision 1
    # AP: (1, 1), (0.5, 1), (0, 1): area 1
    # APH: (1, 0.75), points every 0.05 at 0.75 down to 0.55, (0.5, 1), points at 1 down to 0.05,
    # (0, 1): 0.45 * 0.75 + 0.05 * (0.75 + 1) / 2 + 0.5 * 1 = 0.88125. Heading-weighting the
    # recall as well (the old definition: recall 0.5 then 0.75, precision 1) gave 0.75.
    assert out["mAP"] == pytest.approx(1.0, abs=1e-6)
    assert out["mAPH"] == pytest.approx(0.88125, abs=1e-6)


def test_waymo_ap_is_trapezoidal_at_recall_steps_of_0_05():
    m = MeanAP3D(num_classes=1, iou_thresholds=(0.5,))
    gt = np.array([[0, 0, 0, 4, 2, 1.5, 0.0], [10, 0, 0, 4, 2, 1.5, 0.0]])
    pred = np.array([[0, 0, 0, 4, 2, 1.5, 0.0], [30, 0, 0, 4, 2, 1.5, 0.0], [10, 0, 0, 4, 2, 1.5, 0.0]])
    m.update(pred, [0.9, 0.8, 0.7], [0, 0, 0], gt, [0, 0], gt_points=[10, 10])
    # TP, FP, TP: cutoffs <= 0.7: recall 1, precision 2/3; 0.71-0.8: recall 0.5, precision 1/2;
    # 0.81-0.9: recall 0.5, precision 1 (the best at recall 0.5); above: recall 0, precision 1.
    # (1, 2/3), points at 2/3 down to 0.55, (0.5, 1), points at 1 down to 0.05, (0, 1):
    # 0.45 * 2/3 + 0.05 * (2/3 + 1) / 2 + 0.5 = 0.841667 (all-point AP would say 0.833333)
    assert m.compute()["mAP"] == pytest.approx(0.45 * 2 / 3 + 0.05 * (2 / 3 + 1) / 2 + 0.5, abs=1e-6)
    assert average_precision(np.array([0.9, 0.8, 0.7]), np.array([1.0, 0, 1]), 2) == pytest.approx(5 / 6)


def test_waymo_matching_is_hungarian_not_greedy():
    m = MeanAP3D(num_classes=2, iou_thresholds=(0.7, 0.5))
    # pedestrians 3 x 1 x 1 along x: IoU of two such boxes d apart is (3 - d) / (3 + d)
    gt = np.array([[0, 0, 0, 3, 1, 1, 0.0], [1.5, 0, 0, 3, 1, 1, 0.0]])
    pred = np.array([[0.6, 0, 0, 3, 1, 1, 0.0], [-0.9, 0, 0, 3, 1, 1, 0.0]])
    # p1 (0.9): IoU 2/3 with g1, 7/13 with g2; p2 (0.8): 7/13 with g1, 0.6/5.4 with g2 (< 0.5).
    # Greedy by score would give p1 -> g1 and leave p2 unmatched; the maximum IoU sum is
    # p1 -> g2, p2 -> g1 (14/13 > 2/3): two TPs at every cutoff up to 0.8 -> AP 1.
    m.update(pred, [0.9, 0.8], [1, 1], gt, [1, 1], gt_points=[3, 3])
    assert m.compute()["mAP"] == pytest.approx(1.0, abs=1e-6)


def test_map_3d_drops_empty_ground_truth_and_uses_3d_iou():
    gt = np.array([[0, 0, 0, 4, 2, 2, 0.0], [20, 0, 0, 4, 2, 2, 0.0]])
    pred = np.array([[20, 0, 0, 4, 2, 2, 0.0],  # 0.9: on the ground truth with no LiDAR point
                     [0, 0, 0, 4, 2, 2, 0.0]])  # 0.8: on the other one
    m = MeanAP3D(num_classes=1)
    m.update(pred, [0.9, 0.8], [0, 0], gt, [0, 0], gt_points=[30, 0])
    # the empty box is dropped before matching, so the 0.9 detection is an FP: cutoffs <= 0.8:
    # recall 1, precision 1/2; 0.81-0.9: recall 0, precision 1. (1, 0.5), points at 0.5 down to
    # 0.05, (0, 0.5): AP 0.5
    assert m.compute()["mAP"] == pytest.approx(0.5, abs=1e-6)
    raised = np.array([[0, 0, 0.5, 4, 2, 2, 0.0]])  # same footprint, 0.5 m higher: 3D IoU 12 / 20
    for iou, expected in (("3d", 0.0), ("bev", 1.0)):
        m = MeanAP3D(num_classes=1, iou=iou)  # vehicle: IoU threshold 0.7
        m.update(raised, [0.9], [0], gt[:1], [0], gt_points=[30])
        # an FP alone: only (0, 1) -> AP 0; a TP: (1, 1), (0, 1) -> AP 1
        assert m.compute()["mAP"] == pytest.approx(expected, abs=1e-6)
    with pytest.raises(ValueError):
        MeanAP3D(num_classes=1, iou="2d")


def test_waymo_average_precision_edges():
    # no recall reached: the curve is the single point (0, 1), area 0
    assert waymo_average_precision(np.array([1.0]), np.array([0.0])) == 0.0
    # recall 1 at precision 1: area 1, whatever the order of the points
    assert waymo_average_precision(np.array([1.0, 1.0]), np.array([1.0, 0.0])) == pytest.approx(1.0, abs=1e-6)


# ---- STQ: deeplab2 is the reference ------------------------------------------------------------
V = IGNORE_INDEX
# (num_classes, thing classes, frames); a frame is (sequence, pred_sem, pred_id, gt_sem, gt_id, weights)
STQ_CASES = {
    # perfect semantics, no instance centre found: every thing pixel predicted with id 0
    "id0": (4, (1, 2), [
        (0, [[1, 1, 2, 2], [2, 2, 0, 3]], [[0, 0, 0, 0], [0, 0, 0, 0]],
            [[1, 1, 2, 2], [2, 2, 0, 3]], [[1, 1, 1, 1], [2, 2, 0, 0]], None),
    ]),
    # predictions on void pixels (ground truth 255), one of them predicted as void itself
    "void": (3, (1,), [
        (0, [[1, 1, 1, 0, 2, V]], [[1, 1, 1, 0, 0, 0]], [[1, 1, V, V, 2, 2]], [[1, 1, 0, 0, 0, 0]], None),
        (0, [[1, 1, 0, 1, 2, 2]], [[1, 1, 0, 1, 0, 0]], [[1, 1, 1, V, 2, 2]], [[1, 1, 1, 0, 0, 0]], None),
    ]),
    # crowd: thing pixels with ground-truth instance id 0
    "crowd": (3, (1, 2), [
        (0, [[1, 1, 1, 1, 2, 2]], [[1, 1, 1, 2, 3, 3]], [[1, 1, 1, 1, 2, 0]], [[1, 1, 0, 0, 0, 0]], None),
        (0, [[1, 1, 1, 0, 2, 2]], [[1, 1, 1, 0, 3, 3]], [[1, 1, 1, 1, 2, 2]], [[1, 1, 0, 0, 5, 5]], None),
    ]),
    # two sequences reusing the same ids for different objects
    "two_sequences": (3, (1,), [
        (0, [[1, 1, 0, 2]], [[1, 1, 0, 0]], [[1, 1, 0, 2]], [[1, 1, 0, 0]], None),
        (0, [[1, 1, 0, 2]], [[1, 2, 0, 0]], [[1, 1, 0, 2]], [[1, 1, 0, 0]], None),
        (1, [[0, 1, 1, 2]], [[0, 1, 1, 0]], [[0, 1, 1, 2]], [[0, 1, 1, 0]], None),
        (1, [[0, 1, 1, 0]], [[0, 1, 1, 0]], [[0, 1, 1, 2]], [[0, 2, 2, 0]], None),
    ]),
    # several tracks, id switches, a spurious predicted track and semantic errors
    "switches": (4, (1, 2), [
        (0, [[1, 1, 0, 2], [1, 1, 3, 2]], [[1, 1, 0, 4], [2, 2, 0, 4]],
            [[1, 1, 0, 2], [1, 1, 3, 2]], [[1, 1, 0, 3], [2, 2, 0, 3]], None),
        (0, [[1, 1, 0, 2], [1, 1, 0, 2]], [[2, 2, 0, 4], [1, 1, 0, 4]],
            [[1, 1, 0, 2], [1, 1, 3, 2]], [[1, 1, 0, 3], [2, 2, 0, 3]], None),
        (0, [[1, 1, 1, 2], [1, 1, 3, 3]], [[2, 1, 7, 4], [1, 1, 0, 0]],
            [[1, 1, 0, 2], [1, 1, 3, 2]], [[1, 1, 0, 3], [2, 2, 0, 3]], None),
    ]),
    # per-pixel weights (deeplab2 is written for 0.5 and 1), with void and crowd pixels
    "weights": (3, (1,), [
        (0, [[1, 1, 1, 1, 0, 1]], [[1, 2, 2, 1, 0, 1]], [[1, 1, 1, V, 0, 1]], [[1, 1, 1, 0, 0, 0]],
            [[1.0, 0.5, 0.5, 1.0, 1.0, 0.5]]),
        (0, [[1, 1, 1, 0, 0, 1]], [[1, 1, 2, 0, 0, 1]], [[1, 1, 1, 0, 0, 1]], [[1, 1, 1, 0, 0, 2]],
            [[0.5, 0.5, 1.0, 1.0, 1.0, 1.0]]),
    ]),
}
# (STQ, AQ, IoU) from deeplab2's evaluation/numpy/segmentation_and_tracking_quality.py at commit
# 64bc1c1a6505b6cd1779b65f9127180840b8a4fa (google-research/deeplab2; the file last changed in
# e96d6cb446421a322e9d716332590ad2e9510fab), run on exactly these inputs as
# STQuality(num_classes, things, ignore_label=255, label_bit_shift=16, offset=256 << 16) and, per
# frame, update_state((gt_sem << 16) + gt_id, (pred_sem << 16) + pred_id, sequence, weights).
# deeplab2 sums areas in float32: hence rel=1e-6.
DEEPLAB2_STQ = {
    "id0": (0.816496580927726, 0.6666666666666666, 1.0),
    "void": (0.4208834395424937, 0.4571428894996643, 0.3875),
    "crowd": (0.6718548283764793, 0.8333333730697632, 0.5416666666666666),
    "two_sequences": (0.6785400995274093, 0.5416666666666666, 0.85),
    "switches": (0.5675499373625925, 0.4674383004506429, 0.6891025641025641),
    "weights": (0.5773502777928151, 0.3333333432674408, 1.0),
}


@pytest.mark.parametrize("case", sorted(STQ_CASES))
def test_stq_equals_deeplab2(case):
    num_classes, things, frames = STQ_CASES[case]
    m = SegmentationTrackingQuality(num_classes, things)
    sequence = frames[0][0]
    for seq, pred_sem, pred_id, gt_sem, gt_id, weight in frames:
        if seq != sequence:
            m.new_sequence()
            sequence = seq
        m.update(torch.tensor(pred_sem), torch.tensor(pred_id), torch.tensor(gt_sem), torch.tensor(gt_id),
                 None if weight is None else torch.tensor(weight))
    out = m.compute()
    stq, aq, iou = DEEPLAB2_STQ[case]
    assert (out["STQ"], out["AQ"], out["SQ"]) == pytest.approx((stq, aq, iou), rel=1e-6)


def test_stq_of_an_all_void_frame_is_nan_as_deeplab2():
    """deeplab2's STQuality.result(): with every ground-truth pixel void the confusion rows left
    are all zero, so its mean IoU is 0 / 0 (NaN), AQ is 0 / max(0, eps) = 0 and STQ = sqrt(0 * NaN)
    is NaN: nothing to score is not a score of 0."""
    m = SegmentationTrackingQuality(3, (1,))
    m.update(torch.tensor([[1, 1, 2]]), torch.tensor([[1, 1, 0]]), torch.tensor([[V, V, V]]),
             torch.tensor([[0, 0, 0]]))
    out = m.compute()
    assert math.isnan(out["STQ"]) and math.isnan(out["SQ"]) and out["AQ"] == 0.0


def test_pan2d_things_are_waymo_pvps_eight():
    """deeplab2's waymo_constants._IS_THINGS (car, truck, bus, other_large_vehicle, trailer,
    person, cyclist, motorcyclist), in cosim's class names."""
    from cosim.learning.classes import PAN2D
    from cosim.learning.codec import PAN2D_THINGS

    deeplab2 = ["car", "truck", "bus", "other_large_vehicle", "trailer", "person", "cyclist",
                "motorcyclist"]
    ours = {"person": "pedestrian", "other_large_vehicle": "other large vehicle"}
    assert [PAN2D[i] for i in PAN2D_THINGS] == [ours.get(n, n) for n in deeplab2]
