"""Metrics on hand-made cases whose values are worked out in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cosim.learning.metrics import (
    MeanAP2D,
    MeanAP3D,
    MeanIoU,
    SegmentationTrackingQuality,
    average_precision,
    bev_iou,
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


def test_map_3d_and_heading_weight():
    m = MeanAP3D(num_classes=2)
    gt = np.array([[0, 0, 0, 4, 2, 1.5, 0.0], [10, 0, 0, 1, 1, 2, 0.0], [20, 0, 0, 1, 1, 2, 0.0]])
    pred = np.array([[0, 0, 0, 4, 2, 1.5, math.pi / 2],  # vehicle, IoU 0.33 < 0.7: FP
                     [0, 0, 0, 4, 2, 1.5, math.pi],  # vehicle, IoU 1 but heading flipped
                     [10, 0, 0, 1, 1, 2, 0.5 * math.pi],  # pedestrian, quarter-turn heading
                     [20, 0, 0, 1, 1, 2, 0.0]])  # matches a pedestrian with no point: ignored
    m.update(pred, [0.5, 0.9, 0.8, 0.95], [0, 0, 1, 1], gt, [0, 1, 1], gt_points=[30, 5, 0])
    out = m.compute()
    # vehicle: TP (0.9) then FP (0.5): AP 1; APH weight 1 - pi/pi = 0
    # pedestrian: the 0.95 detection is ignored, then a TP with heading weight 0.5: AP 1, APH .5
    assert out["mAP"] == pytest.approx(1.0)
    assert out["mAPH"] == pytest.approx((0.0 + 0.5) / 2)


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
    for min_height in (0.0625, 0.0):
        ev = SPECS["det2d"].evaluator(model, EvaluationConfig(det2d_min_height=min_height))
        ev.update(scores, reg, target, 0, {})
        results[min_height] = ev.compute()["mAP50"]
    assert results[0.0625] == pytest.approx(1.0)  # the 2-px-tall box is don't care
    assert results[0.0] == pytest.approx(51 / 101)  # all count: recall 1/2 (COCO 101 points)


def test_map_2d_equals_pycocotools_where_recall_hits_exact_fractions():
    """pycocotools' own COCOeval on the same boxes is the reference. Ten ground-truth boxes: the
    three best-scored detections hit (recall exactly 0.3 at precision 1), five misses follow, then
    the other seven hit. COCO reads precision at the 101 recall thresholds np.linspace(0, 1, 101);
    a float32 copy of them puts 0.3 at 0.30000001, past recall 0.3, and loses precision 1 there."""
    pytest.importorskip("pycocotools", reason="pycocotools is in the dev extra")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = np.array([[40.0 * i, 0, 40.0 * i + 30, 30] for i in range(10)])
    misses = np.array([[40.0 * i, 200, 40.0 * i + 30, 230] for i in range(5)])
    det = np.vstack([gt[:3], misses, gt[3:]])
    scores = np.linspace(0.95, 0.1, len(det))
    coco = COCO()
    coco.dataset = {"images": [{"id": 0, "width": 500, "height": 500}], "categories": [{"id": 0}],
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
    reference = float(ev.eval["precision"][0, :, 0, 0, -1].mean())  # IoU 0.5, all areas, 100 dets
    m = MeanAP2D()
    m.update([{"boxes": torch.tensor(det), "scores": torch.tensor(scores),
               "labels": torch.zeros(len(det), dtype=torch.long)}],
             [{"boxes": torch.tensor(gt), "labels": torch.zeros(10, dtype=torch.long)}])
    assert m.compute() == pytest.approx(reference, abs=1e-7)  # torchmetrics returns float32
    float32_bins = np.linspace(0, 1, 101).astype(np.float32).astype(np.float64)
    assert (float32_bins > np.linspace(0, 1, 101))[30], "0.3 rounds up in float32: the case bites"
