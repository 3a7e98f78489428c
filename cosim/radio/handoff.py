"""Cell selection, A3 handoff and radio link failure, vectorised over vehicles, one radio step at
a time.

Per vehicle: initial attach to the strongest cell (by L3-filtered RSRP) whose SINR reaches Qin;
A3 event when a neighbour's filtered RSRP exceeds the serving cell's by offset + hysteresis for
time-to-trigger, then a handoff with an interruption during which no byte moves; radio link
failure when SINR stays below Qout for T310, then re-establishment after a delay (to the strongest
cell, if it reaches Qin). Ping-pong: a handoff back to the cell left less than ``ping_pong_s`` ago.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cosim.scenario import HandoffConfig

EPS = 1e-9

# Per-vehicle state kept between radio steps (slot-indexed store, gathered per block).
STATE_FIELDS: dict[str, tuple[type, float]] = {
    "serving": (np.int32, -1),
    "interrupt_until": (np.float64, -np.inf),
    "ttt_since": (np.float64, np.nan),
    "t310_since": (np.float64, np.nan),
    "reattach_at": (np.float64, 0.0),
    "detached_since": (np.float64, 0.0),
    "last_ho_t": (np.float64, -np.inf),
    "last_ho_from": (np.int32, -1),
}


@dataclass(frozen=True)
class LinkEvent:
    """One change of a vehicle's link: handoff, rlf, attach or detach."""

    row: int
    kind: str
    from_cell: int
    to_cell: int
    interruption_s: float
    ping_pong: bool


@dataclass
class BlockChannel:
    """What the channel gives the state machine for the K radio steps of one SUMO step."""

    filtered: np.ndarray  # (K, N, C) L3-filtered RSRP, dB
    received_mw: np.ndarray  # (K, N, C) total received power
    cochannel_mw: np.ndarray  # (K, N, G) activity-weighted received power per co-channel group
    best: np.ndarray  # (K, N) strongest cell by filtered RSRP
    best_db: np.ndarray
    second: np.ndarray  # (K, N) second strongest
    second_db: np.ndarray


