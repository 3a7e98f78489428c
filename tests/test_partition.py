"""Partitions and client datasets on a small synthetic dataset, through local_update/evaluate."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from cosim.learning.data.datasets import ClientDataset, SampleCache
from cosim.learning.data.partition import partition
from cosim.learning.data.synth import SynthConfig, generate
from cosim.learning.data.waymo_v2 import WaymoV2Dataset
from cosim.learning.grid import Geometry
from cosim.scenario import DataConfig

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

CFG = SynthConfig(segments=8, frames=4, seed=2, camera_size=(64, 48), lidar_size=(16, 128))


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> WaymoV2Dataset:
    root = tmp_path_factory.mktemp("synth")
    generate(root, CFG, workers=2)
    return WaymoV2Dataset(root)


def _all_frames(frames: dict[str, list[int]]) -> set:
    return {(s, t) for s, ts in frames.items() for t in ts}


@pytest.mark.parametrize("kind", ["segment", "dirichlet"])
def test_partitions_are_disjoint_complete_and_keep_heldout_apart(dataset, kind):
    frames, city = dataset.describe()
    cfg = DataConfig(clients=5, heldout_segments=2, partition=kind, dirichlet_alpha=0.3,
                     no_lidar_share=0.2, camera_tasks_only_share=0.2)
    p = partition(frames, city, cfg, seed=0)
    owned = [f for c in p.clients for f in c.frames]
    assert len(owned) == len(set(owned))  # disjoint
    held = set(p.heldout)
    assert not held & set(owned)
    assert len({s for s, _ in p.heldout}) == 2
    if kind == "segment":
        assert all(len({s for s, _ in c.frames}) == 1 for c in p.clients)  # one segment each
    else:
        assert set(owned) | held == _all_frames(frames)  # every training frame has an owner
    for c in p.clients:
        if "lidar" not in c.modalities:
            assert set(c.tasks) <= {"pan2d", "det2d"}
    assert sum("lidar" not in c.modalities for c in p.clients) == 1
    assert sum(set(c.tasks) == {"pan2d", "det2d"} for c in p.clients) >= 1
    assert partition(frames, city, cfg, seed=0) == p  # deterministic


def test_too_few_segments_is_a_clear_error(dataset):
    from cosim.errors import InputError

    frames, city = dataset.describe()
    with pytest.raises(InputError, match="learning.data.clients"):
        partition(frames, city, DataConfig(clients=30, heldout_segments=2), seed=0)


def test_client_datasets_feed_local_update_and_evaluate(dataset):
    from cosim.learning.local import evaluate, local_update
    from cosim.learning.model import M3TModel
    from cosim.scenario import BalancingConfig, LocalTrainingConfig, ModelConfig

    torch.manual_seed(0)
    model = M3TModel(ModelConfig())
    geo = Geometry(model.image_size, 4 * model.grid, model.cfg.bev_range_m)
    frames, city = dataset.describe()
    p = partition(frames, city, DataConfig(clients=3, heldout_segments=2, no_lidar_share=0.34), seed=1)
    cache = SampleCache(dataset, geo, capacity=64)
    clients = [ClientDataset(c, cache) for c in p.clients]
    inputs, targets = next(clients[0].batches(2, torch.Generator().manual_seed(0)))
    assert inputs["image"].shape == (2, 3, 64, 64) and len(inputs["text"]) == 2
    assert targets["det2d"]["heatmap"].shape == (2, 4, 32, 32)
    assert isinstance(targets["det3d"]["boxes"], list)
    g = model.export_modules(model.module_names())
    for client in clients:
        modules, stats = local_update(model, g, client, LocalTrainingConfig(batch_size=2),
                                      BalancingConfig(), seed=0)
        assert stats.steps == 2 and all(math.isfinite(v) for v in stats.last_epoch_loss.values())
        if "lidar" not in client.modalities:
            assert not any(k.startswith("peft.lidar") for k in modules)
    decoded = cache.decoded
    local_update(model, g, clients[0], LocalTrainingConfig(batch_size=2), BalancingConfig(), seed=1)
    assert cache.decoded == decoded  # the second round reads nothing again
    from cosim.learning.data.partition import ClientShard

    held = ClientDataset(ClientShard(-1, p.heldout, ("seg3d", "det3d", "pan2d", "det2d"),
                                     ("image", "lidar", "text")), cache)
    metrics = evaluate(model, g, held.ordered_batches(4))
    assert set(metrics) == {"seg3d", "det3d", "pan2d", "det2d"}


def test_dataset_root_builds_synthetic_data_once(tmp_path, monkeypatch):
    from cosim.learning.data.datasets import dataset_root
    from cosim.scenario import SyntheticDataConfig

    cfg = DataConfig(synthetic=SyntheticDataConfig(segments=1, frames=1, seed=3))
    root = dataset_root(cfg)
    assert (Path(root) / "lidar").is_dir()
    stamp = next((Path(root) / "lidar").glob("*.parquet")).stat().st_mtime_ns
    assert dataset_root(cfg) == root
    assert next((Path(root) / "lidar").glob("*.parquet")).stat().st_mtime_ns == stamp
