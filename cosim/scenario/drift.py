"""The learning.drift section: what the clients' data asks of the model changes over a run
(the vehicular paper's Challenge 3: weather, time of day, urban/highway context changing which
modalities and tasks matter; tasks arriving while the fleet trains)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, NonNegativeFloat, model_validator

from cosim.names import MODALITIES, TASKS
from cosim.scenario.base import FieldError, StrictModel


class DriftEvent(StrictModel):
    """From ``at_s`` on, the chosen clients train and are scored on this task mix and these
    modalities (each within what its own data holds)."""

    at_s: NonNegativeFloat
    label: str = Field("", max_length=200)  # e.g. "night", "highway": said in the report
    # which clients: the listed partitions, or a seeded share of them (1: all)
    clients: list[int] | None = Field(None, min_length=1)  # []: an event for nobody
    share: float = Field(1.0, gt=0.0, le=1.0)
    # None: unchanged. mypy: a Literal[...] of a names.py tuple is read by pydantic, not
    # expressible to mypy (valid-type)
    tasks: list[Literal[TASKS]] | None = Field(None, min_length=1)  # type: ignore[valid-type]
    modalities: list[Literal[MODALITIES]] | None = Field(None, min_length=1)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _changes_something(self) -> DriftEvent:
        if self.tasks is None and self.modalities is None:
            raise ValueError("a drift event sets tasks, modalities or both")
        if self.clients is not None and self.share != 1.0:
            raise ValueError("give clients or share, not both")
        return self


class DriftConfig(StrictModel):
    """The schedule of task-mix and modality changes, and how clients guard what they learnt."""

    events: list[DriftEvent] = Field(min_length=1)
    # none: plain fine-tuning; l2: a continual-learning baseline, an L2 pull of the shared
    # PEFT modules (not the heads) towards the global model as it was when the client's mix last
    # changed (L2-SP / EWC with a uniform Fisher), weighted by ``l2_weight``
    continual: Literal["none", "l2"] = "none"
    l2_weight: float = Field(1.0, ge=0.0, le=1e6)

    @model_validator(mode="after")
    def _in_time_order(self) -> DriftConfig:
        times = [e.at_s for e in self.events]
        if times != sorted(times):
            raise ValueError("events: give them in order of at_s")
        for i, (first, second) in enumerate(zip(self.events, self.events[1:], strict=False)):
            both = [what for what in ("tasks", "modalities")
                    if getattr(first, what) is not None and getattr(second, what) is not None]
            if first.at_s == second.at_s and both and (
                    first.clients is None or second.clients is None
                    or set(first.clients) & set(second.clients)):
                raise FieldError(f"events.{i + 1}.{both[0]}", f"sets what events.{i} sets at the "
                                 f"same time ({first.at_s:g} s) for the same clients, so events.{i}"
                                 " would have no effect; merge the two")
        return self
