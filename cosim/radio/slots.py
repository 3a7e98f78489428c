"""Per-vehicle radio state kept in slot-indexed numpy arrays, so a SUMO step's work is vectorised:
a vehicle keeps its slot while it is in the network, and a slot is reused after it leaves."""

from __future__ import annotations

import numpy as np

from cosim.radio.handoff import STATE_FIELDS
from cosim.radio.windows import WINDOW_FIELDS

# name -> (dtype, fill, one value per cell)
FIELDS: dict[str, tuple[type, float, bool]] = {
    **STATE_FIELDS, **{name: (dtype, fill, False) for name, (dtype, fill) in WINDOW_FIELDS.items()},
    # the channel where the vehicle will be at the next SUMO step (NaN: not known yet): the next
    # block starts there, so it is evaluated once
    "rsrp_next": (np.float32, np.nan, True),
}


class SlotStore:
    """Per-vehicle state in slot-indexed arrays; a vehicle keeps its slot while in the network."""

    def __init__(self, n_cells: int):
        self.n_cells = n_cells
        self.slot_of: dict[str, int] = {}
        self.free: list[int] = []
        self.capacity = 0
        self.arrays: dict[str, np.ndarray] = {}
        self._grow(64)

    def _grow(self, capacity: int) -> None:
        for name, (dtype, fill, per_cell) in FIELDS.items():
            new: np.ndarray = np.full((capacity, self.n_cells) if per_cell else capacity, fill, dtype=dtype)
            if name in self.arrays:
                new[: self.capacity] = self.arrays[name]
            self.arrays[name] = new
        self.free.extend(range(capacity - 1, self.capacity - 1, -1))
        self.capacity = capacity

    def add(self, vehicle: str, now: float) -> int:
        if not self.free:
            self._grow(2 * self.capacity)
        slot = self.free.pop()
        self.slot_of[vehicle] = slot
        for name, (_, fill, _) in FIELDS.items():
            self.arrays[name][slot] = fill
        self.arrays["reattach_at"][slot] = now
        self.arrays["detached_since"][slot] = now
        return slot

    def remove(self, vehicle: str) -> None:
        self.free.append(self.slot_of.pop(vehicle))

    def gather(self, slots: np.ndarray) -> dict[str, np.ndarray]:
        return {name: arr[slots] for name, arr in self.arrays.items()}

    def scatter(self, slots: np.ndarray, state: dict[str, np.ndarray]) -> None:
        for name, arr in self.arrays.items():
            arr[slots] = state[name]
