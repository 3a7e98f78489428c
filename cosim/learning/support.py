"""What each headline metric rests on: the held-out objects, instances and labelled cells it is
computed over, counted the way its evaluator counts them (a metric on three boxes of a class
cannot carry a verdict, whatever its value). Model-free: read from the held-out targets only.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from cosim.learning.classes import DETECTION, IGNORE_INDEX, PAN2D, SEG3D
from cosim.learning.codec import PAN2D_THINGS
from cosim.scenario import EvaluationConfig

# The least support per class (det2d, det3d) or in all (pan2d thing instances) a held-out set
# should give a headline metric before a comparison leans on it.
MIN_OBJECTS_PER_CLASS = 50
MIN_THING_INSTANCES = 50


def heldout_support(batches: list, tasks: list[str], settings: EvaluationConfig,
                    image_size: int, bev_range_m: float) -> dict[str, dict[str, Any]]:
    """Per task: the unit counted, the count per class, the total, the smallest class and the
    frames scored."""
    counts: dict[str, Counter] = {t: Counter() for t in tasks}
    frames: Counter[str] = Counter()
    instances: set[tuple] = set()
    for inputs, targets in batches:
        sequences = inputs.get("sequence")
        for t in tasks:
            target = targets[t]
            n = len(target["boxes"]) if "boxes" in target else len(target["labels"])
            frames[t] += n
            for i in range(n):
                if t == "det2d":
                    counts[t].update(_det2d(target, i, settings, image_size))
                elif t == "det3d":
                    counts[t].update(_det3d(target, i, bev_range_m))
                elif t == "seg3d":
                    counts[t].update(_cells(target["labels"][i], SEG3D))
                elif t == "pan2d":
                    sequence = sequences[i] if sequences is not None else None
                    instances.update(_things(target, i, sequence))
    out = {}
    for t in tasks:
        if t == "pan2d":
            per_class = Counter(PAN2D[c] for _, c, _ in instances)
            out[t] = _entry("thing instances (tracks)", per_class, list(PAN2D[c] for c in PAN2D_THINGS),
                            minimum_total=MIN_THING_INSTANCES)
        elif t in ("det2d", "det3d"):
            out[t] = _entry("boxes (not don't-care)" if t == "det2d" else "boxes in range, with "
                            "LiDAR points", counts[t], list(DETECTION),
                            minimum_per_class=MIN_OBJECTS_PER_CLASS)
        else:
            out[t] = _entry("labelled cells", counts[t], [c for c in SEG3D[1:] if counts[t][c]])
        out[t]["frames"] = frames[t]
    return out


def _entry(unit: str, per_class: Counter, classes: list[str], minimum_per_class: int | None = None,
           minimum_total: int | None = None) -> dict[str, Any]:
    full = {c: int(per_class.get(c, 0)) for c in classes}
    smallest = min(full, key=full.__getitem__) if full else None
    entry: dict[str, Any] = {"unit": unit, "total": int(sum(full.values())), "per_class": full,
                             "smallest_class": smallest,
                             "smallest_count": full[smallest] if smallest else 0}
    if minimum_per_class is not None:
        entry["minimum_per_class"] = minimum_per_class
        entry["meets_minimum"] = bool(full) and min(full.values()) >= minimum_per_class
    if minimum_total is not None:
        entry["minimum_total"] = minimum_total
        entry["meets_minimum"] = entry["total"] >= minimum_total
    return entry


def _det2d(target, i: int, settings: EvaluationConfig, image_size: int) -> list[str]:
    boxes = np.asarray(target["boxes"][i], float).reshape(-1, 4)
    labels = np.asarray(target["box_labels"][i]).reshape(-1)
    cares = ((boxes[:, 3] - boxes[:, 1] >= settings.det2d_min_height * image_size)
             & (boxes[:, 2] - boxes[:, 0] >= settings.det2d_min_width * image_size))
    return [DETECTION[int(c)] for c in labels[cares]]


def _det3d(target, i: int, range_m: float) -> list[str]:
    boxes = np.asarray(target["boxes"][i], float).reshape(-1, 7)
    labels = np.asarray(target["box_labels"][i]).reshape(-1)
    points = np.asarray(target["points"][i]).reshape(-1)
    kept = (np.abs(boxes[:, 0]) < range_m) & (np.abs(boxes[:, 1]) < range_m) & (points > 0)
    return [DETECTION[int(c)] for c in labels[kept]]


def _cells(labels, names: tuple[str, ...]) -> Counter:
    values, counts = np.unique(np.asarray(labels).reshape(-1), return_counts=True)
    return Counter({names[int(v)]: int(n) for v, n in zip(values, counts, strict=True)
                    if v != IGNORE_INDEX})


def _things(target, i: int, sequence) -> set[tuple]:
    """(sequence, class, instance id) of every thing instance in the frame."""
    semantic = np.asarray(target["labels"][i]).reshape(-1)
    instance = np.asarray(target["instance"][i]).reshape(-1)
    found = set()
    for inst in np.unique(instance[instance > 0]):
        classes = semantic[instance == inst]
        classes = classes[np.isin(classes, PAN2D_THINGS)]
        if len(classes):
            found.add((sequence, int(np.bincount(classes).argmax()), int(inst)))
    return found
