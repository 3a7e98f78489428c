"""One selected client's round as the participation trace records it: a row per attempt."""

from __future__ import annotations

from dataclasses import dataclass

from cosim.names import COMPLETED, FAILED
from cosim.trace_schemas import PARTICIPATION_SCHEMA


@dataclass
class Attempt:
    """One client's round, as the participation trace records it (its columns, by name)."""

    round: int
    client: int
    vehicle: str
    selected_at: float
    model_version: int
    outcome: str = FAILED
    reason: str | None = None
    t_download_end: float | None = None
    t_compute_end: float | None = None
    t_upload_end: float | None = None
    bytes_down: int = 0
    bytes_up: int = 0
    staleness: int = 0
    via: str | None = None  # None: its own uplink; "relay" or "cluster" (names.VIA_*)
    via_vehicle: str | None = None
    bytes_sidelink: int = 0
    # not traced: the task mix and modalities it trains on (drift may change them later)
    tasks: tuple[str, ...] | None = None
    modalities: tuple[str, ...] | None = None

    @property
    def completed(self) -> bool:
        return self.outcome == COMPLETED


def participation_rows(attempts: list[Attempt]) -> dict[str, list]:
    """The attempts as columns of the participation table."""
    return {name: [getattr(a, name) for a in attempts] for name in PARTICIPATION_SCHEMA.names}
