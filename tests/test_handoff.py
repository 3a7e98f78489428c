"""The handoff / radio-link-failure state machine on hand-made signal sequences."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.radio.handoff import STATE_FIELDS, BlockChannel, LinkStateMachine, rank_two
from cosim.scenario import HandoffConfig

DT = 0.1


def _state(n: int = 1) -> dict[str, np.ndarray]:
    return {name: np.full(n, fill, dtype=dtype) for name, (dtype, fill) in STATE_FIELDS.items()}


def _channel(rsrp_db: np.ndarray, sinr_db: np.ndarray) -> BlockChannel:
    """One vehicle; rsrp_db, sinr_db: (K, C). Each cell on its own carrier, noise 1 mW, so the
    SINR of a cell is exactly its received power in mW."""
    filtered = rsrp_db[:, None, :].astype(np.float32)
    received = (10 ** (sinr_db / 10))[:, None, :]
    cochannel = received.copy()  # group g == cell g, activity 1
    return BlockChannel(filtered, received, cochannel, *rank_two(filtered))


def _machine(**overrides) -> LinkStateMachine:
    fsm = LinkStateMachine(HandoffConfig(**overrides), group=np.array([0, 1]), noise_mw=np.ones(2))
    fsm.activity = np.ones(2)
    return fsm


def test_straight_drive_hands_over_once_after_offset_and_ttt():
    t = np.arange(300) * DT  # 30 s
    rsrp = np.stack([-80.0 - t, -100.0 + t], axis=1)  # cells equal at t = 10 s
    links = _machine().run_block(_state(), _channel(rsrp, np.full_like(rsrp, 20.0)), 0.0, DT)
    kinds = [(k, e.kind, e.from_cell, e.to_cell) for k, e in links.events]
    # attach to the strongest cell at once; B exceeds A by more than 3 dB from t = 11.6 s and
    # A3 has held for the 256 ms time-to-trigger at t = 11.9 s.
    assert kinds == [(0, "attach", -1, 0), (119, "handoff", 0, 1)]
    assert not links.events[1][1].ping_pong
    assert (links.serving[:119] == 0).all() and (links.serving[119:] == 1).all()
    # nothing moves during the 50 ms interruption
    assert links.avail_from[119, 0] == pytest.approx(11.9 + 0.05)
    assert links.avail_from[120, 0] == pytest.approx(12.0)


def test_zig_zag_produces_counted_ping_pongs():
    k = np.arange(200)
    swing = np.where((k // 6) % 2 == 0, 6.0, -6.0)  # B 6 dB better, then worse, every 0.6 s
    rsrp = np.stack([np.full(200, -90.0), -90.0 + swing], axis=1)
    links = _machine().run_block(_state(), _channel(rsrp, np.full_like(rsrp, 20.0)), 0.0, DT)
    handoffs = [e for _, e in links.events if e.kind == "handoff"]
    assert len(handoffs) >= 10
    assert not handoffs[0].ping_pong  # the first one goes somewhere new
    assert all(e.ping_pong for e in handoffs[1:])  # each later one returns within 1 s


def test_no_ping_pong_when_the_return_is_slow():
    k = np.arange(200)
    swing = np.where((k // 30) % 2 == 0, 6.0, -6.0)  # 3 s dwell
    rsrp = np.stack([np.full(200, -90.0), -90.0 + swing], axis=1)
    links = _machine().run_block(_state(), _channel(rsrp, np.full_like(rsrp, 20.0)), 0.0, DT)
    handoffs = [e for _, e in links.events if e.kind == "handoff"]
    assert len(handoffs) >= 4 and not any(e.ping_pong for e in handoffs)


def test_radio_link_failure_after_t310_then_reestablishment():
    rsrp = np.tile([-90.0, -120.0], (100, 1))
    sinr = np.tile([10.0, -30.0], (100, 1))
    sinr[20:45, 0] = -12.0  # below Qout from t = 2.0 s to 4.5 s
    links = _machine().run_block(_state(), _channel(rsrp, sinr), 0.0, DT)
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
    links = _machine().run_block(_state(), _channel(rsrp, sinr), 0.0, DT)
    assert [e.kind for _, e in links.events] == ["attach"]


def test_out_of_coverage_vehicle_stays_detached():
    rsrp = np.tile([-130.0, -135.0], (50, 1))
    sinr = np.full((50, 2), -20.0)
    links = _machine().run_block(_state(), _channel(rsrp, sinr), 0.0, DT)
    assert links.events == [] and (links.serving == -1).all()
