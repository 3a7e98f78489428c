"""The onboarding section, read by ``cosim onboarding`` only."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    PositiveInt,
    field_validator,
)

from cosim.names import TASKS
from cosim.scenario.base import StrictModel

ONBOARDING_METHODS = ("FedAdapt", "NTA", "NTA+GR", "NTA+CA", "FedAdapt_no_CA",
                      "FedAdapt_no_CA+GR")


def _both_connectivities() -> list[Literal["gated", "ideal"]]:
    return ["gated", "ideal"]


class OnboardingConfig(StrictModel):
    """The paper's task-onboarding study (``cosim onboarding``): one task arrives after the
    other three were learnt; methods differ in the shared task adapter and gradient balancing."""

    # mypy: Literal[...] of a names.py tuple is read by pydantic, not expressible to mypy (valid-type)
    arriving_tasks: list[Literal[TASKS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(TASKS), min_length=1)
    # mypy: Literal[...] of a names.py tuple is read by pydantic, not expressible to mypy (valid-type)
    methods: list[Literal[ONBOARDING_METHODS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(ONBOARDING_METHODS), min_length=1)
    pretrain_rounds: PositiveInt = Field(12, le=1_000_000)  # FedAvg rounds on the three other tasks
    rounds: PositiveInt = Field(8, le=1_000_000)  # onboarding rounds per method
    connectivity: list[Literal["gated", "ideal"]] = Field(
        default_factory=_both_connectivities, min_length=1)

    @field_validator("arriving_tasks", "methods", "connectivity")
    @classmethod
    def _each_once(cls, values: list[str]) -> list[str]:
        """A study cell named twice would be one run counted twice in the curves and table."""
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise ValueError(f"{', '.join(twice)} given more than once")
        return values
