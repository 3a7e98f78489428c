"""Client partitions: which frames each client holds, and which tasks and modalities it has.

- ``segment`` (the paper): one whole segment per client, so clients differ as drives do (city,
  weather, time of day, class mix).
- ``dirichlet``: the frames of each city are split among clients with proportions drawn from
  Dir(alpha): small alpha gives clients few cities, large alpha near-IID clients.
Held-out segments are never given to a client; they are the global evaluation set. A share of
clients can lack the LiDAR (then they have no 3D task) or hold only the 2D tasks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.errors import InputError
from cosim.names import CAMERA_TASKS, TASKS
from cosim.scenario import DataConfig

FrameRef = tuple[str, int]  # (segment, timestamp)


@dataclass(frozen=True)
class ClientShard:
    client: int
    frames: tuple[FrameRef, ...]
    tasks: tuple[str, ...]
    modalities: tuple[str, ...]


@dataclass(frozen=True)
class Partition:
    clients: tuple[ClientShard, ...]
    heldout: tuple[FrameRef, ...]


def partition(segments: dict[str, list[int]], city: dict[str, str], cfg: DataConfig, seed: int,
              camera_only: frozenset[str] | set[str] = frozenset(),
              without_panoptic: frozenset[str] | set[str] = frozenset()) -> Partition:
    """``segments``: segment -> frame timestamps; ``city``: segment -> its location;
    ``camera_only``: segments without LiDAR, whose client trains the camera tasks on image and
    text (as a ``no_lidar`` client does); ``without_panoptic``: segments without panoptic labels,
    whose client trains every other task."""
    if (camera_only or without_panoptic) and cfg.partition != "segment":
        raise InputError(None, "learning.data.partition", f"{len(camera_only | without_panoptic)} "
                         "segments lack LiDAR or panoptic labels; their frames cannot be mixed "
                         "into other clients' shards: use partition: segment (one client each)")
    names = sorted(segments)
    rng = np.random.default_rng([seed, 11])
    order = [names[i] for i in rng.permutation(len(names))]
    heldout_names, train_names = order[: cfg.heldout_segments], order[cfg.heldout_segments:]
    stride = cfg.frame_stride

    def frames_of(name: str, every: int = 1) -> list[FrameRef]:
        return [(name, ts) for ts in sorted(segments[name])[::stride * every]]

    if cfg.partition == "segment":
        if len(train_names) < cfg.clients:
            raise InputError(None, "learning.data.clients",
                             f"{cfg.clients} clients need {cfg.clients} segments besides the "
                             f"{cfg.heldout_segments} held out; the dataset has {len(names)}")
        shards = [frames_of(n) for n in train_names[: cfg.clients]]
    else:
        shards = [[] for _ in range(cfg.clients)]
        cities = sorted({city[n] for n in train_names})
        for c in cities:
            frames = [f for n in train_names if city[n] == c for f in frames_of(n)]
            share = rng.dirichlet([cfg.dirichlet_alpha] * cfg.clients)
            owner = rng.choice(cfg.clients, size=len(frames), p=share)
            for f, o in zip(frames, owner, strict=True):
                shards[o].append(f)
    for i, frames in enumerate(shards):
        if not frames:  # a client with nothing to train on would fail its first round
            raise InputError(None, "learning.data.dirichlet_alpha" if cfg.partition == "dirichlet"
                             else "learning.data.frame_stride",
                             f"client {i} of {cfg.clients} gets no frames "
                             + ("(a smaller alpha concentrates the frames on fewer clients; "
                                "raise it or give fewer clients)" if cfg.partition == "dirichlet"
                                else "(its segment has none)"))
    n = cfg.clients
    no_lidar = set(rng.choice(n, size=round(cfg.no_lidar_share * n), replace=False).tolist())
    only_2d = set(rng.choice(n, size=round(cfg.camera_tasks_only_share * n), replace=False).tolist())
    clients = []
    for i, frames in enumerate(shards):
        without_lidar = i in no_lidar or any(name in camera_only for name, _ in frames[:1])
        tasks = CAMERA_TASKS if without_lidar or i in only_2d else TASKS
        if any(name in without_panoptic for name, _ in frames[:1]):
            tasks = tuple(t for t in tasks if t != "pan2d")
        modalities = ("image", "text") if without_lidar else ("image", "lidar", "text")
        clients.append(ClientShard(i, tuple(frames), tuple(tasks), modalities))
    heldout = tuple(f for name in heldout_names for f in frames_of(name, cfg.heldout_frame_stride))
    return Partition(tuple(clients), heldout)
