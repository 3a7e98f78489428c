"""D2D in a client's round: relaying (who relays, what the participation row says, and that a
round without a relay ends as before) and cluster aggregation (who heads, who hands over, what
the server averages)."""

from __future__ import annotations

import pytest
import simpy

from cosim.learning.data.partition import ClientShard
from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.clients import Client
from cosim.learning.federated.d2d import Relay
from cosim.learning.federated.policies import Candidate
from cosim.learning.federated.timeline import Delivery, client_round
from cosim.learning.federated.training import TrainedUpdate
from cosim.learning.federated.tree import form_clusters, tree_fedavg, tree_groups
from cosim.radio.transfers import TransferResult

UP = 8_000_000  # bytes of the update: 64 Mbit


class FakeRadio:
    """Cellular links with fixed rates; ``fail_up``: vehicles whose upload fails after 1 s."""

    def __init__(self, env, serving, up_bps, fail_up=()):
        self.env, self.serving, self.up_bps, self.fail_up = env, serving, up_bps, set(fail_up)

    def serving_cell(self, v):
        """-1 in ``serving`` means: served (cell 9) only during the download, lost by upload."""
        cell = self.serving.get(v, -1)
        return 9 if cell == -1 and v == "me" and self.env.now < 5.0 else cell

    def rate_bps(self, v, direction="up"):
        return self.up_bps.get(v, 0.0) if direction == "up" else 1e9

    def transfer(self, v, nbytes, direction, timeout_s=None):
        return self.env.process(self._go(v, nbytes, direction))

    def _go(self, v, nbytes, direction):
        t0 = self.env.now
        if self.serving_cell(v) < 0:
            return TransferResult(v, direction, nbytes, False, "out_of_coverage", t0, t0, 0.0)
        if direction == "up" and v in self.fail_up:
            yield self.env.timeout(1.0)
            return TransferResult(v, direction, nbytes, False, "radio_link_failure", t0, self.env.now, 0.0)
        rate = self.up_bps[v] if direction == "up" else 1e9
        yield self.env.timeout(8.0 * nbytes / rate)
        return TransferResult(v, direction, nbytes, True, None, t0, self.env.now, nbytes)


class FakeSidelink:
    def __init__(self, env, links):
        self.env, self.links = env, links  # {(a, b): bit/s}

    def neighbours(self, v):
        out = {}
        for (a, b), r in self.links.items():
            if v in (a, b):
                out[b if a == v else a] = r
        return out

    def rate_bps(self, a, b):
        return self.links.get((a, b), self.links.get((b, a), 0.0))

    def transfer(self, src, dst, nbytes, timeout_s=None):
        def go():
            t0 = self.env.now
            yield self.env.timeout(8.0 * nbytes / self.rate_bps(src, dst))
            return TransferResult(src, "sidelink", nbytes, True, None, t0, self.env.now, nbytes)
        return self.env.process(go())

    def track(self, talkers, fleet):
        pass


def _round(serving, up_bps, links, relays=None, fail_up=(), use_relay=True):
    env = simpy.Environment()
    radio = FakeRadio(env, serving, up_bps, fail_up)
    sidelink = FakeSidelink(env, links)
    fleet = relays if relays is not None else {"n1", "n2", "n3"}
    relay = Relay(env, radio, sidelink, lambda: fleet) if use_relay else None
    client = Client(0, ClientShard(client=0, frames=(), tasks=(), modalities=()), vehicle="me")
    attempt = Attempt(1, 0, "me", 0.0, 0)
    proc = env.process(client_round(env, radio, client, attempt, (1000, UP), lambda: 10.0, 100.0,
                                    Delivery(relay=relay)))
    env.run()
    return proc.value


def test_a_client_without_a_cell_uploads_through_the_neighbour_that_delivers_soonest():
    # n1: 64 Mbit over 640 Mbit/s sidelink (0.1 s) + 6.4 Mbit/s uplink (10 s) = 10.1 s
    # n2: 64 Mbit over 64 Mbit/s (1 s) + 32 Mbit/s uplink (2 s) = 3 s  <- soonest
    a = _round(serving={"me": -1, "n1": 0, "n2": 1}, up_bps={"n1": 6.4e6, "n2": 32e6},
               links={("me", "n1"): 640e6, ("me", "n2"): 64e6})
    assert a.completed and (a.via, a.via_vehicle) == ("relay", "n2")
    assert a.bytes_sidelink == UP and a.bytes_up == UP
    assert a.t_upload_end == pytest.approx(a.t_compute_end + 1.0 + 2.0)


