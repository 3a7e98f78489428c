"""The task registry: one spec per task in ``cosim/learning/tasks/<task>.py``, for every task
named in ``cosim.names.TASK_INFO``. Adding a task is its entry there and its file here (whose
targets read labels the data readers already give)."""

from __future__ import annotations

import importlib

import torch

from cosim.learning.tasks.spec import TaskEvaluator, TaskSpec
from cosim.names import TASKS
from cosim.registry import Registry

SPECS: Registry[TaskSpec] = Registry("task", "learning.model.tasks", {
    name: importlib.import_module(f"{__name__}.{name}").SPEC for name in TASKS})

__all__ = ["SPECS", "TaskEvaluator", "TaskSpec", "task_loss"]


def task_loss(task: str, out: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    return SPECS[task].loss(out, target)
