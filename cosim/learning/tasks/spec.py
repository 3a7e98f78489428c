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
      headline metric among others.
    - ``view``: the tokens its head decodes from: ``image`` (camera), ``lidar`` (the range
      image) or ``lidar_bev`` (the bird's-eye view); the other modalities it uses add context.
    - ``declared``: a task of the user's own says its modalities and headline metric here (the
      built-in tasks' are in ``cosim.names.TASK_INFO``).
    """

    name: str
    classes: tuple[str, ...]
    regression: int  # regression channels the head outputs after the class scores
    targets: Callable[[Any, Any], dict[str, Any]]
    loss: Callable[[dict[str, torch.Tensor], dict[str, torch.Tensor]], torch.Tensor]
    evaluator: Callable[[Any, Any], TaskEvaluator]
    view: str = "image"
    heatmap_prior: bool = False  # CenterNet's prior: centre heatmaps start at p = 0.1
    declared: TaskInfo | None = None

    @property
    def info(self) -> TaskInfo:
        return self.declared if self.declared is not None else TASK_INFO[self.name]

    @property
    def modalities(self) -> tuple[str, ...]:
        return self.info.modalities