def test_neighbours_without_a_cell_or_outside_the_fleet_do_not_relay():
    links = {("me", "n1"): 64e6, ("me", "n2"): 64e6, ("me", "x"): 640e6}
    a = _round(serving={"me": -1, "n1": -1, "n2": 0, "x": 0}, up_bps={"n2": 32e6, "x": 1e9},
               links=links)
    assert a.via_vehicle == "n2"  # x is fastest but not in the fleet; n1 has no cell
    a = _round(serving={"me": -1, "n1": -1}, up_bps={}, links={("me", "n1"): 64e6})
    assert (a.outcome, a.reason, a.via, a.bytes_sidelink) == ("failed", "out_of_coverage", None, 0)


def test_an_upload_that_fails_on_the_link_is_relayed():
    a = _round(serving={"me": 0, "n1": 0}, up_bps={"me": 32e6, "n1": 32e6},
               links={("me", "n1"): 64e6}, fail_up={"me"})
    assert a.completed and a.via_vehicle == "n1"
    assert a.t_upload_end == pytest.approx(a.t_compute_end + 1.0 + 1.0 + 2.0)  # failed try first


def test_without_a_relay_the_round_ends_as_before():
    a = _round(serving={"me": -1, "n1": 0}, up_bps={"n1": 32e6}, links={("me", "n1"): 64e6},
               use_relay=False)
    assert (a.outcome, a.reason, a.via) == ("failed", "out_of_coverage", None)
    a = _round(serving={"me": 0}, up_bps={"me": 32e6}, links={}, fail_up={"me"}, use_relay=False)
    assert (a.outcome, a.reason) == ("failed", "radio_link_failure")


@pytest.mark.slow
def test_a_run_with_the_sidelink_is_deterministic_and_traces_v2v_windows(tmp_path):
    import json
    from pathlib import Path

    import pyarrow.parquet as pq

    from cosim.runner import run_scenario
    from cosim.scenario_loader import load_scenario

    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    overrides = ["duration_s=40", "learning.enabled=true", "clients.count=3",
                 "scheduling.policy=random", "scheduling.per_round=2",
                 "aggregation.round_deadline_s=10", "learning.data.synthetic.segments=5",
                 "learning.data.synthetic.frames=2", "learning.data.clients=3",
                 "learning.data.heldout_segments=2", "learning.local.batch_size=2",
                 "radio.sidelink={los: stochastic}", "d2d={relay: true}"]
    for name in ("a", "b"):
        run_scenario(load_scenario(path, overrides), source=path, out=tmp_path / name, quiet=True)
    for table in ("participation", "v2v_windows", "metrics"):
        assert ((tmp_path / "a" / f"{table}.parquet").read_bytes()
                == (tmp_path / "b" / f"{table}.parquet").read_bytes()), table
    windows = pq.read_table(tmp_path / "a" / "v2v_windows.parquet").to_pandas()
    assert len(windows) > 0 and (windows.a < windows.b).all() and (windows.end > windows.start).all()
    summary = json.loads((tmp_path / "a" / "run.json").read_text())["summary"]
    assert summary["sidelink"]["pair_evaluations"] > 0
    assert set(summary["learning"]["relay"]) == {"tried", "no_neighbour"}
    p = pq.read_table(tmp_path / "a" / "participation.parquet").to_pandas()
    assert {"via", "via_vehicle", "bytes_sidelink"} <= set(p.columns)


def _candidate(i, ul, connected=True):
    return Candidate(client=i, vehicle=f"v{i}", connected=connected, serving_cell=0 if connected else -1,
                     dl_rate_bps=1e9, ul_rate_bps=ul, predicted_window_s=100.0, bytes_down=1000,
                     bytes_up=UP, compute_s=10.0, tasks=("seg3d",), modalities=("image",), samples=10,
                     parked=False, rounds_selected=0, rounds_completed=0, last_loss=None, last_round=0)


