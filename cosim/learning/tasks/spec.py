"""What a perception task is to cosim: one spec per task, in ``cosim/learning/tasks/<task>.py``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch

from cosim.names import TASK_INFO, TaskInfo


class TaskEvaluator(Protocol):
    """Accumulates one task's metric over held-out frames (torchmetrics style)."""

    def update(self, scores: torch.Tensor, reg: torch.Tensor, target: dict, i: int,
               inputs: dict) -> None: ...

    def compute(self) -> dict[str, float]: ...


@dataclass(frozen=True)
class TaskSpec:
    """Everything that differs between tasks: classes, head layout, targets, loss, evaluation.

    - ``targets(frame, geometry)``: the frame's dense targets at the head grid, plus what
      evaluation needs (boxes, instance ids), without a batch axis.
    - ``loss(out, target)``: the training loss on the head's ``scores`` and ``reg`` maps.
    - ``evaluator(model, settings)``: a fresh metric accumulator; its ``compute()`` names the
      headline metric (``cosim.names``) among others.
    """

    name: str
    classes: tuple[str, ...]
    regression: int  # regression channels the head outputs after the class scores
    targets: Callable[[Any, Any], dict[str, Any]]
    loss: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]
    evaluator: Callable[[Any, Any], TaskEvaluator]
    bev: bool = False  # the output is a bird's-eye-view grid (fed by the LiDAR BEV tokens)
    heatmap_prior: bool = False  # CenterNet's prior: centre heatmaps start at p = 0.1

    @property
    def info(self) -> TaskInfo:
        return TASK_INFO[self.name]

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.info.modalities
