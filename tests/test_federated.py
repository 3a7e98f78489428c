"""The federated engine: policies, module FedAvg, and rounds decided by a scripted radio."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from cosim.learning.federated.aggregation import fedavg
from cosim.learning.federated.policies import (
    AllConnected,
    AvailabilityAware,
    Candidate,
    RandomPolicy,
    RateAware,
    ServerView,
    make_policy,
)
from cosim.radio.transfers import Transfers


def _cand(client, connected=True, dl=80e6, ul=20e6, window=100.0, size=1_000_000, compute=1.0):
    return Candidate(client, f"v{client}", connected, 0 if connected else -1, dl, ul, window, size,
                     size, compute, ("seg3d",), ("image", "lidar", "text"), 10, False, 0, 0)


VIEW = ServerView(now=0.0, round=1, deadline_s=30.0)


def test_all_connected_and_random():
    cands = [_cand(0), _cand(1, connected=False), _cand(2), _cand(3)]
    assert AllConnected().select(VIEW, cands, 1) == [0, 2, 3]
    a = RandomPolicy(seed=3).select(VIEW, cands, 2)
    assert len(a) == 2 and set(a) <= {0, 2, 3} and RandomPolicy(seed=3).select(VIEW, cands, 2) == a


def test_availability_aware_ranks_by_margin_and_drops_the_hopeless():
    # est completion: 8e6/80e6 + 1 + 8e6/20e6 = 1.5 s
    cands = [_cand(0, window=10.0), _cand(1, window=50.0), _cand(2, window=1.0),  # 2: too short
             _cand(3, connected=False, window=99.0), _cand(4, window=30.0, compute=40.0)]  # 4: > deadline
    assert AvailabilityAware().select(VIEW, cands, 5) == [1, 0]
    assert AvailabilityAware().select(VIEW, cands, 1) == [1]


def test_rate_aware_uses_the_bottleneck_rate():
    cands = [_cand(0, dl=100e6, ul=5e6), _cand(1, dl=30e6, ul=20e6), _cand(2, dl=50e6, ul=50e6)]
    assert RateAware().select(VIEW, cands, 2) == [2, 1]


class OnlyEven:
    def select(self, view, candidates, k):
        return [c.client for c in candidates if c.client % 2 == 0][:k]


def test_user_policy_by_dotted_path_and_unknown_names():
    from cosim.errors import InputError

    assert make_policy("test_federated:OnlyEven", 0).select(VIEW, [_cand(0), _cand(1)], 5) == [0]
    with pytest.raises(InputError, match="unknown policy"):
        make_policy("best", 0)


def test_fedavg_is_module_level_and_weighted():
    g = {"a.w": torch.zeros(2), "b.w": torch.ones(2), "b.n": torch.tensor(4)}
    u1 = {"a.w": torch.tensor([1.0, 1.0]), "b.w": torch.tensor([3.0, 3.0]), "b.n": torch.tensor(6)}
    u2 = {"a.w": torch.tensor([4.0, 4.0])}  # a client that did not train module b
    out = fedavg(g, [(u1, 1.0), (u2, 3.0)])
    assert torch.allclose(out["a.w"], torch.tensor([13 / 4, 13 / 4]))
    assert torch.allclose(out["b.w"], torch.tensor([3.0, 3.0]))  # only u1 trained b
    assert out["b.n"].dtype == torch.int64 and int(out["b.n"]) == 6
    assert fedavg(g, []) == g


# ---- a round decided by a scripted radio ------------------------------------------------------

class _ScriptedRadio:
    """Scripted links for vehicles v0..v2. The update is ~2.7 MB: v1 (8 Mbit/s) downloads until
    ~2.7 s, uploads from ~2.7 s and loses coverage at 4.0 s, mid-upload; v2 is so slow that it
    cannot finish before the 10 s deadline."""

    step_s, block_t0, n_cells = 0.1, 0.0, 3

    def __init__(self, env):
        k = 3000
        self.rows = {"v0": 0, "v1": 1, "v2": 2}
        self.block_serving = np.tile(np.arange(3, dtype=np.int32), (k, 1))  # a cell each: no sharing
        self.block_avail = (np.arange(k) * self.step_s)[:, None] + np.zeros((1, 3))
        self.block_rate = np.full((2, k, 3), 80e6)
        self.block_rate[:, :, 1] = 8e6
        self.block_rate[:, :, 2] = 0.5e6
        self.background_users = np.zeros((2, 3), dtype=np.int64)
        self.block_serving[40:, 1] = -1
        self.fail_at = np.array([np.inf, 4.0, np.inf])
        self.transfers = Transfers(env, self)

    name = "radio"

    def attach(self, engine):
        pass

    def link_rows(self, vehicles):
        return np.array([self.rows.get(v, -1) for v in vehicles], dtype=np.int64)

    def failure_times(self, rows):
        return np.where(rows >= 0, self.fail_at[np.maximum(rows, 0)], np.inf)

    def transfer(self, vehicle, nbytes, direction, timeout_s=None):
        return self.transfers.transfer(vehicle, nbytes, direction, timeout_s)

    def serving_cell(self, vehicle):
        k = min(int(self.transfers.env.now / self.step_s), len(self.block_serving) - 1)
        return int(self.block_serving[k, self.rows[vehicle]])

    def rate_bps(self, vehicle, direction):
        return float(self.block_rate[0, 0, self.rows[vehicle]])

    def history_predictor(self):
        class Forever:
            def remaining_s(self, vehicle, now):
                return 1e9

        return Forever()


class _StillMobility:
    name = "mobility"

    def __init__(self):
        from cosim.mobility.session import VehicleStates

        ids = np.array(["v0", "v1", "v2"], dtype=object)
        z = np.zeros(3)
        self.current = VehicleStates(0.0, ids, z, z, z, z, ids, np.zeros(3, bool), tuple(ids), ())

    def attach(self, engine):
        pass

    def subscribe(self, listener):
        pass  # the test binds the clients itself

    def is_parked(self, vehicle):
        return False

    def vehicle_type(self, vehicle):
        return "DEFAULT_VEHTYPE"


@pytest.fixture(scope="module")
def tiny_scenario(tmp_path_factory):
    from pathlib import Path

    from cosim.scenario_loader import load_scenario

    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    return load_scenario(path, [
        "learning.enabled=true", "clients.count=3", "scheduling.policy=all_connected",
        "aggregation.round_deadline_s=10", "aggregation.max_rounds=1",
        "learning.data.synthetic.segments=5", "learning.data.synthetic.frames=2",
        "learning.data.clients=3", "learning.data.heldout_segments=2", "learning.local.batch_size=2",
        # one client after another, so the test below can redo v0's update bit for bit
        # (tests/test_batched_training.py compares the batched trainer with this path)
        "learning.local.clients_per_pass=1",
    ])


def test_a_client_losing_coverage_mid_upload_is_not_aggregated(tiny_scenario, tmp_path):
    from cosim.engine import Engine
    from cosim.learning.federated.server import FederatedLayer
    from cosim.learning.federated.settings import FederatedSettings
    from cosim.learning.federated.wiring import learning_ports
    from cosim.traces import TraceSet

    traces = TraceSet(tmp_path, 1000)
    engine = Engine(tiny_scenario.duration_s, traces)
    mobility, radio = _StillMobility(), _ScriptedRadio(engine.env)
    engine.add_layer(mobility)
    engine.add_layer(radio)
    settings = FederatedSettings.of(tiny_scenario)
    layer = FederatedLayer(settings, learning_ports(settings.clients, settings.scheduling, engine.env,
                                                    mobility, radio))
    before = {k: v.clone() for k, v in layer.global_state.items()}
    engine.add_layer(layer)
    layer.registry.update(["v0", "v1", "v2"], [], 0.0)
    engine.env.run(until=20)
    traces.close(complete=True)
    p = pq.read_table(tmp_path / "participation.parquet").to_pandas().set_index("vehicle")
    assert p.loc["v0", "outcome"] == "completed"
    assert (p.loc["v1", "outcome"], p.loc["v1", "reason"]) == ("failed", "radio_link_failure")
    assert not np.isnan(p.loc["v1", "t_compute_end"]) and np.isnan(p.loc["v1", "t_upload_end"])
    assert (p.loc["v2", "outcome"], p.loc["v2", "reason"]) == ("failed", "deadline")
    # the global model moved by exactly v0's update: FedAvg over one completed client
    v0 = int(p.loc["v0", "client"])
    from cosim.learning.local import local_update

    layer.model.import_modules(before)
    solo, _ = local_update(layer.model, before, layer.datasets[v0], tiny_scenario.learning.local,
                           tiny_scenario.learning.balancing, seed=tiny_scenario.seed * 100_003 + 1,
                           count_flops=False)
    for key, value in solo.items():
        assert torch.allclose(layer.global_state[key].float(), value.float(), atol=1e-6), key
    untouched = [k for k in before if not any(k == s for s in solo)]
    assert all(torch.equal(before[k], layer.global_state[k]) for k in untouched)


def test_staleness_weights():
    from cosim.learning.federated.aggregation import staleness_weight

    assert staleness_weight("constant", 7, 0.5, 4) == 1.0
    assert staleness_weight("polynomial", 3, 0.5, 4) == pytest.approx(4 ** -0.5)
    assert staleness_weight("hinge", 4, 0.5, 4) == 1.0
    assert staleness_weight("hinge", 6, 0.5, 4) == pytest.approx(1 / (0.5 * 2 + 1))


def test_fedasync_mixes_with_the_staleness_weight():
    from cosim.learning.federated.aggregation import mix, staleness_weight

    g = {"m.w": torch.tensor([1.0, 2.0]), "n.w": torch.tensor([5.0])}
    client = {"m.w": torch.tensor([3.0, 6.0])}
    alpha = 0.6 * staleness_weight("polynomial", 3, 0.5, 4)  # = 0.3
    out = mix(g, client, alpha)
    assert torch.allclose(out["m.w"], torch.tensor([1.0 + 0.3 * 2.0, 2.0 + 0.3 * 4.0]))
    assert torch.equal(out["n.w"], g["n.w"])  # a module the client did not send


def test_fedbuff_applies_the_mean_weighted_delta_after_k_arrivals():
    from cosim.learning.federated.aggregation import FedBuffer

    start = {"m.w": torch.tensor([0.0])}
    buf = FedBuffer(size=2, server_lr=0.5)
    buf.add(start, {"m.w": torch.tensor([2.0])}, weight=1.0)
    assert not buf.full()
    buf.add(start, {"m.w": torch.tensor([4.0])}, weight=0.5)
    assert buf.full()
    out = buf.apply({"m.w": torch.tensor([10.0])})
    # mean of weighted deltas: (1 * 2 + 0.5 * 4) / 2 = 2; times server lr 0.5 -> +1
    assert torch.allclose(out["m.w"], torch.tensor([11.0])) and not buf.deltas


def test_deadline_aware_stops_adding_when_sharing_would_sink_the_round():
    from cosim.learning.federated.policies import DeadlineAware

    # each alone needs 8 * 1e7 / 8e6 * 2 + 1 = 21 s; two in one cell need 41 s > 30 s deadline
    same_cell = [_cand(i, dl=8e6, ul=8e6, size=10_000_000) for i in range(3)]
    assert DeadlineAware().select(VIEW, same_cell, 3) == [0]
    other = Candidate(9, "v9", True, 1, 8e6, 8e6, 100.0, 10_000_000, 10_000_000, 1.0, ("det2d",),
                      ("image", "text"), 10, False, 0, 0)
    assert DeadlineAware().select(VIEW, [*same_cell, other], 3) == [0, 9]


def test_modality_task_aware_covers_tasks_and_modalities_first():
    from cosim.learning.federated.policies import ModalityTaskAware

    a = _cand(0, window=500.0)  # seg3d with lidar, the largest margin
    b = _cand(1, window=400.0)
    c = Candidate(2, "v2", True, 0, 80e6, 20e6, 50.0, 1_000_000, 1_000_000, 1.0, ("det2d", "pan2d"),
                  ("image", "text"), 10, False, 0, 0)
    assert ModalityTaskAware().select(VIEW, [a, b, c], 2) == [0, 2]


def test_oort_explores_then_exploits_loss_and_speed():
    from cosim.learning.federated.policies import Oort

    seen = [Candidate(i, f"v{i}", True, 0, 80e6, 20e6, 100.0, 1_000_000, 1_000_000, 1.0, ("seg3d",),
                      ("image",), 10, False, 3, 3, last_loss=loss, last_round=2)
            for i, loss in enumerate([0.5, 2.0, 1.0])]
    fresh = _cand(7)
    picked = Oort(seed=0, epsilon=0.5).select(ServerView(10.0, 5, 30.0), [*seen, fresh], 2)
    assert picked == [7, 1]  # one exploration slot, then the highest-loss known client
    slow = Candidate(8, "v8", True, 0, 1e5, 1e5, 1000.0, 1_000_000, 1_000_000, 1.0, ("seg3d",),
                     ("image",), 10, False, 3, 3, last_loss=3.0, last_round=2)
    assert Oort(seed=0, epsilon=0.0).select(ServerView(10.0, 5, 30.0), [*seen, slow], 1) == [1]


def test_oracle_needs_a_recorded_run(tmp_path):
    from pydantic import ValidationError

    from cosim.scenario import SchedulingConfig

    with pytest.raises(ValidationError, match="oracle_windows"):
        SchedulingConfig(policy="oracle")


@pytest.mark.slow
def test_participation_is_identical_for_the_same_seed(tmp_path):
    from pathlib import Path

    from cosim.runner import run_scenario
    from cosim.scenario_loader import load_scenario

    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    overrides = ["duration_s=40", "learning.enabled=true", "clients.count=3",
                 "scheduling.policy=random", "scheduling.per_round=2", "aggregation.round_deadline_s=10",
                 "learning.data.synthetic.segments=5", "learning.data.synthetic.frames=2",
                 "learning.data.clients=3", "learning.data.heldout_segments=2",
                 "learning.local.batch_size=2"]
    for name in ("a", "b"):
        run_scenario(load_scenario(path, overrides), source=path, out=tmp_path / name, quiet=True)
    a = (tmp_path / "a" / "participation.parquet").read_bytes()
    assert a == (tmp_path / "b" / "participation.parquet").read_bytes()
    table = pq.read_table(tmp_path / "a" / "participation.parquet")
    assert table.num_rows > 3
    # learning itself is deterministic on CPU: the metrics trace holds no wall-clock time
    for name in ("metrics", "mobility", "radio", "handoffs", "link_windows", "cells"):
        assert ((tmp_path / "a" / f"{name}.parquet").read_bytes()
                == (tmp_path / "b" / f"{name}.parquet").read_bytes()), name
    walls = json.loads((tmp_path / "a" / "run.json").read_text())["summary"]["learning"]
    rounds = pq.read_table(tmp_path / "a" / "metrics.parquet").column("round").unique()
    assert len(walls["evaluation_wall_s"]) == len(rounds)


def test_hierarchical_two_level_average_equals_flat_fedavg():
    from cosim.learning.federated.aggregation import cloud_average, samples_per_key

    g = torch.Generator().manual_seed(0)
    glob = {"a.w": torch.zeros(3), "b.w": torch.zeros(2)}

    def update(with_b: bool):
        u = {"a.w": torch.randn(3, generator=g)}
        if with_b:
            u["b.w"] = torch.randn(2, generator=g)
        return u

    cells = {0: [(update(True), 10.0), (update(False), 30.0)],
             1: [(update(True), 5.0)],
             2: [(update(False), 20.0), (update(True), 15.0), (update(True), 1.0)]}
    edges = [(fedavg(glob, ups), samples_per_key(ups)) for ups in cells.values()]
    two_level = cloud_average(glob, edges)
    flat = fedavg(glob, [u for ups in cells.values() for u in ups])
    for key in glob:
        assert torch.allclose(two_level[key], flat[key], atol=1e-6), key


def test_backhaul_latency_follows_the_graph():
    from cosim.learning.federated.backhaul import backhaul_graph, edge_to_cloud_s

    kind = ("macro", "macro", "small")
    x, y = np.array([0.0, 1000.0, 900.0]), np.array([0.0, 0.0, 0.0])
    g = backhaul_graph(kind, x, y, macro_to_cloud_ms=10.0, small_to_macro_ms=2.0)
    assert edge_to_cloud_s(g, 0, 0, 1e9) == pytest.approx(0.010)
    # the small cell hangs off macro 1 (nearest), then the cloud; plus 1 MB at 1 Gbit/s
    assert edge_to_cloud_s(g, 2, 1_000_000, 1e9) == pytest.approx(0.012 + 0.008)


def test_clients_bind_to_listed_vehicles_and_rebind_after_they_leave():
    from cosim.learning.data.partition import ClientShard
    from cosim.learning.federated.clients import ClientRegistry
    from cosim.scenario import ClientsConfig

    shards = [ClientShard(i, (), ("seg3d",), ("image",)) for i in range(2)]
    reg = ClientRegistry(ClientsConfig(count=2, vehicles=["a", "b", "c"]), shards, seed=0)
    reg.update(["x", "a", "b", "c"], [], 0.0)
    assert [c.vehicle for c in reg.clients] == ["a", "b"]  # x is not listed; c finds no partition
    reg.update([], ["a"], 5.0)
    assert reg.clients[0].vehicle is None and len(reg.present()) == 1
    reg.update(["c"], [], 6.0)
    assert reg.clients[0].vehicle == "c" and reg.clients[0].bound_at == 6.0


def test_the_scenario_accepts_exactly_the_registered_policies():
    from pydantic import ValidationError

    from cosim.learning.federated.policies import REGISTRY
    from cosim.names import POLICIES
    from cosim.scenario import SchedulingConfig

    assert tuple(REGISTRY) == POLICIES  # the scenario's names, each with its class
    for name in REGISTRY:
        if name == "oracle":  # known, but it needs a recorded run's link windows
            with pytest.raises(ValidationError, match="oracle_windows"):
                SchedulingConfig(policy=name)
        else:
            assert SchedulingConfig(policy=name).policy == name
    with pytest.raises(ValidationError, match="unknown policy"):
        SchedulingConfig(policy="availability")


def test_unknown_policy_is_one_line_at_validation(tmp_path):
    from pathlib import Path

    from typer.testing import CliRunner

    from cosim.cli import app

    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    result = CliRunner().invoke(app, ["run", str(path), "--set", "scheduling.policy=best",
                                      "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "scheduling.policy" in result.stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.slow
def test_a_diverged_global_model_fails_the_run(tmp_path):
    """A run whose global model ends with NaN or infinite values is failed (exit 1, one line,
    run.json says why), never complete with metrics of a broken model."""
    import json
    from pathlib import Path

    import pytest
    import torch
    from typer.testing import CliRunner

    from cosim.cli import app
    from cosim.learning.federated.server import TrainingDiverged, check_finite

    ok = {"a": torch.ones(3), "steps": torch.tensor([2**40])}
    check_finite(ok, 1, 1)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(TrainingDiverged, match="1 of 2 global-model tensors"):
            check_finite({**ok, "a": torch.tensor([0.0, bad])}, 3, 4)
    grid = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    result = CliRunner().invoke(app, ["run", str(grid), "--out", str(tmp_path / "r"), "-q",
                                      "--set", "learning.local.lr=1e6", "--set", "duration_s=60"])
    assert result.exit_code == 1 and "training diverged" in result.output, result.output
    info = json.loads((tmp_path / "r.partial" / "run.json").read_text())
    assert info["status"] == "failed" and "training diverged" in info["error"]
    assert not (tmp_path / "r").exists()