def test_clusters_are_stars_around_the_best_uplinks():
    env = simpy.Environment()
    # v0 hears v1, v2; v3 hears v2, v4; v5 hears nobody. v3 has the best uplink, then v0.
    links = {("v0", "v1"): 1e8, ("v0", "v2"): 1e8, ("v3", "v2"): 1e8, ("v3", "v4"): 1e8}
    ul = {0: 20e6, 1: 5e6, 2: 5e6, 3: 40e6, 4: 1e6, 5: 50e6}
    cands = [_candidate(i, r) for i, r in ul.items()]
    nodes = form_clusters(env, list(ul), cands, FakeSidelink(env, links))
    heads = {i: tuple(c.client for c in n.children) for i, n in nodes.items() if n.parent is None}
    assert heads == {3: (2, 4), 0: (1,)}  # v2 went to the first head to take it; v5 is alone
    assert 5 not in nodes and nodes[1].parent is nodes[0] and not nodes[1].children


def _cluster_round(serving, up_bps, links, compute_s):
    """Clients v0 (head) and v1, v2 (members) in one cluster; each update UP bytes, the
    aggregate of any set 1.5 x UP."""
    env = simpy.Environment()
    radio = FakeRadio(env, serving, up_bps)
    sidelink = FakeSidelink(env, links)
    cands = [_candidate(i, up_bps.get(f"v{i}", 0.0)) for i in range(3)]
    nodes = form_clusters(env, [0, 1, 2], cands, sidelink)
    assert [c.client for c in nodes[0].children] == [1, 2]
    procs = []
    for i in range(3):
        client = Client(i, ClientShard(client=i, frames=(), tasks=(), modalities=()), vehicle=f"v{i}")
        delivery = Delivery(None, nodes[i], sidelink, lambda idx: int(1.5 * UP), 2.0)
        procs.append(env.process(client_round(env, radio, client, Attempt(1, i, f"v{i}", 0.0, 0),
                                              (1000, UP), lambda i=i: compute_s[i], 100.0, delivery)))
    env.run()
    return [p.value for p in procs], nodes


def test_members_hand_over_and_the_head_uploads_their_aggregate_once():
    serving = {f"v{i}": 0 for i in range(3)}
    up = {"v0": 32e6, "v1": 8e6, "v2": 8e6}
    links = {("v0", "v1"): 64e6, ("v0", "v2"): 64e6}
    (head, m1, m2), _ = _cluster_round(serving, up, links, compute_s={0: 10.0, 1: 12.0, 2: 15.0})
    # members: sidelink 64 Mbit at 64 Mbit/s = 1 s -> delivered at 13 s and 16 s; the head waits
    # for both, then uploads 1.5 x 64 Mbit at 32 Mbit/s = 3 s: done at 19 s (+ download 8 us)
    t_down = 8 * 1000 / 1e9
    assert head.completed and head.bytes_up == int(1.5 * UP) and head.via is None
    assert head.t_upload_end == pytest.approx(t_down + 15.0 + 1.0 + 3.0)
    for m in (m1, m2):
        assert m.completed
        assert (m.via, m.via_vehicle, m.bytes_up, m.bytes_sidelink) == ("cluster", "v0", 0, UP)
        assert m.t_upload_end == head.t_upload_end
    # the cellular uplink carried 1.5 updates instead of 3
    assert sum(a.bytes_up for a in (head, m1, m2)) == int(1.5 * UP)


def test_a_late_member_goes_up_on_its_own_and_a_failed_head_fails_its_members():
    serving = {f"v{i}": 0 for i in range(3)}
    up = {"v0": 32e6, "v1": 8e6, "v2": 8e6}
    links = {("v0", "v1"): 64e6, ("v0", "v2"): 64e6}
    # the head stops waiting at 100 - 2 x 3 s (margin x its upload) = 94 s; v2 finishes computing
    # at 93.5 s and its hand-over would end at 94.5 s: too late, it goes up on its own
    (head, m1, m2), _ = _cluster_round(serving, up, links, compute_s={0: 10.0, 1: 12.0, 2: 93.5})
    assert m1.via == "cluster" and m1.completed
    assert m2.via is None and m2.bytes_up == UP  # the head had closed at 94 s: its own uplink
    assert head.bytes_up == int(1.5 * UP) and head.completed
    # the head loses its cell before its upload: the member it holds fails with it
    serving_fail = dict(serving)
    radio_fail = {"v0"}
    env = simpy.Environment()
    radio = FakeRadio(env, serving_fail, up, fail_up=radio_fail)
    sidelink = FakeSidelink(env, links)
    nodes = form_clusters(env, [0, 1, 2], [_candidate(i, up[f"v{i}"]) for i in range(3)], sidelink)
    procs = []
    for i in range(3):
        client = Client(i, ClientShard(client=i, frames=(), tasks=(), modalities=()), vehicle=f"v{i}")
        delivery = Delivery(None, nodes[i], sidelink, lambda idx: int(1.5 * UP), 2.0)
        procs.append(env.process(client_round(env, radio, client, Attempt(1, i, f"v{i}", 0.0, 0),
                                              (1000, UP), lambda: 10.0, 100.0, delivery)))
    env.run()
    head, m1, m2 = (p.value for p in procs)
    assert (head.outcome, head.reason) == ("failed", "radio_link_failure")
    assert (m1.reason, m2.reason) == ("cluster_head_failed", "cluster_head_failed")


