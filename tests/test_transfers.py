"""Transfers as SimPy processes over a scripted link: exact durations, stalls, sharing, failures."""

from __future__ import annotations

import numpy as np
import pytest
import simpy

from cosim.radio.transfers import Transfers

DT = 0.1
RATE = 80e6  # bit/s alone in the cell -> 10 MB/s


class ScriptedLink:
    """One block of K radio steps for a few vehicles, edited by each test."""

    def __init__(self, vehicles: list[str], k_steps: int = 2000, n_cells: int = 2):
        self.step_s = DT
        self.block_t0 = 0.0
        self.n_cells = n_cells
        self.rows = {v: i for i, v in enumerate(vehicles)}
        n = len(vehicles)
        self.block_serving = np.zeros((k_steps, n), dtype=np.int32)
        self.block_avail = (np.arange(k_steps) * DT)[:, None] + np.zeros((1, n))
        self.block_rate = np.full((2, k_steps, n), RATE)
        self.background_users = np.zeros((2, n_cells), dtype=np.int64)
        self.fail_at = np.full(n, np.inf)

    def link_rows(self, vehicles):
        return np.array([self.rows.get(v, -1) for v in vehicles], dtype=np.int64)

    def failure_times(self, rows):
        return np.where(rows >= 0, self.fail_at[np.maximum(rows, 0)], np.inf)

    def handoff(self, vehicle: str, k: int, to_cell: int, interruption_s: float) -> None:
        r = self.rows[vehicle]
        self.block_serving[k:, r] = to_cell
        self.block_avail[k, r] = k * DT + interruption_s


def _run(link, starts):
    """starts: (time, vehicle, nbytes, direction, timeout); returns results in start order."""
    env = simpy.Environment()
    transfers = Transfers(env, link)
    results = {}

    def launch(i, t, vehicle, nbytes, direction, timeout):
        yield env.timeout(t)
        results[i] = yield transfers.transfer(vehicle, nbytes, direction, timeout)

    for i, spec in enumerate(starts):
        env.process(launch(i, *spec))
    env.run(until=150)
    return [results[i] for i in range(len(starts))], transfers


def test_constant_rate_takes_bytes_over_rate():
    link = ScriptedLink(["a"])
    (res,), _ = _run(link, [(1.234, "a", 5_000_000, "up", None)])
    assert res.ok and res.reason is None
    assert res.t_end - res.t_start == pytest.approx(8 * 5_000_000 / RATE, abs=1e-9)
    assert res.bytes_moved == pytest.approx(5_000_000)


def test_handoff_mid_transfer_adds_exactly_the_interruption():
    link = ScriptedLink(["a"])
    link.handoff("a", k=23, to_cell=1, interruption_s=0.05)  # at t = 2.3 s
    (res,), _ = _run(link, [(1.0, "a", 50_000_000, "down", None)])
    assert res.ok
    assert res.t_end - res.t_start == pytest.approx(8 * 50_000_000 / RATE + 0.05, abs=1e-9)


def test_interruption_longer_than_a_radio_step():
    link = ScriptedLink(["a"])
    link.handoff("a", k=23, to_cell=1, interruption_s=0.25)
    link.block_avail[24, 0] = 2.55
    link.block_avail[25, 0] = 2.55
    (res,), _ = _run(link, [(1.0, "a", 40_000_000, "down", None)])
    assert res.t_end - res.t_start == pytest.approx(4.0 + 0.25, abs=1e-9)


def test_two_transfers_share_the_cell_then_the_survivor_speeds_up():
    link = ScriptedLink(["a", "b"])
    (ra, rb), _ = _run(link, [(0.0, "a", 1_000_000, "up", None), (0.0, "b", 3_000_000, "up", None)])
    # together at half rate until a has moved 1 MB (0.2 s), then b alone: 2 MB more at full rate
    assert ra.t_end == pytest.approx(0.2, abs=1e-9)
    assert rb.t_end == pytest.approx(0.2 + 8 * 2_000_000 / RATE, abs=1e-9)