def rank_two(filtered: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Strongest and second strongest cell along the last axis, with their values."""
    best = filtered.argmax(axis=-1)
    best_db = np.take_along_axis(filtered, best[..., None], -1)[..., 0]
    if filtered.shape[-1] == 1:
        return best, best_db, best, np.full_like(best_db, -np.inf)
    masked = filtered.copy()
    np.put_along_axis(masked, best[..., None], -np.inf, -1)
    second = masked.argmax(axis=-1)
    second_db = np.take_along_axis(masked, second[..., None], -1)[..., 0]
    return best, best_db, second, second_db


@dataclass
class BlockLinks:
    """The links of every vehicle at each of the K radio steps of one SUMO step."""

    t0: float
    serving: np.ndarray  # (K, N) serving cell, -1 if none
    avail_from: np.ndarray  # (K, N) time from which data can move within the step
    sinr_db: np.ndarray  # (K, N) downlink SINR of the serving cell (NaN if none)
    events: list[tuple[int, LinkEvent]]  # (radio step k, event), in time order


class LinkStateMachine:
    """Advances every vehicle's link state by one radio step."""

    def __init__(self, cfg: HandoffConfig, group: np.ndarray, noise_mw: np.ndarray):
        self.cfg = cfg
        self.group = group  # co-channel group of each cell
        self.noise_mw = noise_mw
        self.activity = np.ones(len(group))

    def sinr(self, ch: BlockChannel, k: int, rows: np.ndarray, cells: np.ndarray) -> np.ndarray:
        """Linear SINR of ``cells`` (one per row) at radio step k."""
        signal = ch.received_mw[k, rows, cells].astype(np.float64)
        total = ch.cochannel_mw[k, rows, self.group[cells]]
        interference = np.maximum(total - self.activity[cells] * signal, 0.0)
        return signal / (interference + self.noise_mw[cells])

    def run_block(self, st: dict[str, np.ndarray], ch: BlockChannel, t0: float, step_s: float
                  ) -> BlockLinks:
        """Advance ``st`` through the K radio steps of a block. The link state does not depend
        on transfers, so a whole SUMO step is decided at once and read out by time later."""
        K, n = ch.filtered.shape[:2]
        serving = np.empty((K, n), dtype=np.int32)
        avail = np.empty((K, n))
        sinr = np.empty((K, n))
        events: list[tuple[int, LinkEvent]] = []
        for k in range(K):
            tau = round(t0 + k * step_s, 9)
            step_events, sinr[k] = self.step(st, ch, k, tau)
            events.extend((k, e) for e in step_events)
            serving[k] = st["serving"]
            avail[k] = np.maximum(tau, st["interrupt_until"])
        return BlockLinks(t0, serving, avail, sinr, events)

    def step(self, st: dict[str, np.ndarray], ch: BlockChannel, k: int, tau: float
             ) -> tuple[list[LinkEvent], np.ndarray]:
        """Update ``st`` (block-local state arrays) at time ``tau``; return events and SINR (dB)."""
        cfg = self.cfg
        events: list[LinkEvent] = []
        n = len(st["serving"])
        rows = np.arange(n)
        s = st["serving"]

        # A3: the best neighbour beats the serving cell by offset + hysteresis for TTT.
        attached = s >= 0
        s_safe = np.where(attached, s, 0)
        f_serv = ch.filtered[k, rows, s_safe]
        on_best = ch.best[k] == s
        cand = np.where(on_best, ch.second[k], ch.best[k])
        cand_db = np.where(on_best, ch.second_db[k], ch.best_db[k])
        free = attached & (tau >= st["interrupt_until"] - EPS)
        a3 = free & (cand_db > f_serv + cfg.a3_offset_db + cfg.hysteresis_db)
        ttt = st["ttt_since"]
        ttt[:] = np.where(a3, np.where(np.isnan(ttt), tau, ttt), np.nan)
        fire = a3 & (tau - ttt >= cfg.ttt_s - EPS)
        for r in np.flatnonzero(fire):
            src, dst = int(s[r]), int(cand[r])
            ping = dst == st["last_ho_from"][r] and tau - st["last_ho_t"][r] < cfg.ping_pong_s - EPS
            events.append(LinkEvent(int(r), "handoff", src, dst, cfg.interruption_s, bool(ping)))
            s[r] = dst
            st["interrupt_until"][r] = tau + cfg.interruption_s
            st["last_ho_t"][r], st["last_ho_from"][r] = tau, src
            ttt[r] = np.nan
            st["t310_since"][r] = np.nan

        # Radio link failure: SINR below Qout for T310 (stopped once above Qin).
        attached = s >= 0
        s_safe = np.where(attached, s, 0)
        sinr_db = 10 * np.log10(self.sinr(ch, k, rows, s_safe))
        t310 = st["t310_since"]
        low = attached & (sinr_db < cfg.qout_db)
        t310[:] = np.where(low, np.where(np.isnan(t310), tau, t310),
                           np.where(attached & (sinr_db <= cfg.qin_db), t310, np.nan))
        rlf = attached & (tau - t310 >= cfg.t310_s - EPS)
        for r in np.flatnonzero(rlf):
            events.append(LinkEvent(int(r), "rlf", int(s[r]), -1, 0.0, False))
            s[r] = -1
            st["detached_since"][r] = tau
            st["reattach_at"][r] = tau + cfg.reestablish_s
            t310[r] = np.nan
            ttt[r] = np.nan

        # (Re-)attach: detached vehicles whose wait is over join the strongest cell if it reaches Qin.
        want = np.flatnonzero((s < 0) & (tau >= st["reattach_at"] - EPS))
        if len(want):
            target = ch.best[k, want]
            ok = 10 * np.log10(self.sinr(ch, k, want, target)) >= cfg.qin_db
            for r, c in zip(want[ok], target[ok], strict=True):
                events.append(LinkEvent(int(r), "attach", -1, int(c),
                                        float(tau - st["detached_since"][r]), False))
                s[r] = c
                st["interrupt_until"][r] = tau
            attached = s >= 0
            s_safe = np.where(attached, s, 0)
            sinr_db = 10 * np.log10(self.sinr(ch, k, rows, s_safe))
        sinr_db = np.where(s >= 0, sinr_db, np.nan)
        return events, sinr_db
