"""Training the completed updates for real: one call takes a list of (client, start state).

They train together, up to ``learning.local.clients_per_pass`` per pass over the frozen backbone
(``cosim/learning/batched.py``), or one after another (``clients_per_pass: 1``, or a PEFT method
that cannot stack); ``mode`` says which, for run.json. Either way the updates come back in the
order given (the order they reached the server)."""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from cosim.learning.balancing import GradientBalancer
from cosim.learning.batched import ClientJob, PrefixCache, batched_local_updates
from cosim.learning.data.datasets import ClientDataset
from cosim.learning.local import LocalStats, local_update, trainable_modules
from cosim.learning.model import M3TModel
from cosim.learning.stacking import unstackable_reason
from cosim.scenario import BalancingConfig, LearningConfig, LocalTrainingConfig

State = dict[str, torch.Tensor]


def l2_weight(cfg: LearningConfig) -> float:
    """The continual-learning pull of drift (0: none)."""
    drift = cfg.drift
    return drift.l2_weight if drift is not None and drift.continual == "l2" else 0.0


@dataclass(frozen=True)
class TrainJob:
    """A completed client's update to train: from which global (or edge) state, with which seed;
    under drift, the task mix and modalities it trained on (None: its data's) and the state its
    shared modules are pulled towards (``learning.drift.continual: l2``)."""

    client: int
    start: State
    seed: int
    tasks: tuple[str, ...] | None = None
    modalities: tuple[str, ...] | None = None
    anchor: State | None = None


@dataclass
class TrainedUpdate:
    client: int
    modules: State
    weight: float  # samples behind the update (its FedAvg weight)
    stats: LocalStats


class Trainer(ABC):
    """A trainer backend, as the server uses it: this process's ``LocalTrainer``, or workers
    (threads, processes, Ray actors) that train as it would (``remote.py``)."""

    background: ClassVar[bool] = False  # submit() returns before the updates are trained

    @property
    @abstractmethod
    def driver(self) -> LocalTrainer:
        """The trainer of this process: the run's model and every client's balancer."""

    @property
    @abstractmethod
    def mode(self) -> dict[str, Any]:
        """How updates are trained (run.json ``summary.learning.trainer``)."""

    @abstractmethod
    def train(self, jobs: list[TrainJob]) -> list[TrainedUpdate]:
        """The jobs' updates, in the order given."""

    def submit(self, jobs: list[TrainJob]) -> Callable[[], list[TrainedUpdate]]:
        """Start training the jobs; the returned call waits for their updates (``background``
        trainers only)."""
        raise NotImplementedError(f"{type(self).__name__} trains in the foreground only")

    def close(self) -> None:  # noqa: B027 - a trainer without workers has nothing to release
        """Release the workers, if any."""


class LocalTrainer(Trainer):
    """Client updates on the one shared model (one frozen backbone serves every client).

    Each client keeps its gradient balancer across rounds: GradNorm's weights and initial losses
    track the client's training, which a fresh balancer per update would reset every round."""

    def __init__(self, model: M3TModel, datasets: list[ClientDataset], local: LocalTrainingConfig,
                 balancing: BalancingConfig, frozen: tuple[str, ...], l2_weight: float = 0.0):
        self.model, self.datasets = model, datasets
        self.local, self.balancing, self.frozen = local, balancing, frozen
        self.l2_weight = l2_weight
        self.balancers: dict[int, GradientBalancer] = {}
        reason = unstackable_reason(model)
        if local.clients_per_pass == 1:
            reason = "learning.local.clients_per_pass is 1"
        if l2_weight > 0.0:
            reason = "learning.drift.continual: l2 trains one client at a time"
        self.sequential_reason = reason
        self.prefix = PrefixCache()
        self.passes = 0  # batched passes run, for run.json

    @property
    def driver(self) -> LocalTrainer:
        return self

    @property
    def mode(self) -> dict[str, Any]:
        """How updates are trained (run.json ``summary.learning.trainer``)."""
        if self.sequential_reason:
            return {"mode": "sequential", "reason": self.sequential_reason}
        return {"mode": "batched", "clients_per_pass": self.local.clients_per_pass,
                "passes": self.passes, "cached_prefix_frames": len(self.prefix.rows),
                "cached_prefix_bytes": self.prefix.nbytes}

    def balancer(self, client: int, tasks: Sequence[str] | None = None) -> GradientBalancer:
        """The client's balancer, created on its first update, and anew when its task mix gains
        a task it cannot weigh (drift)."""
        tasks = list(tasks if tasks is not None else self.datasets[client].tasks)
        known = self.balancers.get(client)
        if known is None or not set(tasks) <= set(known.tasks):
            self.balancers[client] = GradientBalancer(self.balancing, tasks)
        return self.balancers[client]

    def data(self, job: TrainJob) -> ClientDataset:
        """The client's data as it trained it: its task mix and modalities of the job (drift)."""
        data = self.datasets[job.client]
        if job.tasks is None and job.modalities is None:
            return data
        view = copy.copy(data)
        view.tasks = list(job.tasks if job.tasks is not None else data.tasks)
        view.modalities = list(job.modalities if job.modalities is not None else data.modalities)
        return view

    def trained_modules(self, job: TrainJob) -> list[str]:
        """The modules the job's update holds, as ``local_update`` and the batched pass pick
        them: those its tasks and modalities reach, not frozen, that its start state holds."""
        data = self.data(job)
        return [n for n in trainable_modules(self.model, list(data.tasks), list(data.modalities),
                                             self.frozen)
                if any(key.startswith(n + ".") for key in job.start)]

    def train(self, jobs: list[TrainJob]) -> list[TrainedUpdate]:
        if self.sequential_reason or not jobs:
            return self._sequential(jobs)
        out = []
        for chunk in self.passes_of(jobs):
            views = [self.data(j) for j in chunk]
            batched = [ClientJob(j.start, v, j.seed, self.balancer(j.client, v.tasks))
                       for j, v in zip(chunk, views, strict=True)]
            results = batched_local_updates(self.model, batched, self.local, self.balancing,
                                            self.frozen, self.prefix)
            self.passes += 1
            for job, (modules, stats) in zip(chunk, results, strict=True):
                weight = float(len(self.datasets[job.client]) * self.local.epochs)
                out.append(TrainedUpdate(job.client, modules, weight, stats))
        return out

    def passes_of(self, jobs: list[TrainJob], at_least: int = 1) -> list[list[TrainJob]]:
        """The jobs split into passes of at most ``clients_per_pass``, and into ``at_least``
        passes where there are that many jobs (one per worker thread), of near-equal size (so
        workers share a round evenly); one job per pass when training one after another."""
        if self.sequential_reason or not jobs:
            return [[job] for job in jobs]
        n = min(len(jobs), max(-(-len(jobs) // self.local.clients_per_pass), at_least))
        size, extra = divmod(len(jobs), n)
        out, first = [], 0
        for i in range(n):
            last = first + size + (i < extra)
            out.append(jobs[first:last])
            first = last
        return out

    def _sequential(self, jobs: list[TrainJob]) -> list[TrainedUpdate]:
        out = []
        for job in jobs:
            data = self.data(job)
            modules, stats = local_update(self.model, job.start, data, self.local, self.balancing,
                                          seed=job.seed, count_flops=False,  # costed elsewhere
                                          frozen=self.frozen, balancer=self.balancer(job.client, data.tasks),
                                          anchor=job.anchor, l2_weight=self.l2_weight)
            out.append(TrainedUpdate(job.client, modules, float(len(data) * self.local.epochs), stats))
        return out
