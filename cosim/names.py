"""Names every layer shares, defined once: tasks and modalities, how a client's round ends, and
the folder layout of ``cosim compare`` and ``cosim onboarding``.

This module imports nothing heavy, so the scenario, the producers of traces and ``analysis/`` can
all read it. A task's learning side (classes, head, targets, loss, decoder, evaluator) lives in
``cosim/learning/tasks/<task>.py``; what others must know of it without torch is here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

MODALITIES = ("image", "lidar", "text")
# A sample's input tensors and the modality each comes from (a client without LiDAR has neither
# of its views).
INPUT_MODALITY = {"image": "image", "lidar": "lidar", "lidar_bev": "lidar", "text": "text"}


@dataclass(frozen=True)
class TaskInfo:
    """What the scenario, the data partition and the analysis know of a task."""

    modalities: tuple[str, ...]  # the inputs its fused features come from (paper, section VI-A)
    headline: str  # the metric it is judged by (compare, report, onboarding)
    higher_is_better: bool = True


# In this order: the order of a client's task losses (their sum, GradNorm and CAGrad follow it).
TASK_INFO = {
    "seg3d": TaskInfo(("image", "lidar", "text"), "mIoU"),
    # centre-distance AP, not Waymo's IoU-matched mAPH (also in metrics.parquet): the tiny
    # model's 2.5 m BEV cells cannot reach IoU 0.7 on a car.
    "det3d": TaskInfo(("image", "lidar", "text"), "mAP_center"),
    "pan2d": TaskInfo(("image", "text"), "STQ"),
    "det2d": TaskInfo(("image", "text"), "mAP50"),
}
TASKS = tuple(TASK_INFO)
HEADLINE = {task: info.headline for task, info in TASK_INFO.items()}
# Tasks a camera-only client can hold (no LiDAR among their modalities).
CAMERA_TASKS = tuple(t for t, info in TASK_INFO.items() if "lidar" not in info.modalities)

# PEFT methods whose clients train K at a time in one stacked pass (cosim/learning/stacking.py)
STACKABLE_PEFT = ("adapter", "lora")

# The aggregations whose updates can be stale: their model versions come with arrivals, not rounds.
ASYNC_METHODS = ("fedasync", "fedbuff")
# The built-in scheduling policies (cosim.learning.federated.policies registers one class each).
POLICIES = ("all_connected", "random", "availability_aware", "rate_aware", "deadline_aware",
            "modality_task_aware", "oort", "oracle")
# The built-in PEFT methods (cosim.learning.peft.METHODS) and trainer backends
# (cosim.learning.federated.remote.BACKENDS); each extension point also takes a module:Name.
PEFT_METHODS = ("adapter", "lora", "prompt", "moe_adapter")
TRAINER_BACKENDS = ("local", "threads", "processes", "ray")

# How a client's round ends (participation.outcome / participation.reason).
COMPLETED = "completed"
FAILED = "failed"
LEFT_NETWORK = "left_network"  # its vehicle left the SUMO network
RADIO_LINK_FAILURE = "radio_link_failure"  # its link failed mid-transfer (T310 expired)
OUT_OF_COVERAGE = "out_of_coverage"  # no link when a transfer had to start
DEADLINE = "deadline"  # the round's (or its budget's) deadline came first
SIDELINK_LOST = "sidelink_lost"  # a V2V hand-over of the update (relay, cluster) lost its link
CLUSTER_HEAD_FAILED = "cluster_head_failed"  # its cluster head's aggregate upload failed
DROP_REASONS = (LEFT_NETWORK, RADIO_LINK_FAILURE, OUT_OF_COVERAGE, DEADLINE, SIDELINK_LOST,
                CLUSTER_HEAD_FAILED)
# How an update reached the server (participation.via; null: the client's own uplink).
VIA_RELAY = "relay"
VIA_CLUSTER = "cluster"
# A transfer that runs past its timeout ends with this reason; the client's round says DEADLINE.
TRANSFER_TIMEOUT = "timeout"


@dataclass(frozen=True)
class CompareDefaults:
    """What ``cosim compare`` and the Python API's ``compare`` run when not told otherwise."""

    policies: tuple[str, ...] = ("availability_aware", "random")
    aggregations: tuple[str, ...] = ("sync",)
    seeds: tuple[int, ...] = (0,)
    eval_every_rounds: int = 1  # the curves' resolution (None in a grid: as the scenario says)
    min_seeds: int = 3  # with seeds "auto": seeds before the first look
    max_seeds: int = 8  # with seeds "auto": the most it adds


COMPARE_DEFAULTS = CompareDefaults()


# ---- folder layouts ---------------------------------------------------------------------------
RECORDINGS = "recordings"
PRETRAINED = "pretrained"  # an onboarding's runs that pre-train the other tasks


def recording_dir(out: Path, seed: int) -> Path:
    """Where compare and onboarding record a seed's mobility and radio once."""
    return out / RECORDINGS / f"seed-{seed}"


def compare_run_dir(out: Path, policy: str, aggregation: str, seed: int,
                    data_seed: int | None = None, training_seed: int | None = None) -> Path:
    """One run of a compare grid (data and training seeds named only when the grid varies them)."""
    name = f"{policy}-{aggregation}-seed{seed}"
    if data_seed is not None:
        name += f"-data{data_seed}"
    if training_seed is not None:
        name += f"-training{training_seed}"
    return out / "runs" / name


Replicate = tuple[int, "int | None", "int | None"]  # connectivity, data, training seed


def replicates(seeds: list[int] | tuple[int, ...], data_seeds: list[int] | tuple[int, ...] | None,
               training_seeds: list[int] | tuple[int, ...] | None) -> list[Replicate]:
    """Every combination of a compare's seeds; None: that stream follows the scenario's seed."""
    data: Sequence[int | None] = data_seeds or [None]
    training: Sequence[int | None] = training_seeds or [None]
    return [(s, d, t) for s in seeds for d in data for t in training]


def onboarding_run_dir(out: Path, task: str, method: str, connectivity: str, seed: int) -> Path:
    """One run of the onboarding study."""
    return out / "runs" / f"{task}-{method}-{connectivity}-seed{seed}"


def onboarding_pretrained_dir(out: Path, seed: int, task: str, task_adapter: bool = True) -> Path:
    """The run that pre-trains the three other tasks before ``task`` arrives, with or without
    the shared task adapter (the architecture of the methods that start from it)."""
    variant = "" if task_adapter else "-nta"
    return out / PRETRAINED / f"{task}-arrives-seed{seed}{variant}"


# A run's training journal (output.checkpoint), kept across `cosim run --resume`
JOURNAL_DIR = "checkpoint"
# what `cosim report`, `cosim export` and `cosim data synth` wrote into a folder they filled (the
# command, each file's size and SHA-256): the mark by which cosim knows the folder as its own
OUTPUT_MANIFEST = ".cosim-output.json"
# the commands whose folders hold runs, and whose manifest lists only the files at their top
STUDY_COMMANDS = ("compare", "onboarding")

# How every report.html cosim writes begins: a report folder from before output manifests is
# cosim's only if its page does
REPORT_HEAD = "<!DOCTYPE html><html><head><meta charset='utf-8'><title>cosim report: "
