"""The output section: where traces go and how densely they are sampled."""

from __future__ import annotations

from pathlib import Path

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
)

from cosim.scenario.base import StrictModel


class OutputConfig(StrictModel):
    """Where traces go and how densely they are sampled."""

    root: Path = Path("runs")  # relative to the working directory: runs/<name>-<timestamp>
    mobility_period_s: PositiveFloat = 1.0
    row_group_rows: PositiveInt = Field(65536, le=100_000_000)
    # Journal every trained client update into RUN/checkpoint/ (the tiny model: ~3.6 MB each) so
    # that `cosim run --resume RUN` of an interrupted run computes no update twice; removed when
    # the run completes.
    checkpoint: bool = False


