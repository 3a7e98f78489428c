"""Cell selection, handoff and radio link failure for every vehicle, a SUMO step's radio steps at
a time, compiled with numba (one loop over steps, vehicles and cells instead of numpy calls per
radio step).

Per vehicle and radio step:
- L3 filter of each cell's RSRP, F = (1 - a) F + a M (TS 38.331 5.5.3.2).
- Measurement events per neighbour cell, each with its own time-to-trigger (TS 38.331 5.5.4):
  A3 for a cell on the serving carrier (Mn - Hys > Mp + Off), and for a cell on another carrier
  A5 (Mp + Hys < Thresh1 and Mn - Hys > Thresh2); with ``inter_frequency: a4``, a small cell or
  RSU on another carrier is entered by A4 instead (Mn - Hys > Thresh: offload whenever it is good
  enough), and the way back to a macro stays A5 (leave when the small cell is weak). When any neighbour's
  condition has held for TTT, the vehicle hands over to the strongest such neighbour, with an
  interruption during which no byte moves.
- Radio link failure when the serving SINR stays below Qout for T310 (stopped once above Qin),
  then re-establishment after a delay to the strongest cell if its SINR reaches Qin; initial
  attach the same way.
- SINR is capped at the receiver's limit (``max_sinr_db``) for what is reported and used for
  rates; Qout/Qin lie far below it.
Ping-pong: a handoff back to the cell left less than ``ping_pong_s`` ago.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from cosim.scenario import HandoffConfig

EPS = 1e-9
EVENT_KINDS = ("handoff", "rlf", "attach", "detach")

# Per-vehicle state kept between SUMO steps (slot-indexed store, gathered per block):
# name -> (dtype, fill, one value per cell).
STATE_FIELDS: dict[str, tuple[type, float, bool]] = {
    "serving": (np.int32, -1, False),
    "interrupt_until": (np.float64, -np.inf, False),
    "t310_since": (np.float64, np.nan, False),
    "reattach_at": (np.float64, 0.0, False),
    "detached_since": (np.float64, 0.0, False),
    "last_ho_t": (np.float64, -np.inf, False),
    "last_ho_from": (np.int32, -1, False),
    "filtered": (np.float32, 0.0, True),  # L3-filtered RSRP (dBm), per cell
    "ttt_since": (np.float64, np.nan, True),  # when each neighbour's entering condition began
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
    return_s: float = np.inf  # a handoff back to the cell left this long ago (A -> B -> A)


@dataclass
class BlockLinks:
    """The links of every vehicle at each of the K radio steps of one SUMO step."""

    t0: float
    serving: np.ndarray  # (K, N) serving cell, -1 if none
    avail_from: np.ndarray  # (K, N) time from which data can move within the step
    sinr_db: np.ndarray  # (K, N) downlink SINR of the serving cell, capped (NaN if none)
    events: list[tuple[int, LinkEvent]]  # (radio step k, event), in time order


class LinkStateMachine:
    """Advances every vehicle's link state through a block of radio steps."""

    def __init__(self, cfg: HandoffConfig, group: np.ndarray, carrier: np.ndarray,
                 noise_mw: np.ndarray, max_sinr_db: float, step_s: float,
                 offload: np.ndarray | None = None):
        self.cfg = cfg
        # cells entered by A4 when inter_frequency is "a4" (small cells, RSUs)
        self.a4_target = np.zeros(len(group), bool) if offload is None else np.array(offload, bool)
        if cfg.inter_frequency != "a4":
            self.a4_target[:] = False
        self.group = np.ascontiguousarray(group, dtype=np.int64)  # co-channel group of each cell
        _, self.carrier = np.unique(carrier, return_inverse=True)  # same carrier: intra-frequency
        self.noise_mw = np.ascontiguousarray(noise_mw, dtype=np.float64)
        self.activity = np.ones(len(group))
        # L3 filter: a is given per measurement period and applied per radio step, same memory.
        a = 1 - (1 - cfg.l3_filter_a) ** (step_s / cfg.measurement_period_s)
        self.params = np.array([
            cfg.a3_offset_db, cfg.hysteresis_db, cfg.ttt_s, cfg.interruption_s, cfg.qout_db,
            cfg.qin_db, cfg.t310_s, cfg.reestablish_s, cfg.a4_threshold_dbm, cfg.a5_threshold1_dbm,
            cfg.a5_threshold2_dbm, max_sinr_db, a, step_s], dtype=np.float64)

    def run_block(self, st: dict[str, np.ndarray], rsrp_dbm: np.ndarray, received_mw: np.ndarray,
                  is_new: np.ndarray, t0: float) -> BlockLinks:
        """Advance ``st`` (block-local state arrays, updated in place) through the K radio steps
        of a block, given each step's RSRP per RE (K, N, C) and total received power (mW).
        The link state does not depend on transfers, so a whole SUMO step is decided at once."""
        K, n, _ = rsrp_dbm.shape
        st["filtered"][is_new] = rsrp_dbm[0, is_new]  # the filter starts from the first measurement
        out_serving = np.empty((K, n), dtype=np.int32)
        out_avail = np.empty((K, n))
        out_sinr = np.empty((K, n))
        cap = 2 * K * n + 1
        ev = np.empty((cap, 5), dtype=np.int64)  # k, row, kind, from, to
        ev_f = np.empty((cap, 2))  # interruption, return time
        count = _run_block(
            np.ascontiguousarray(rsrp_dbm, dtype=np.float32), np.ascontiguousarray(received_mw),
            t0, self.params, self.group, self.carrier, self.a4_target, self.noise_mw,
            self.activity.astype(np.float64),
            st["serving"], st["interrupt_until"], st["t310_since"], st["reattach_at"],
            st["detached_since"], st["last_ho_t"], st["last_ho_from"], st["filtered"], st["ttt_since"],
            out_serving, out_avail, out_sinr, ev, ev_f)
        ping_s = self.cfg.ping_pong_s
        events = [(int(k), LinkEvent(int(r), EVENT_KINDS[kind], int(a), int(b), float(i),
                                     bool(kind == 0 and ret < ping_s - EPS), float(ret)))
                  for (k, r, kind, a, b), (i, ret) in zip(ev[:count], ev_f[:count], strict=True)]
        return BlockLinks(t0, out_serving, out_avail, out_sinr, events)


