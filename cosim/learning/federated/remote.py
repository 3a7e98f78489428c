"""Client training on worker processes or Ray actors while the SimPy clock stays in this process.

Each worker builds the same model and data from the learning section and the run's seeds
(``setup.build_learning``: same seed, same weights) and trains the passes it is sent with the
batched (or sequential) trainer.
The driver keeps every client's gradient balancer and sends it along with the client's job, so
balancing state follows the client whichever worker trains it. The passes are the ones the local
trainer forms (``LocalTrainer.passes_of``), each trained whole by one worker with the run's thread
count, and the frozen-prefix cache is filled frame by frame, so the updates are bit-identical to
local training whichever worker trains which pass (``tests/test_remote_training.py``).

- ``threads``: threads of this process, each with its own replica of the model (the frozen
  backbone's tensors shared, read only) and ``threads`` torch threads, sharing the sample and
  prefix caches and the clients' balancers; a round trains as one pass per worker
  (``ThreadTrainer``).
  PyTorch releases the GIL inside its kernels, so on a CPU two 1-thread workers keep both cores
  busier than one 2-thread pass (README).
- ``processes``: a ``concurrent.futures`` pool of spawned processes on this machine (CPU
  training uses one thread per worker best: 2 workers x 1 thread train about 1.5x the clients of
  1 process x 2 threads here, README).
- ``ray``: Ray actors (``pip install -e ".[ray]"``), one per GPU of the cluster.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import queue
from collections.abc import Callable
from typing import Any

import torch

from cosim.child_env import safe_child_path
from cosim.errors import MissingDependencyError
from cosim.learning.federated.setup import build_learning
from cosim.learning.federated.training import LocalTrainer, TrainedUpdate, Trainer, TrainJob, l2_weight
from cosim.learning.model import replicate
from cosim.registry import Registry
from cosim.scenario import LearningConfig


def make_trainer(cfg: LearningConfig, seeds: dict[str, int], local: LocalTrainer) -> Trainer:
    """The learning section's trainer: ``local`` itself, or workers that train as it would (each
    builds its replica of the model and the clients' data from ``cfg`` and ``seeds``)."""
    return BACKENDS.resolve(cfg.local.backend)(cfg, seeds, local)


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

    def __init__(self, cfg: LearningConfig, seeds: dict[str, int], threads: int):
        torch.set_num_threads(threads)  # as the driver: same kernels, same sums
        setup = build_learning(cfg, seeds)
        self.trainer = LocalTrainer(setup.model, setup.datasets, cfg.local, cfg.balancing, setup.frozen,
                                    l2_weight(cfg))

    def train(self, jobs: list[TrainJob], balancers: dict[int, Any]) -> tuple[list[TrainedUpdate], dict]:
        self.trainer.balancers.update(balancers)
        updates = self.trainer.train(jobs)
        return updates, {j.client: self.trainer.balancers[j.client] for j in jobs}


class _RemoteTrainer(Trainer):
    """The ``LocalTrainer`` interface; subclasses say how a pass reaches a worker."""

    def __init__(self, local: LocalTrainer):
        self.local = local

    @property
    def driver(self) -> LocalTrainer:
        return self.local

    @property
    def balancers(self):
        return self.local.balancers

    def _local_mode(self) -> dict:
        """The local trainer's mode without its own prefix cache (each worker keeps one)."""
        return {k: v for k, v in self.local.mode.items()
                if k not in ("cached_prefix_frames", "cached_prefix_bytes")}

    def _submit(self, index: int, chunk: list[TrainJob], balancers: dict) -> Any:
        raise NotImplementedError

    def _results(self, pending: list) -> list[tuple[list[TrainedUpdate], dict]]:
        raise NotImplementedError

    def train(self, jobs: list[TrainJob]) -> list[TrainedUpdate]:
        """The local trainer's passes, spread over the workers; updates in the order given."""
        if not jobs:
            return []
        passes = self.local.passes_of(jobs)
        pending = [self._submit(n, chunk, {j.client: self.local.balancer(j.client, j.tasks) for j in chunk})
                   for n, chunk in enumerate(passes)]
        out: list[TrainedUpdate] = []
        for updates, balancers in self._results(pending):
            out += updates
            self.local.balancers.update(balancers)
        if not self.local.sequential_reason:
            self.local.passes += len(passes)
        return out


