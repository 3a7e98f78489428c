"""Drift on the engine clock (``learning.drift``): at each event's time its clients' active task
mix and modalities change, within what each client's own data holds.

A client without LiDAR can hold only the camera tasks (as the partition deals them); a client
whose active mix becomes empty takes no part until a later event gives it tasks again. What
changed when is kept for run.json and the report (forgetting: a task's best score while some
client trained it, against its score at the end).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import simpy

from cosim.learning.data.datasets import ClientDataset
from cosim.names import CAMERA_TASKS, MODALITIES, TASKS
from cosim.scenario.drift import DriftConfig, DriftEvent


class DriftSchedule:
    """The drift events of a run, applied to the clients' datasets as the clock reaches them."""

    def __init__(self, cfg: DriftConfig, datasets: list[ClientDataset], seed: int):
        self.cfg, self.datasets, self.seed = cfg, datasets, seed
        self.holds = [(tuple(d.shard.tasks), tuple(d.shard.modalities)) for d in datasets]
        # what the events so far ask of each client (an event that leaves one unset keeps it)
        self.wanted = [(TASKS, MODALITIES) for _ in datasets]
        self.applied: list[dict[str, Any]] = []
        self.changed_at: dict[int, float] = {}  # client -> when its mix last changed
        self.initial_active = self.active_tasks()

    def clients_of(self, index: int, event: DriftEvent) -> list[int]:
        """The event's clients: listed, or a seeded share of every partition."""
        n = len(self.datasets)
        if event.clients is not None:
            return sorted(c for c in set(event.clients) if 0 <= c < n)
        if event.share >= 1.0:
            return list(range(n))
        rng = np.random.default_rng([self.seed, 41, index])
        return sorted(rng.choice(n, size=max(1, round(event.share * n)), replace=False).tolist())

    def apply(self, index: int, event: DriftEvent, now: float) -> list[int]:
        """Set the event's mix on its clients; the clients whose mix changed."""
        changed = []
        for c in self.clients_of(index, event):
            data = self.datasets[c]
            held_tasks, held_modalities = self.holds[c]
            wanted_tasks, wanted_modalities = self.wanted[c]
            wanted_tasks = tuple(event.tasks) if event.tasks is not None else wanted_tasks
            wanted_modalities = (tuple(event.modalities) if event.modalities is not None
                                 else wanted_modalities)
            self.wanted[c] = (wanted_tasks, wanted_modalities)
            modalities = [m for m in held_modalities if m in wanted_modalities]
            tasks = [t for t in held_tasks if t in wanted_tasks
                     and ("lidar" in modalities or t in CAMERA_TASKS)]
            if (tasks, modalities) != (data.tasks, data.modalities):
                data.tasks, data.modalities = tasks, modalities
                self.changed_at[c] = now
                changed.append(c)
        self.applied.append({"at_s": now, "label": event.label, "clients": changed,
                             "tasks": event.tasks, "modalities": event.modalities,
                             "active_tasks": self.active_tasks()})
        return changed

    def process(self, env: simpy.Environment, on_change):
        """SimPy process: each event at its time; ``on_change(clients)`` after it."""
        for index, event in enumerate(self.cfg.events):
            if event.at_s > env.now:
                yield env.timeout(event.at_s - env.now)
            on_change(self.apply(index, event, env.now))

    def active_tasks(self) -> list[str]:
        """The tasks some client trains now."""
        return [t for t in TASKS if any(t in d.tasks for d in self.datasets)]

    def summary(self) -> dict[str, Any]:
        return {"initial_active_tasks": self.initial_active, "events": self.applied,
                "continual": self.cfg.continual,
                **({"l2_weight": self.cfg.l2_weight} if self.cfg.continual == "l2" else {})}