@numba.njit(cache=True)
def _sinr(mw, k, r, cell, group, activity, noise):
    """Linear SINR of ``cell`` for vehicle r at step k: co-channel cells interfere with their
    activity (the share of their resources in use)."""
    signal = mw[k, r, cell]
    total = 0.0
    for c in range(mw.shape[2]):
        if group[c] == group[cell] and c != cell:
            total += activity[c] * mw[k, r, c]
    return signal / (total + noise[cell])


@numba.njit(cache=True)
def _run_block(rsrp, mw, t0, p, group, carrier, a4_target, noise, activity, serving, interrupt_until,
               t310_since, reattach_at, detached_since, last_ho_t, last_ho_from, filtered, ttt,
               out_serving, out_avail, out_sinr, ev, ev_f):  # pragma: no cover - compiled
    a3_off, hys, ttt_s, interruption, qout, qin = p[0], p[1], p[2], p[3], p[4], p[5]
    t310_s, reestablish, a4_thr = p[6], p[7], p[8]
    a5_thr1, a5_thr2, max_sinr, a, step = p[9], p[10], p[11], p[12], p[13]
    K, n, C = rsrp.shape
    count = 0
    for k in range(K):
        tau = round(t0 + k * step, 9)
        for r in range(n):
            for c in range(C):
                filtered[r, c] = (1 - a) * filtered[r, c] + a * rsrp[k, r, c]
            s = serving[r]
            # Handoff: every neighbour's event condition, each with its own time-to-trigger.
            if s >= 0 and tau >= interrupt_until[r] - EPS:
                fs = filtered[r, s]
                target, target_db = -1, -np.inf
                for c in range(C):
                    if c == s:
                        ttt[r, c] = np.nan
                        continue
                    fc = filtered[r, c]
                    if carrier[c] == carrier[s]:
                        cond = fc - hys > fs + a3_off
                    elif a4_target[c]:
                        cond = fc - hys > a4_thr
                    else:
                        cond = fs + hys < a5_thr1 and fc - hys > a5_thr2
                    if not cond:
                        ttt[r, c] = np.nan
                        continue
                    if np.isnan(ttt[r, c]):
                        ttt[r, c] = tau
                    if tau - ttt[r, c] >= ttt_s - EPS and fc > target_db:
                        target, target_db = c, fc
                if target >= 0:
                    back = target == last_ho_from[r]
                    ev[count, 0], ev[count, 1], ev[count, 2] = k, r, 0
                    ev[count, 3], ev[count, 4] = s, target
                    ev_f[count, 0] = interruption
                    ev_f[count, 1] = tau - last_ho_t[r] if back else np.inf
                    count += 1
                    last_ho_t[r], last_ho_from[r] = tau, s
                    s = target
                    interrupt_until[r] = tau + interruption
                    t310_since[r] = np.nan
                    for c in range(C):
                        ttt[r, c] = np.nan
            else:
                for c in range(C):
                    ttt[r, c] = np.nan
            # Radio link failure: SINR below Qout for T310 (the timer stops above Qin).
            sinr_db = np.nan
            if s >= 0:
                sinr_db = 10 * np.log10(_sinr(mw, k, r, s, group, activity, noise))
                if sinr_db < qout:
                    if np.isnan(t310_since[r]):
                        t310_since[r] = tau
                elif sinr_db > qin:
                    t310_since[r] = np.nan
                if tau - t310_since[r] >= t310_s - EPS:
                    ev[count, 0], ev[count, 1], ev[count, 2] = k, r, 1
                    ev[count, 3], ev[count, 4] = s, -1
                    ev_f[count, 0], ev_f[count, 1] = 0.0, np.inf
                    count += 1
                    s = -1
                    detached_since[r] = tau
                    reattach_at[r] = tau + reestablish
                    t310_since[r] = np.nan
                    sinr_db = np.nan
                    for c in range(C):
                        ttt[r, c] = np.nan
            # (Re-)attach: once the wait is over, to the strongest cell if it reaches Qin.
            if s < 0 and tau >= reattach_at[r] - EPS:
                best, best_db = 0, filtered[r, 0]
                for c in range(1, C):
                    if filtered[r, c] > best_db:
                        best, best_db = c, filtered[r, c]
                x = 10 * np.log10(_sinr(mw, k, r, best, group, activity, noise))
                if x >= qin:
                    ev[count, 0], ev[count, 1], ev[count, 2] = k, r, 2
                    ev[count, 3], ev[count, 4] = -1, best
                    ev_f[count, 0], ev_f[count, 1] = tau - detached_since[r], np.inf
                    count += 1
                    s = best
                    interrupt_until[r] = tau
                    sinr_db = x
            serving[r] = s
            out_serving[k, r] = s
            out_avail[k, r] = max(tau, interrupt_until[r])
            out_sinr[k, r] = min(sinr_db, max_sinr) if s >= 0 else np.nan
    return count
