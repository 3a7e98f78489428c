"""D2D relaying in a client's round: who relays, what the participation row says, and that a
round without a relay ends as before."""

from __future__ import annotations

import pytest
import simpy

from cosim.learning.data.partition import ClientShard
from cosim.learning.federated.clients import Client
from cosim.learning.federated.d2d import Relay
from cosim.learning.federated.timeline import Attempt, client_round
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
                                    relay))
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
