"""The task registry: one spec per task in ``cosim/learning/tasks/<task>.py``, for every task
named in ``cosim.names.TASK_INFO``. Adding a built-in task is its entry there and its file here
(whose targets read labels the data readers already give). A task of the user's own is one
``TaskSpec`` in the user's module, named ``module:NAME`` in ``learning.model.tasks``: it is
entered here under its spec's name when a model that has it is built."""

from __future__ import annotations

import importlib
from collections.abc import Iterable

import torch

from cosim.learning.tasks.spec import TaskEvaluator, TaskSpec
from cosim.names import MODALITIES, TASKS
from cosim.registry import Registry, is_user_reference

VIEWS = ("image", "lidar", "lidar_bev")


def _task_spec_problem(found: object) -> str | None:
    """What keeps a user's object from being a task spec (None: nothing)."""
    if not isinstance(found, TaskSpec):
        return "expected a cosim.learning.tasks.TaskSpec"
    if not found.name.isidentifier() or found.name in TASKS:
        return f"its name {found.name!r} must be an identifier other than a built-in task's"
    if found.declared is None:
        return "a task of your own declares its modalities and headline metric (declared=TaskInfo)"
    if found.view not in VIEWS or not set(found.declared.modalities) <= set(MODALITIES):
        return f"its view is one of {', '.join(VIEWS)} and its modalities among {', '.join(MODALITIES)}"
    return None


SPECS: Registry[TaskSpec] = Registry("task", "learning.model.tasks", {
    name: importlib.import_module(f"{__name__}.{name}").SPEC for name in TASKS},
    check=_task_spec_problem)

__all__ = ["SPECS", "TaskEvaluator", "TaskSpec", "task_loss", "task_names"]


def task_names(tasks: Iterable[str]) -> tuple[str, ...]:
    """The tasks' names in the order given: a user's ``module:NAME`` becomes its spec's name,
    entered in ``SPECS`` (its module imported now)."""
    names = []
    for task in tasks:
        if is_user_reference(task):
            spec = SPECS.resolve(task)
            if SPECS.get(spec.name, spec) is not spec:
                raise ValueError(f"two task specs are named {spec.name!r}")
            SPECS[spec.name] = spec
            task = spec.name
        names.append(task)
    return tuple(names)


def task_loss(task: str, out: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> torch.Tensor:
    return SPECS[task].loss(out, target)
