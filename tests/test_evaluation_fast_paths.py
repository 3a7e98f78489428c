"""Fast paths of the evaluation against the plain versions they replace: the panoptic tracker's
joint-histogram overlaps, and grouped sums over int rows."""

from __future__ import annotations

import torch

from cosim.learning.codec import PAN2D_THINGS, GreedyTracker


class MaskTracker:
    """The straightforward greedy tracker: one mask intersection and union per pair."""

    def __init__(self, min_iou: float = 0.3):
        self.min_iou, self.prev, self.next_id = min_iou, {}, 1

    def __call__(self, semantic, instance):
        tracked, current, free = torch.zeros_like(instance), {}, dict(self.prev)
        for inst in instance.unique().tolist():
            if inst == 0:
                continue
            m = instance == inst
            cls = int(semantic[m].mode().values)
            best, best_iou = None, self.min_iou
            for tid, (tcls, tm) in free.items():
                if tcls == cls:
                    iou = float((m & tm).sum()) / float((m | tm).sum())
                    if iou >= best_iou:
                        best, best_iou = tid, iou
            if best is None:
                best, self.next_id = self.next_id, self.next_id + 1
            else:
                free.pop(best)
            tracked[m] = best
            current[best] = (cls, m)
        self.prev = current
        return tracked


def _frames(generator, n=12, size=16):
    """Blobs of a few thing classes that drift a pixel a frame, appear and vanish, under fresh
    decoder ids each frame (as decode_panoptic gives them), on noisy stuff classes."""
    def draw(low, high):
        return int(torch.randint(low, high, (1,), generator=generator))

    objects = []
    for _ in range(n):
        objects = [o for o in objects if draw(0, 8)]  # one in eight vanishes
        objects += [[draw(0, size - 4), draw(0, size - 4), draw(1, 6), draw(1, 6),
                     PAN2D_THINGS[draw(0, 3)]] for _ in range(draw(0, 3))]
        for o in objects:
            o[0] = min(max(o[0] + draw(-1, 2), 0), size - 2)
            o[1] = min(max(o[1] + draw(-1, 2), 0), size - 2)
        semantic = torch.randint(0, 3, (size, size), generator=generator) + 20  # stuff
        instance = torch.zeros((size, size), dtype=torch.long)
        ids = torch.randperm(40, generator=generator) + 1
        for k, (y, x, h, w, cls) in enumerate(objects):
            instance[y:y + h, x:x + w] = int(ids[k % 40])
            semantic[y:y + h, x:x + w] = cls
        yield semantic, instance


def test_tracker_ids_equal_the_per_pair_mask_tracker():
    for seed in range(40):
        ours, reference = GreedyTracker(), MaskTracker()
        for semantic, instance in _frames(torch.Generator().manual_seed(seed)):
            assert torch.equal(ours(semantic, instance), reference(semantic, instance)), seed


def test_grouped_sums_equal_unique_over_rows():
    from cosim.learning.metrics import _grouped_sum

    generator = torch.Generator().manual_seed(3)
    for high in (2, 30, 5000):
        keys = torch.randint(0, high, (500, 4), generator=generator)
        weights = torch.rand(500, generator=generator, dtype=torch.float64)
        uniq, inv = torch.unique(keys, dim=0, return_inverse=True)
        sums = torch.zeros(len(uniq), dtype=torch.float64).index_add_(0, inv, weights)
        expected = [(tuple(k), v) for k, v in zip(uniq.tolist(), sums.tolist(), strict=True)]
        assert _grouped_sum(keys, weights) == expected
