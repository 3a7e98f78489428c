"""Client training on Ray actors while the SimPy clock stays in this process.

Each actor builds the same model and data from the scenario (``setup.build_learning``: same
seed, same weights) and trains the chunks of jobs it is sent with the batched (or sequential)
trainer; the driver keeps every client's gradient balancer and sends it along with the client's
job, so balancing state follows the client whichever actor trains it. Chunks are the ones the local
trainer would form, each trained by one actor with the driver's thread count, so the updates are
bit-identical to local training (``tests/test_remote_training.py``).
"""

from __future__ import annotations

from typing import Any

import torch

from cosim.errors import MissingDependencyError
from cosim.learning.federated.setup import build_learning
from cosim.learning.federated.training import LocalTrainer, TrainedUpdate, TrainJob
from cosim.scenario import Scenario


def make_trainer(scenario: Scenario, local: LocalTrainer):
    """The scenario's trainer: ``local`` itself, or Ray actors that train as it would."""
    if scenario.learning.local.backend == "ray":
        return RayTrainer(scenario, local)
    return local


def import_ray():
    try:
        import ray
    except ImportError:
        raise MissingDependencyError(
            "learning.local.backend is ray but Ray is not installed: pip install -e \".[ray]\" "
            "(or pip install ray)") from None
    return ray


class TrainerActor:
    """One replica of the server's model and client data, training the jobs it is sent."""

    def __init__(self, scenario: Scenario, threads: int):
        torch.set_num_threads(threads)  # as the driver: same kernels, same sums
        setup = build_learning(scenario)
        cfg = scenario.learning
        self.trainer = LocalTrainer(setup.model, setup.datasets, cfg.local, cfg.balancing, setup.frozen)

    def train(self, jobs: list[TrainJob], balancers: dict[int, Any]) -> tuple[list[TrainedUpdate], dict]:
        self.trainer.balancers.update(balancers)
        updates = self.trainer.train(jobs)
        return updates, {j.client: self.trainer.balancers[j.client] for j in jobs}


class RayTrainer:
    """The ``LocalTrainer`` interface, with the training done by Ray actors."""

    def __init__(self, scenario: Scenario, local: LocalTrainer):
        ray = import_ray()
        self.ray, self.local = ray, local
        cfg = scenario.learning.local
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=cfg.ray_address, include_dashboard=False, log_to_driver=False,
                     configure_logging=True, logging_level="ERROR")
        gpus = int(ray.cluster_resources().get("GPU", 0))
        count = cfg.ray_actors or max(gpus, 1)
        options = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        actor = ray.remote(**options)(TrainerActor)
        self.actors = [actor.remote(scenario, torch.get_num_threads()) for _ in range(count)]
        self.gpus = gpus

    @property
    def balancers(self):
        return self.local.balancers

    @property
    def mode(self) -> dict:
        return {**self.local.mode, "backend": "ray", "actors": len(self.actors), "gpus": self.gpus}

    def train(self, jobs: list[TrainJob]) -> list[TrainedUpdate]:
        """The local trainer's chunks, spread over the actors; updates in the order given."""
        if not jobs:
            return []
        size = 1 if self.local.sequential_reason else self.local.local.clients_per_pass
        chunks = [jobs[i: i + size] for i in range(0, len(jobs), size)]
        pending = []
        for n, chunk in enumerate(chunks):
            balancers = {j.client: self.local.balancer(j.client) for j in chunk}
            pending.append(self.actors[n % len(self.actors)].train.remote(chunk, balancers))
        out: list[TrainedUpdate] = []
        for updates, balancers in self.ray.get(pending):
            out += updates
            self.local.balancers.update(balancers)
        if not self.local.sequential_reason:
            self.local.passes += len(chunks)
        torch.manual_seed(jobs[-1].seed)  # the global RNG as local training leaves it
        return out

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started:
            self.ray.shutdown()