class ThreadTrainer(Trainer):
    """Passes trained on threads of this process, one model replica per thread.

    A round's updates train as one pass per worker, of near-equal size, at ``threads`` torch
    threads each. A round with fewer updates than workers trains in this thread, as the local
    backend would (with this process's torch threads): a worker thread running multi-threaded
    kernels left this thread's later kernels about 1.5x slower here, and training the odd
    update of a round alone on every thread was slower than near-equal passes (README).

    The workers' replicas are their own (not the run's model, which this thread may use while
    they train: the compute cost's FLOP count, scoring in the foreground), so ``submit`` can
    return before the passes are done (``learning.local.overlap``)."""

    def __init__(self, learning: LearningConfig, seeds: dict[str, int], local: LocalTrainer):
        self.local = local
        cfg = learning.local
        cores = os.cpu_count() or 1
        self.workers = cfg.workers or cores
        self.threads = cfg.threads or max(1, cores // self.workers)
        self.replicas = [replicate(local.model) for _ in range(self.workers)]
        self.idle: queue.SimpleQueue[LocalTrainer] = queue.SimpleQueue()
        for model in self.replicas:
            trainer = LocalTrainer(model, local.datasets, local.local, local.balancing, local.frozen,
                                   local.l2_weight)
            trainer.prefix, trainer.balancers = local.prefix, local.balancers  # shared
            self.idle.put(trainer)
        self.pool = cf.ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="cosim-train")

    background = True

    @property
    def driver(self) -> LocalTrainer:
        return self.local

    @property
    def balancers(self):
        return self.local.balancers

    @property
    def mode(self) -> dict:
        return {**self.local.mode, "backend": "threads", "workers": self.workers,
                "threads_per_worker": self.threads}

    def train(self, jobs: list[TrainJob]) -> list[TrainedUpdate]:
        return self.submit(jobs)()

    def submit(self, jobs: list[TrainJob]) -> Callable[[], list[TrainedUpdate]]:
        """Start training ``jobs``; what this returns waits for their updates (in the order
        given). The previous call's passes must be done (the jobs' start states came from them)."""
        if len(jobs) < self.workers:  # too few to share (none, or one of two workers)
            out = self.local.train(jobs)
            return lambda: out
        current = self.local.model.export_modules(self.local.model.module_names())
        for model in self.replicas:  # modules no job's start state holds (frozen heads)
            model.import_modules(current)
        passes = self.local.passes_of(jobs, self.workers)
        pending = [self.pool.submit(self._train_pass, chunk, self.threads) for chunk in passes]
        self.local.passes += len(passes)
        return lambda: [update for future in pending for update in future.result()]

    def _train_pass(self, chunk: list[TrainJob], threads: int) -> list[TrainedUpdate]:
        trainer = self.idle.get()
        try:
            torch.set_num_threads(threads)  # this thread's kernels (OpenMP's count is per thread)
            return trainer.train(chunk)
        finally:
            self.idle.put(trainer)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class ProcessTrainer(_RemoteTrainer):
    """Passes trained on spawned worker processes of this machine."""

    def __init__(self, learning: LearningConfig, seeds: dict[str, int], local: LocalTrainer):
        super().__init__(local)
        self.workers = learning.local.workers or os.cpu_count() or 1
        threads = torch.get_num_threads()
        self.pool = cf.ProcessPoolExecutor(max_workers=self.workers,
                                           mp_context=multiprocessing.get_context("spawn"),
                                           initializer=_start_worker, initargs=(learning, seeds, threads))

    @property
    def mode(self) -> dict:
        return {**self._local_mode(), "backend": "processes", "workers": self.workers,
                "threads_per_worker": torch.get_num_threads()}

    def _submit(self, index, chunk, balancers):
        with safe_child_path():  # the first passes start the worker processes
            return self.pool.submit(_train_in_worker, chunk, balancers)

    def _results(self, pending):
        return [future.result() for future in pending]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


_WORKER: TrainerActor | None = None


def _start_worker(cfg: LearningConfig, seeds: dict[str, int], threads: int) -> None:
    global _WORKER
    _WORKER = TrainerActor(cfg, seeds, threads)


def _train_in_worker(chunk: list[TrainJob], balancers: dict) -> tuple[list[TrainedUpdate], dict]:
    assert _WORKER is not None
    return _WORKER.train(chunk, balancers)


class RayTrainer(_RemoteTrainer):
    """Passes trained on Ray actors, one per GPU of the cluster (or ``workers`` of them)."""

    def __init__(self, learning: LearningConfig, seeds: dict[str, int], local: LocalTrainer):
        super().__init__(local)
        ray = import_ray()
        self.ray = ray
        cfg = learning.local
        self.started = not ray.is_initialized()
        if self.started:
            ray.init(address=cfg.ray_address, include_dashboard=False, log_to_driver=False,
                     configure_logging=True, logging_level="ERROR")
        self.gpus = int(ray.cluster_resources().get("GPU", 0))
        count = cfg.workers or max(self.gpus, 1)
        options = {"num_gpus": 1} if self.gpus else {"num_cpus": 1}
        actor = ray.remote(**options)(TrainerActor)
        self.actors = [actor.remote(learning, seeds, torch.get_num_threads()) for _ in range(count)]

    @property
    def mode(self) -> dict:
        return {**self._local_mode(), "backend": "ray", "actors": len(self.actors), "gpus": self.gpus}

    def _submit(self, index, chunk, balancers):
        return self.actors[index % len(self.actors)].train.remote(chunk, balancers)

    def _results(self, pending):
        return self.ray.get(pending)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        if self.started:
            self.ray.shutdown()


def _trainer_class_problem(found: object) -> str | None:
    """What keeps a user's object from being a trainer backend (None: nothing)."""
    if not isinstance(found, type) or not issubclass(found, Trainer):
        return ("expected a subclass of cosim.learning.federated.training.Trainer, built as "
                "Class(learning, seeds, local_trainer)")
    return None


# learning.local.backend -> (learning section, seeds, this process's trainer) -> the trainer the
# server uses; keyed by cosim.names.TRAINER_BACKENDS (or a user's module:Class)
BACKENDS: Registry[Callable[[LearningConfig, dict[str, int], LocalTrainer], Trainer]] = Registry(
    "trainer backend", "learning.local.backend",
    {"local": lambda learning, seeds, local: local, "threads": ThreadTrainer, "processes": ProcessTrainer,
     "ray": RayTrainer},
    check=_trainer_class_problem)
