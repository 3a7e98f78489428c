"""What the server and every remote trainer build alike from a scenario: the model (seeded the
same way, so every replica starts from the same weights), the clients' data and the held-out set.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from cosim.learning.data.datasets import ClientDataset, SampleCache, open_dataset
from cosim.learning.data.partition import ClientShard, Partition, partition
from cosim.learning.grid import Geometry
from cosim.learning.model import M3TModel
from cosim.learning.precision import Precision, pick_device, resolve
from cosim.learning.tasks import SPECS
from cosim.names import MODALITIES, TASKS
from cosim.scenario import LearningConfig


@dataclass
class LearningSetup:
    device: torch.device
    model: M3TModel
    geometry: Geometry
    partition: Partition
    cache: SampleCache
    datasets: list[ClientDataset]
    heldout: ClientDataset
    frozen: tuple[str, ...]
    precision: Precision


def _client_tasks(shard: ClientShard, tasks: tuple[str, ...]) -> tuple[str, ...]:
    """The model's tasks a client holds: the built-in ones its partition gave it, and a user's
    task wherever the client has the LiDAR the task needs."""
    return tuple(t for t in tasks if t in shard.tasks or (
        t not in TASKS and ("lidar" in shard.modalities or "lidar" not in SPECS[t].modalities)))


def build_learning(cfg: LearningConfig, seeds: dict[str, int]) -> LearningSetup:
    """The model (initial weights from ``seeds["training"]``) and the clients' data (partitioned
    with ``seeds["data"]``) of a learning section."""
    if cfg.local.threads is not None:  # this thread's (the workers' set their own)
        torch.set_num_threads(cfg.local.threads)
    device = pick_device(cfg.local.device)
    with torch.random.fork_rng(devices=[]):  # the one draw from torch's global RNG: initial weights
        torch.manual_seed(seeds["training"])
        model = M3TModel(cfg.model).to(device)
    precision = resolve(cfg.precision, device)
    model.set_precision(precision.name)
    geometry = Geometry(model.image_size, 4 * model.grid, cfg.model.bev_range_m)
    dataset = open_dataset(cfg.data)
    frames, city = dataset.describe()
    parts = partition(frames, city, cfg.data, seeds["data"], dataset.camera_only(),
                      dataset.without_panoptic())
    cache = SampleCache(dataset, geometry, cfg.data.cache_frames, pin=device.type == "cuda")
    tasks = tuple(t for t in SPECS if t in model.tasks)  # a client trains what the model has
    datasets = [ClientDataset(dataclasses.replace(s, tasks=_client_tasks(s, tasks)), cache)
                for s in parts.clients]
    heldout = ClientDataset(ClientShard(-1, parts.heldout, tasks, MODALITIES), cache)
    return LearningSetup(device, model, geometry, parts, cache, datasets, heldout, tuple(cfg.frozen_modules),
                         precision)
