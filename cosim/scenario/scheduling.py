"""The scheduling section: who is picked at the start of a round."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import (
    Field,
    PositiveInt,
    model_validator,
)

from cosim.names import POLICIES
from cosim.scenario.base import InputFile, StrictModel, extension_name

if TYPE_CHECKING:
    PolicyName = str
else:
    PolicyName = extension_name("policy", POLICIES)


class SchedulingConfig(StrictModel):
    """Who is picked at the start of a round."""

    policy: PolicyName = "availability_aware"  # a registered name or a dotted path module:Class
    per_round: PositiveInt = Field(10, le=100_000)
    predictor: Literal["history", "oracle"] = "history"
    # oracle: link_windows.parquet of a run of the same scenario and seed (identical connectivity)
    oracle_windows: InputFile | None = None

    @model_validator(mode="after")
    def _oracle_needs_windows(self) -> SchedulingConfig:
        if (self.policy == "oracle" or self.predictor == "oracle") and self.oracle_windows is None:
            raise ValueError("the oracle needs oracle_windows: the link_windows.parquet of a run of "
                             "this scenario and seed (run it once with another policy)")
        return self