def test_tree_fedavg_equals_the_flat_weighted_average():
    import torch

    g = {"m.w": torch.zeros(2), "n.w": torch.zeros(2)}
    ups = [TrainedUpdate(0, {"m.w": torch.tensor([1.0, 2.0]), "n.w": torch.tensor([1.0, 1.0])}, 10.0, None),
           TrainedUpdate(1, {"m.w": torch.tensor([3.0, 0.0])}, 30.0, None),
           TrainedUpdate(2, {"m.w": torch.tensor([0.0, 4.0]), "n.w": torch.tensor([5.0, 3.0])}, 20.0, None),
           TrainedUpdate(3, {"m.w": torch.tensor([6.0, 6.0])}, 40.0, None)]
    env = simpy.Environment()
    # a chain 2 -> 1 -> 0 -> server, and 3 on its own
    from cosim.learning.federated.tree import TreeNode

    nodes = {i: TreeNode(env, i, f"v{i}") for i in range(3)}
    nodes[0].adopt(nodes[1])
    nodes[1].adopt(nodes[2])
    nodes[1].resolve(nodes[2], True)
    nodes[0].resolve(nodes[1], True)
    attempts = [Attempt(1, i, f"v{i}", 0.0, 0, outcome="completed", bytes_up=UP if i in (0, 3) else 0)
                for i in range(4)]
    uploads = tree_groups(attempts, nodes)
    assert uploads == {0: nodes[0], 3: None}
    out = tree_fedavg(g, ups, uploads)
    # by hand: m.w = (10 [1,2] + 30 [3,0] + 20 [0,4] + 40 [6,6]) / 100 = [340, 340] / 100;
    # n.w = (10 [1,1] + 20 [5,3]) / 30 = [110, 70] / 30 (clients 1 and 3 did not train n)
    assert torch.allclose(out["m.w"], torch.tensor([3.4, 3.4]))
    assert torch.allclose(out["n.w"], torch.tensor([110 / 30, 70 / 30]))


class _EngineRadio(FakeRadio):
    name = "radio"

    def attach(self, engine):
        pass

    def history_predictor(self):
        class Forever:
            def remaining_s(self, vehicle, now):
                return 1e9

        return Forever()


def _one_round(tmp_path, method: str):
    """One round of all three clients, every link up; the global state after it."""
    from pathlib import Path

    import pyarrow.parquet as pq

    from cosim.scenario_loader import load_scenario

    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    scenario = load_scenario(path, [
        "learning.enabled=true", "clients.count=3", "scheduling.policy=all_connected",
        f"aggregation={{method: {method}, round_deadline_s: 60, max_rounds: 1}}",
        "learning.data.synthetic.segments=5", "learning.data.synthetic.frames=2",
        "learning.data.clients=3", "learning.data.heldout_segments=2", "learning.local.batch_size=2",
        "learning.local.clients_per_pass=1", "radio.sidelink={los: stochastic}"])
    # v0's uplink is ten times the others'; every pair has a fast sidelink: the minimum spanning
    # tree sends v1 and v2 through v0
    layer = run_three_clients(
        tmp_path, scenario,
        lambda env: _EngineRadio(env, {"v0": 0, "v1": 0, "v2": 0}, {"v0": 50e6, "v1": 5e6, "v2": 5e6}),
        {("v0", "v1"): 100e6, ("v0", "v2"): 100e6, ("v1", "v2"): 100e6})
    p = pq.read_table(tmp_path / "participation.parquet").to_pandas()
    return layer, p


