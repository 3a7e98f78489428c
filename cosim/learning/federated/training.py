"""Training the completed updates for real: one call takes a list of (client, start state), the
seam where a batched multi-client trainer fits. Today it trains them one after another, in the
order given (the order they reached the server)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from cosim.learning.balancing import GradientBalancer
from cosim.learning.data.datasets import ClientDataset
from cosim.learning.local import LocalStats, local_update
from cosim.learning.model import M3TModel
from cosim.scenario import BalancingConfig, LocalTrainingConfig

State = dict[str, torch.Tensor]


@dataclass(frozen=True)
class TrainJob:
    """A completed client's update to train: from which global (or edge) state, with which seed."""

    client: int
    start: State
    seed: int


@dataclass
class TrainedUpdate:
    client: int
    modules: State
    weight: float  # samples behind the update (its FedAvg weight)
    stats: LocalStats


class LocalTrainer:
    """Client updates on the one shared model (one frozen backbone serves every client).

    Each client keeps its gradient balancer across rounds: GradNorm's weights and initial losses
    track the client's training, which a fresh balancer per update would reset every round."""

    def __init__(self, model: M3TModel, datasets: list[ClientDataset], local: LocalTrainingConfig,
                 balancing: BalancingConfig, frozen: tuple[str, ...]):
        self.model, self.datasets = model, datasets
        self.local, self.balancing, self.frozen = local, balancing, frozen
        self.balancers: dict[int, GradientBalancer] = {}

    def balancer(self, client: int) -> GradientBalancer:
        """The client's balancer, created on its first update."""
        if client not in self.balancers:
            self.balancers[client] = GradientBalancer(self.balancing, self.datasets[client].tasks)
        return self.balancers[client]

    def train(self, jobs: list[TrainJob]) -> list[TrainedUpdate]:
        out = []
        for job in jobs:
            data = self.datasets[job.client]
            modules, stats = local_update(self.model, job.start, data, self.local, self.balancing,
                                          seed=job.seed, count_flops=False,  # costed elsewhere
                                          frozen=self.frozen, balancer=self.balancer(job.client))
            out.append(TrainedUpdate(job.client, modules, float(len(data) * self.local.epochs), stats))
        return out
