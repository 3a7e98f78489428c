"""The handoff / radio-link-failure state machine on hand-made signal sequences, against TS 38.331's
event definitions worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.radio.handoff import STATE_FIELDS, LinkStateMachine
from cosim.scenario import HandoffConfig

DT = 0.1


def _state(n: int = 1, cells: int = 2) -> dict[str, np.ndarray]:
    return {name: np.full((n, cells) if per_cell else n, fill, dtype=dtype)
            for name, (dtype, fill, per_cell) in STATE_FIELDS.items()}


def _run(rsrp_db: np.ndarray, sinr_db: np.ndarray, carrier=(3.5, 3.5), max_sinr_db: float = 60.0,
         offload=None, **overrides):
    """One vehicle; rsrp_db, sinr_db: (K, C). No L3 filtering (a = 1); each cell in its own
    co-channel group with noise 1 mW, so a cell's SINR is exactly its received power in mW.
    ``carrier``: cells on the same carrier hand over by A3, others by A4/A5."""
    cfg = HandoffConfig(**{"l3_filter_a": 1.0, **overrides})
    c = rsrp_db.shape[1]
    fsm = LinkStateMachine(cfg, group=np.arange(c), carrier=np.array(carrier, float),
                           noise_mw=np.ones(c), max_sinr_db=max_sinr_db, step_s=DT, offload=offload)
    received = (10 ** (sinr_db / 10))[:, None, :]
    st = _state(1, c)
    return fsm.run_block(st, rsrp_db[:, None, :].astype(np.float32), received, np.ones(1, bool), 0.0)


def test_straight_drive_hands_over_once_after_offset_and_ttt():
    t = np.arange(300) * DT  # 30 s
    rsrp = np.stack([-80.0 - t, -100.0 + t], axis=1)  # cells equal at t = 10 s
    links = _run(rsrp, np.full_like(rsrp, 20.0))
    kinds = [(k, e.kind, e.from_cell, e.to_cell) for k, e in links.events]
    # attach to the strongest cell at once; B exceeds A by more than 3 dB from t = 11.6 s and
    # A3 has held for the 256 ms time-to-trigger at t = 11.9 s.
    assert kinds == [(0, "attach", -1, 0), (119, "handoff", 0, 1)]
    assert not links.events[1][1].ping_pong
    assert (links.serving[:119] == 0).all() and (links.serving[119:] == 1).all()
    # nothing moves during the 50 ms interruption
    assert links.avail_from[119, 0] == pytest.approx(11.9 + 0.05)
    assert links.avail_from[120, 0] == pytest.approx(12.0)


def test_hysteresis_adds_to_the_offset():
    t = np.arange(300) * DT
    rsrp = np.stack([-80.0 - t, -100.0 + t], axis=1)
    links = _run(rsrp, np.full_like(rsrp, 20.0), hysteresis_db=1.0)
    # Mn - Hys > Mp + Off: B leads by more than 4 dB from t = 12.1 s; + 256 ms -> 12.4 s
    assert [(k, e.kind) for k, e in links.events] == [(0, "attach"), (124, "handoff")]


def test_each_neighbour_has_its_own_time_to_trigger():
    rsrp = np.full((40, 3), -90.0)
    rsrp[10:12, 1] = -80.0  # cell 1 enters A3 at 1.0 s and leaves at 1.2 s, before its TTT
    rsrp[11:, 2] = -80.0  # cell 2 enters at 1.1 s and stays
    links = _run(rsrp, np.full_like(rsrp, 20.0), carrier=(3.5, 3.5, 3.5))
    # cell 2's own timer started at 1.1 s: it fires at 1.1 + 0.256 -> the 1.4 s step. One timer
    # per vehicle, started by cell 1 at 1.0 s, would have fired at 1.3 s.
    handoffs = [(k, e.to_cell) for k, e in links.events if e.kind == "handoff"]
    assert handoffs == [(14, 2)]


def test_a5_to_another_carrier_needs_a_weak_serving_cell():
    rsrp = np.full((60, 2), -90.0)  # serving (carrier A) at -90 dBm: above A5's threshold1
    rsrp[:, 1] = -70.0  # the other carrier's cell is 20 dB stronger all along
    rsrp[30:, 0] = -110.0  # from 3 s the serving cell drops below -105 dBm
    rsrp[0, 1] = -140.0  # so that the vehicle attaches to cell 0 first
    links = _run(rsrp, np.full_like(rsrp, 20.0), carrier=(3.5, 3.7))
    # A5 (serving < -105 - 0 and neighbour > -100 + 0) holds from 3.0 s: handoff at 3.3 s
    assert [(k, e.kind, e.to_cell) for k, e in links.events] == [(0, "attach", 0), (33, "handoff", 1)]
    # by A3 it would have gone at once (a 20 dB lead from the 0.1 s step on, + 256 ms: 0.4 s) —
    # the same cells on one carrier:
    same = _run(rsrp, np.full_like(rsrp, 20.0), carrier=(3.5, 3.5))
    assert [(k, e.kind) for k, e in same.events][1] == (4, "handoff")


def test_a4_offloads_to_a_small_cell_and_a5_brings_the_vehicle_back():
    rsrp = np.full((60, 2), -80.0)  # cell 0: a macro; cell 1: a small cell on another carrier
    rsrp[:, 1] = -120.0
    rsrp[10:, 1] = -95.0  # above A4's -100 dBm from 1.0 s, though 15 dB below the macro
    rsrp[40:, 1] = -108.0  # the small cell fades below A5's -105 dBm from 4.0 s
    links = _run(rsrp, np.full_like(rsrp, 20.0), carrier=(3.5, 3.7), inter_frequency="a4",
                 offload=[False, True])
    # A4 from 1.0 s: offload at 1.3 s; the macro stays above -100 dBm, but going back needs A5
    # (serving below -105 dBm), which holds from 4.0 s: back at 4.3 s.
    assert [(k, e.kind, e.to_cell) for k, e in links.events] == [
        (0, "attach", 0), (13, "handoff", 1), (43, "handoff", 0)]


def test_sinr_is_capped_at_the_receiver_limit():
    rsrp = np.tile([-60.0, -130.0], (10, 1))
    links = _run(rsrp, np.tile([45.0, -40.0], (10, 1)), max_sinr_db=30.0)
    assert np.nanmax(links.sinr_db) == pytest.approx(30.0)


def test_zig_zag_produces_counted_ping_pongs_and_returns():
    k = np.arange(200)
    swing = np.where((k // 6) % 2 == 0, 6.0, -6.0)  # B 6 dB better, then worse, every 0.6 s
    rsrp = np.stack([np.full(200, -90.0), -90.0 + swing], axis=1)
    links = _run(rsrp, np.full_like(rsrp, 20.0))
    handoffs = [e for _, e in links.events if e.kind == "handoff"]
    assert len(handoffs) >= 10
    assert not handoffs[0].ping_pong and handoffs[0].return_s == np.inf  # somewhere new
    assert all(e.ping_pong for e in handoffs[1:])  # each later one returns within 1 s
    assert all(e.return_s == pytest.approx(0.6) for e in handoffs[1:])


def test_no_ping_pong_when_the_return_is_slow():
    k = np.arange(200)
    swing = np.where((k // 30) % 2 == 0, 6.0, -6.0)  # 3 s dwell
    rsrp = np.stack([np.full(200, -90.0), -90.0 + swing], axis=1)
    links = _run(rsrp, np.full_like(rsrp, 20.0))
    handoffs = [e for _, e in links.events if e.kind == "handoff"]
    assert len(handoffs) >= 4 and not any(e.ping_pong for e in handoffs)
    assert all(e.return_s == pytest.approx(3.0) for e in handoffs[1:])


def test_radio_link_failure_after_t310_then_reestablishment():
    rsrp = np.tile([-90.0, -120.0], (100, 1))
    sinr = np.tile([10.0, -30.0], (100, 1))
    sinr[20:45, 0] = -12.0  # below Qout from t = 2.0 s to 4.5 s
    links = _run(rsrp, sinr)
    kinds = [(k, e.kind) for k, e in links.events]
    # T310 starts at 2.0 s and expires at 3.0 s; re-establishment is tried from 3.5 s but the
    # cell is still below Qin until 4.5 s.
    assert kinds == [(0, "attach"), (30, "rlf"), (45, "attach")]
    assert links.events[2][1].interruption_s == pytest.approx(1.5)
    assert (links.serving[30:45] == -1).all() and np.isnan(links.sinr_db[30:45]).all()


def test_short_fade_does_not_fail_the_link():
    rsrp = np.tile([-90.0, -120.0], (100, 1))
    sinr = np.tile([10.0, -30.0], (100, 1))
    sinr[20:28, 0] = -12.0  # 0.8 s below Qout, then recovers above Qin
    links = _run(rsrp, sinr)
    assert [e.kind for _, e in links.events] == ["attach"]


def test_out_of_coverage_vehicle_stays_detached():
    rsrp = np.tile([-130.0, -135.0], (50, 1))
    sinr = np.full((50, 2), -20.0)
    links = _run(rsrp, sinr)
    assert links.events == [] and (links.serving == -1).all()


def test_the_l3_filter_follows_its_definition():
    """F = (1 - a) F + a M per radio step, a from the per-period coefficient (k = 4: 0.5 per
    200 ms) as 1 - (1 - 0.5)^(0.1 / 0.2); the first measurement starts the filter."""
    rsrp = np.tile([-90.0, -90.0], (20, 1))
    rsrp[10:, 1] = -70.0
    cfg = HandoffConfig()
    fsm = LinkStateMachine(cfg, group=np.arange(2), carrier=np.array([3.5, 3.5]), noise_mw=np.ones(2),
                           max_sinr_db=30.0, step_s=DT)
    st = _state(1, 2)
    fsm.run_block(st, rsrp[:, None, :].astype(np.float32), np.full((20, 1, 2), 100.0),
                  np.ones(1, bool), 0.0)
    a = 1 - 0.5 ** 0.5
    expected = -90.0
    for m in rsrp[:, 1]:
        expected = (1 - a) * expected + a * m
    assert st["filtered"][0, 1] == pytest.approx(expected, abs=1e-4)
