"""The scheduling section: who is picked at the start of a round."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    PositiveInt,
    field_validator,
    model_validator,
)

from cosim.names import POLICIES
from cosim.scenario.base import InputFile, StrictModel


class SchedulingConfig(StrictModel):
    """Who is picked at the start of a round."""

    policy: str = "availability_aware"  # a registered name or a dotted path module:Class
    per_round: PositiveInt = Field(10, le=100_000)
    predictor: Literal["history", "oracle"] = "history"
    # oracle: link_windows.parquet of a run of the same scenario and seed (identical connectivity)
    oracle_windows: InputFile | None = None

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        if v not in POLICIES and ":" not in v:
            raise ValueError(f"unknown policy {v!r} (known: {', '.join(POLICIES)}; or module:Class)")
        return v

    @model_validator(mode="after")
    def _oracle_needs_windows(self) -> SchedulingConfig:
        if (self.policy == "oracle" or self.predictor == "oracle") and self.oracle_windows is None:
            raise ValueError("the oracle needs oracle_windows: the link_windows.parquet of a run of "
                             "this scenario and seed (run it once with another policy)")
        return self


