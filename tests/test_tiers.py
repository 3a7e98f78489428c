"""Module-to-tier hierarchy (aggregation.tiers): which modules the cloud, each cell's edge and
each sidelink cluster aggregate."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from test_d2d import _EngineRadio, run_three_clients

from cosim.learning.federated.tiers import ModuleTiers
from cosim.scenario.aggregation import TierRule

NAMES = ["peft.image.block0", "peft.lidar.block0", "task_adapter", "heads.seg3d", "heads.det2d"]


def test_rules_map_modules_first_match_wins_and_unknown_patterns_are_named():
    tiers = ModuleTiers([TierRule(modules=["heads.seg3d"], tier="edge"),
                         TierRule(modules=["heads.*"], tier="cloud", every=4),
                         TierRule(modules=["peft.lidar.*"], tier="fog")], cloud_every=3, module_names=NAMES)
    assert tiers.tier("heads.seg3d.conv.weight") == "edge"
    assert tiers.tier("heads.det2d.conv.weight") == "cloud"
    assert tiers.tier("peft.lidar.block0.down.weight") == "fog"
    assert tiers.tier("task_adapter.up.bias") == "cloud"  # no rule: cloud every cloud_every
    keys = ["heads.det2d.w", "task_adapter.w", "peft.image.block0.w", "heads.seg3d.w"]
    assert tiers.cloud_due(keys, 3) == ["task_adapter.w", "peft.image.block0.w"]
    assert tiers.cloud_due(keys, 4) == ["heads.det2d.w"]
    assert tiers.cloud_due(keys, 12) == ["heads.det2d.w", "task_adapter.w", "peft.image.block0.w"]
    with pytest.raises(ValueError, match=r"tiers.0.modules: 'head.\*' names no module"):
        ModuleTiers([TierRule(modules=["head.*"], tier="edge")], 1, NAMES)


class _TwoCellRadio(_EngineRadio):
    """v0, v1 served by cell 0 and v2 by cell 1 (two macro sites 1 km apart)."""

    def __init__(self, env):
        super().__init__(env, {"v0": 0, "v1": 0, "v2": 1}, {"v0": 50e6, "v1": 50e6, "v2": 50e6})
        self.cells = SimpleNamespace(kind=("macro", "macro"), x=np.array([0.0, 1000.0]),
                                     y=np.array([0.0, 0.0]))


def _edge_round(tmp_path, tiers: str | None):
    from pathlib import Path

    from cosim.scenario_loader import load_scenario

    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    tier_setting = f", tiers: {tiers}" if tiers else ""
    scenario = load_scenario(path, [
        "learning.enabled=true", "clients.count=3", "scheduling.policy=all_connected",
        "scheduling.per_round=3",
        "aggregation={method: hierarchical, edge_period_s: 30, cloud_every: 1, max_rounds: 1"
        + tier_setting + "}",
        "learning.data.synthetic.segments=5", "learning.data.synthetic.frames=2",
        "learning.data.clients=3", "learning.data.heldout_segments=2", "learning.local.batch_size=2",
        "learning.local.clients_per_pass=1", "radio.sidelink={los: stochastic}"])
    return run_three_clients(tmp_path, scenario, _TwoCellRadio,
                             {("v0", "v1"): 100e6})  # v0 and v1 hear each other


def _close(a, b):
    return torch.allclose(a.double(), b.double(), atol=1e-6)


@pytest.mark.slow
def test_edge_heads_stay_at_their_cell_and_the_rest_is_averaged_at_the_cloud(tmp_path):
    plain = _edge_round(tmp_path / "plain", None)
    tiered = _edge_round(tmp_path / "tiers", "[{modules: [heads.*], tier: edge}]")
    assert plain.version == tiered.version == 1
    # one round, every update in: the evaluated global model is the same sample-weighted average
    for key, value in plain.global_state.items():
        assert _close(tiered.global_state[key], value), key
    edges = tiered.strategy.edge_state
    assert sorted(edges) == [0, 1] and plain.strategy.edge_state == {}
    heads = [k for k in tiered.global_state if k.startswith("heads.") and edges[0][k].is_floating_point()]
    shared = [k for k in tiered.global_state if not k.startswith("heads.")]
    # each cell keeps its own heads (cell 1's are v2's update alone) ...
    assert any(not _close(edges[0][k], edges[1][k]) for k in heads)
    # ... while the cloud handed the shared modules back to both cells
    assert all(_close(edges[c][k], tiered.global_state[k]) for c in (0, 1) for k in shared)


def test_fog_modules_are_averaged_only_within_a_sidelink_cluster(tmp_path):
    fog = _edge_round(tmp_path, "[{modules: [peft.*], tier: fog}]")
    fog_state = fog.strategy.fog_state
    assert sorted(fog_state) == [0, 1, 2]
    keys = [k for k in fog_state[0][0] if fog_state[0][0][k].is_floating_point()]
    assert keys and all(k.startswith("peft.") for k in keys)
    # v0 and v1 (a cluster) share one average; v2 keeps its own update's modules
    assert all(_close(fog_state[0][0][k], fog_state[1][0][k]) for k in keys)
    assert any(not _close(fog_state[0][0][k], fog_state[2][0][k]) for k in keys)
    assert fog_state[0][1] == fog_state[1][1] > fog_state[2][1] > 0  # samples behind each