def test_directions_and_cells_do_not_share():
    link = ScriptedLink(["a", "b", "c"])
    link.block_serving[:, 2] = 1  # c in another cell
    (ra, rb, rc), _ = _run(link, [(0.0, "a", 1_000_000, "up", None),
                                  (0.0, "b", 1_000_000, "down", None),
                                  (0.0, "c", 1_000_000, "up", None)])
    assert ra.t_end == rb.t_end == rc.t_end == pytest.approx(0.1, abs=1e-9)


def test_rate_changes_between_radio_steps_are_integrated():
    link = ScriptedLink(["a"])
    link.block_rate[:, 10:, 0] = RATE / 4  # from t = 1 s a quarter of the rate
    (res,), _ = _run(link, [(0.5, "a", 1_000_000, "up", None)])
    # 0.5 s at 10 MB/s = 5 MB > 1 MB: done in 0.1 s
    assert res.t_end == pytest.approx(0.6, abs=1e-9)
    (res,), _ = _run(link, [(0.95, "a", 1_000_000, "up", None)])
    # 0.05 s at 10 MB/s = 0.5 MB, then 0.5 MB at 2.5 MB/s = 0.2 s
    assert res.t_end == pytest.approx(1.2, abs=1e-9)


def test_radio_link_failure_fails_the_transfer():
    link = ScriptedLink(["a"])
    link.fail_at[0] = 3.3
    link.block_serving[33:, 0] = -1
    (res,), _ = _run(link, [(1.0, "a", 50_000_000, "up", None)])
    assert not res.ok and res.reason == "radio_link_failure"
    assert res.t_end == pytest.approx(3.3)
    assert res.bytes_moved == pytest.approx(2.3 * RATE / 8, rel=1e-9)


def test_leaving_the_network_fails_the_transfer():
    link = ScriptedLink(["a"])
    env = simpy.Environment()
    transfers = Transfers(env, link)
    out = {}

    def client():
        out["r"] = yield transfers.transfer("a", 50_000_000, "up")

    def vehicle_leaves():
        yield env.timeout(2.0)
        transfers.settle(env.now)
        transfers.fail_vehicle("a", "left_network")

    env.process(client())
    env.process(vehicle_leaves())
    env.run(until=10)
    assert not out["r"].ok and out["r"].reason == "left_network" and out["r"].t_end == 2.0
    assert out["r"].bytes_moved == pytest.approx(2.0 * RATE / 8)


def test_no_link_and_unknown_vehicle_and_timeout():
    link = ScriptedLink(["a", "b"])
    link.block_serving[:, 1] = -1
    (r_unknown, r_nolink, r_timeout), transfers = _run(
        link, [(0.0, "zz", 10, "up", None), (0.0, "b", 10, "up", None),
               (0.0, "a", 50_000_000, "up", 1.5)])
    assert r_unknown.reason == "left_network"
    assert r_nolink.reason == "out_of_coverage"
    assert r_timeout.reason == "timeout" and r_timeout.t_end == pytest.approx(1.5)
    assert r_timeout.bytes_moved == pytest.approx(1.5 * RATE / 8)
    assert transfers.active == []


def test_background_users_take_their_equal_share_of_the_cell():
    """Two clients and three background users in one cell's uplink: each client gets a fifth of
    the single-user rate, so 1 Mbit takes 5x as long as alone."""
    env = simpy.Environment()
    link = ScriptedLink(["a", "b"])
    link.background_users[1, 0] = 3
    transfers = Transfers(env, link)
    procs = [transfers.transfer(v, 125_000, "up") for v in ("a", "b")]
    env.run()
    alone = 8 * 125_000 / RATE
    for p in procs:
        assert p.value.ok and p.value.t_end == pytest.approx(5 * alone)