def run_three_clients(tmp_path, scenario, make_radio, links):
    """The federated layer over v0, v1, v2 standing still, a scripted radio (``make_radio(env)``)
    and a sidelink with these ``links``, for 100 simulated seconds; the layer after it."""
    from test_federated import _StillMobility

    from cosim.engine import Engine
    from cosim.learning.federated.server import FederatedLayer
    from cosim.learning.federated.settings import FederatedSettings
    from cosim.learning.federated.wiring import learning_ports
    from cosim.traces import TraceSet

    tmp_path.mkdir(parents=True, exist_ok=True)
    traces = TraceSet(tmp_path, 1000)
    engine = Engine(scenario.duration_s, traces)
    mobility, radio = _StillMobility(), make_radio(engine.env)
    engine.add_layer(mobility)
    engine.add_layer(radio)
    settings = FederatedSettings.of(scenario)
    layer = FederatedLayer(settings, learning_ports(settings.clients, settings.scheduling, engine.env,
                                                    mobility, radio, FakeSidelink(engine.env, links)))
    engine.add_layer(layer)
    layer.registry.update(["v0", "v1", "v2"], [], 0.0)
    engine.env.run(until=100)
    traces.close(complete=True)
    return layer


def test_spanning_tree_equals_flat_fedavg_when_every_link_is_up(tmp_path):
    import pyarrow.parquet as pq
    import torch

    flat, p_flat = _one_round(tmp_path / "sync", "sync")
    tree, p_tree = _one_round(tmp_path / "tree", "spanning_tree")
    assert (p_flat.outcome == "completed").all() and (p_tree.outcome == "completed").all()
    assert p_flat.via.isna().all()
    routed = p_tree.set_index("vehicle")
    assert routed.via.isna()["v0"] and list(routed.via[["v1", "v2"]]) == ["cluster", "cluster"]
    assert set(routed.via_vehicle[["v1", "v2"]]) == {"v0"}
    assert routed.bytes_up.sum() < p_flat.bytes_up.sum()  # one aggregate went up, not three updates
    for key, value in flat.global_state.items():
        assert torch.allclose(tree.global_state[key].double(), value.double(), atol=1e-6), key
    assert tree.version == flat.version == 1
    hops = pq.read_table(tmp_path / "tree" / "hops.parquet").to_pandas()
    assert set(hops.link) == {"sidelink", "uplink"} and (hops.energy_j > 0).all()
    # 23 dBm = 0.2 W on both links: energy = 0.2 W x latency
    assert hops.energy_j.to_numpy() == pytest.approx(0.19952623 * hops.latency_s.to_numpy(), rel=1e-6)
    stats = tree.summary()["spanning_trees"]
    assert stats["in_tree"] == 3 and stats["sidelink_edges"] == 2 and stats["max_depth"] == 2


@pytest.mark.parametrize(("sets", "field", "words"), [
    (["d2d={relay: true}"], "(root)", "d2d needs radio.sidelink"),
    (["aggregation={method: spanning_tree}"], "(root)", "needs radio.sidelink"),
    (["radio.sidelink={los: geometry}"], "radio", "channel.los: geometry"),
    (["radio.sidelink={bandwidth_mhz: -20}"], "radio.sidelink.bandwidth_mhz", ""),
    (["radio.sidelink={los: stochastic}", "d2d={relay: true, cluster: true}",
      "aggregation={method: fedasync}"], "(root)", "synchronous"),
    (["radio.sidelink={los: stochastic}", "d2d={relais: true}"], "d2d.relais", ""),
])
def test_bad_d2d_settings_are_one_line_errors(sets, field, words):
    from pathlib import Path

    from typer.testing import CliRunner

    from cosim.cli import app

    path = Path(__file__).resolve().parent.parent / "scenarios" / "grid_small.yaml"
    args = ["validate", str(path)]
    for item in sets:
        args += ["--set", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert words in lines[0], lines[0]
    if field != "(root)":
        assert f"{field}" in lines[0], lines[0]


def test_the_sparse_scenario_validates_with_relaying_on():
    from pathlib import Path

    from cosim.scenario_loader import load_scenario

    sc = load_scenario(Path(__file__).resolve().parent.parent / "scenarios" / "sf_downtown_sparse.yaml")
    assert sc.d2d.relay and sc.radio.sidelink.los == "geometry" and sc.radio.cells.hex is None
