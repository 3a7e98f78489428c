"""The V2V sidelink as a layer on the engine clock: which fleet vehicles hear each other, at what
rate, and the link windows of each pair.

At every SUMO step it evaluates every pair of a *talker* (a vehicle that is a client now) and a
*fleet* vehicle (one that runs the software: eligible to carry a partition) within
``max_range_m``, with TR 37.885's V2V channel (``v2v_pathloss``):

- NLOS when buildings stand between the two (the street raster of ``channel.los: geometry``);
- NLOSv when another vehicle stands on the line between them (within half a car's width;
  ``los: geometry``), or, with ``los: stochastic``, for a link clear of buildings by 37.885's
  LOS probability from a per-pair uniform draw (the same pair at the same distance is in the
  same state); with the blockage loss of 37.885 (a passenger car blocking), drawn once per pair;
- log-normal shadowing per pair, correlated over the distance its two ends have moved (an AR(1)
  with 37.885's decorrelation distance).

A pair's link is up while its SNR is at least ``min_snr_db``; its rate is Shannon with an
implementation loss, capped. Rates hold for the whole SUMO step. What it publishes: the rate of
a pair now, a vehicle's neighbours now, and the ``v2v_windows`` trace (maximal intervals a pair's
link is up, with their mean and minimum rate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numba
import numpy as np

from cosim.engine import Engine, until
from cosim.names import LEFT_NETWORK, SIDELINK_LOST, TRANSFER_TIMEOUT
from cosim.radio import v2v_pathloss as v2v
from cosim.radio.pathloss import thermal_noise_dbm
from cosim.radio.sidelink_pairs import SHADOW_INNOVATION, PairStore, normal
from cosim.radio.transfers import TransferResult
from cosim.scenario import SidelinkConfig
from cosim.trace_schemas import V2V_WINDOW_SCHEMA, V2V_WINDOWS

BLOCKER_HALF_WIDTH_M = 0.9  # a passenger car is about 1.8 m wide
# Every blocker is a passenger car (ns-3's 1.6 m; the scenarios' demand is passenger cars): taller
# than the 1.5 m antennas, so 37.885's 9 dB / 4.5 dB blockage case.
BLOCKER_HEIGHT_M = v2v.BLOCKER_HEIGHT_CAR_M


class SidelinkLayer:
    """Pairwise V2V links among the fleet, one evaluation per SUMO step."""

    name = "sidelink"

    def __init__(self, cfg: SidelinkConfig, seed: int, step_s: float):
        self.cfg, self.seed, self.step_s = cfg, seed, step_s
        self.bandwidth_hz = cfg.bandwidth_mhz * 1e6
        self.noise_dbm = thermal_noise_dbm(self.bandwidth_hz, cfg.noise_figure_db)
        self.pairs = PairStore(seed)
        self.rate: dict[tuple[str, str], float] = {}  # pairs whose link is up now -> bit/s
        self._open = np.zeros(0, np.int64)  # slots of the pairs whose window is open
        self.neighbours_of: dict[str, dict[str, float]] = {}
        self._present: set[str] = set()
        self._sending: dict[str, int] = {}  # transfers under way per transmitter
        self._changed: dict[str, Any] = {}  # per transmitter: fires when that count changes
        self.transfers: dict[str, int] = {}  # how sidelink transfers ended
        self._talkers: Callable[[], Iterable[str]] = lambda: ()
        self._fleet: Callable[[], Iterable[str]] = lambda: ()
        self.evaluations = 0
        self.windows_closed = 0
        self.state_counts = np.zeros(3, dtype=np.int64)  # LOS, NLOSv, NLOS over evaluations

    # ---- wiring -------------------------------------------------------------------------------
    def attach(self, engine: Engine) -> None:
        self.env = engine.env
        self.mobility = engine.layer("mobility")
        radio = engine.layers.get("radio")
        street = getattr(getattr(radio, "channel", None), "street_los", None)
        self.buildings = None
        if self.cfg.los == "geometry":
            if street is None:
                raise ValueError("sidelink.los: geometry needs the radio's street geometry")
            self.buildings = (street.building_mask, np.array(street.origin, float), street.resolution_m)
        self.table = engine.traces.table(V2V_WINDOWS, V2V_WINDOW_SCHEMA)
        self._rows: dict[str, list] = {k: [] for k in V2V_WINDOW_SCHEMA.names}
        engine.env.process(self._run())

    def track(self, talkers: Callable[[], Iterable[str]], fleet: Callable[[], Iterable[str]]) -> None:
        """Who is evaluated: ``talkers()`` (clients now) against ``fleet()`` (and each other)."""
        self._talkers, self._fleet = talkers, fleet

    # ---- what clients ask -----------------------------------------------------------------------
    def rate_bps(self, a: str, b: str) -> float:
        """The pair's sidelink rate now (0: no link)."""
        return self.rate.get(_key(a, b), 0.0)

    def neighbours(self, vehicle: str) -> dict[str, float]:
        """The vehicles with a sidelink to ``vehicle`` now, and its rate."""
        return dict(self.neighbours_of.get(vehicle, {}))

    def transfer(self, src: str, dst: str, nbytes: int, timeout_s: float | None = None):
        """A process moving ``nbytes`` from ``src`` to ``dst`` over their sidelink; its value is
        a ``TransferResult`` (direction "sidelink").

        A fluid flow at the pair's rate, which holds for the SUMO step; a transmitter's
        concurrent transfers share its rate equally (one transmit chain). It fails when either
        vehicle leaves the network, when the pair's link goes down (``sidelink_lost``) or at the
        timeout."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        return self.env.process(self._transfer(src, dst, int(nbytes), timeout_s))

    def _transfer(self, src: str, dst: str, nbytes: int, timeout_s: float | None):
        env = self.env
        t_start = env.now
        end = math.inf if timeout_s is None else t_start + timeout_s
        bits = 8.0 * nbytes
        self._sharing(src, +1)
        try:
            while bits > 1e-6 * max(1.0, 8.0 * nbytes):
                if src not in self._present or dst not in self._present:
                    return self._result(src, nbytes, bits, False, LEFT_NETWORK, t_start)
                rate = self.rate_bps(src, dst) / self._sending[src]
                if rate <= 0.0:
                    return self._result(src, nbytes, bits, False, SIDELINK_LOST, t_start)
                if env.now >= end - 1e-12:
                    return self._result(src, nbytes, bits, False, TRANSFER_TIMEOUT, t_start)
                next_step = (math.floor(env.now / self.step_s + 1e-9) + 1) * self.step_s
                t0 = env.now
                wake = env.timeout(max(0.0, min(t0 + bits / rate, next_step, end) - t0))
                yield env.any_of([wake, self._changed[src]])  # or the transmitter's share changes
                bits -= rate * (env.now - t0)
        finally:
            self._sharing(src, -1)
        return self._result(src, nbytes, 0.0, True, None, t_start)

    def _sharing(self, src: str, delta: int) -> None:
        """Count a transmitter's transfers, and wake those under way to take their new share."""
        self._sending[src] = self._sending.get(src, 0) + delta
        changed = self._changed.get(src)
        if changed is not None and not changed.triggered:
            changed.succeed()
        if self._sending[src]:
            self._changed[src] = self.env.event()
        else:
            del self._sending[src]
            self._changed.pop(src, None)

    def _result(self, src: str, nbytes: int, bits_left: float, ok: bool, reason: str | None,
                t_start: float) -> TransferResult:
        self.transfers[reason or "completed"] = self.transfers.get(reason or "completed", 0) + 1
        return TransferResult(src, "sidelink", nbytes, ok, reason, t_start, self.env.now,
                              (8.0 * nbytes - max(bits_left, 0.0)) / 8.0)

    # ---- the process ---------------------------------------------------------------------------
    def _run(self):
        step = 0
        while True:
            self._evaluate(round(step * self.step_s, 9))
            step += 1
            yield until(self.env, step * self.step_s, urgent=True)

    def _evaluate(self, now: float) -> None:
        cur = self.mobility.current
        row = dict(zip(cur.ids.tolist(), range(len(cur.ids)), strict=True))
        self._present = set(row)
        talkers = {v for v in self._talkers() if v in row}
        names = sorted({v for v in self._fleet() if v in row} | talkers)  # rank = name order
        rows = np.fromiter((row[v] for v in names), np.int64, len(names))
        talks = np.fromiter((v in talkers for v in names), bool, len(names))
        t_rank = np.flatnonzero(talks)
        # every (talker, other) pair once: a talker with a non-talker, two talkers in name order
        ti = np.repeat(t_rank, len(names))
        fj = np.tile(np.arange(len(names)), len(t_rank))
        keep = (ti != fj) & (~talks[fj] | (ti < fj))
        lo, hi = np.minimum(ti[keep], fj[keep]), np.maximum(ti[keep], fj[keep])
        ia, ib = rows[lo], rows[hi]
        dist = np.hypot(cur.x[ia] - cur.x[ib], cur.y[ia] - cur.y[ib])
        near = np.flatnonzero(dist <= self.cfg.max_range_m)
        named = np.array(names, dtype=object)
        keys = list(zip(named[lo[near]].tolist(), named[hi[near]].tolist(), strict=True))
        slots = self.pairs.slots(keys)
        rates = self._rates(slots, ia[near], ib[near], dist[near], cur) if keys else np.zeros(0)
        self._update_windows(keys, slots, rates, now)

    def _rates(self, slots: np.ndarray, ia: np.ndarray, ib: np.ndarray, dist: np.ndarray,
               cur: Any) -> np.ndarray:
        cfg, store = self.cfg, self.pairs
        xa, ya, xb, yb = cur.x[ia], cur.y[ia], cur.x[ib], cur.y[ib]
        state = np.full(len(slots), v2v.LOS, dtype=np.int64)
        if cfg.los != "always":
            blocked = np.zeros(len(slots), dtype=bool)
            if self.buildings is not None:
                mask, origin, res = self.buildings
                blocked = _buildings_between(mask, origin, res, xa, ya, xb, yb)
            if cfg.los == "geometry":  # another car on the line: NLOSv
                order = np.argsort(cur.x, kind="stable")
                vehicles = _vehicles_between(cur.x, cur.y, cur.x[order], order, ia, ib, blocked,
                                             BLOCKER_HALF_WIDTH_M)
                state = np.where(blocked, v2v.NLOS, np.where(vehicles, v2v.NLOSV, v2v.LOS))
            else:  # a link clear of buildings is LOS with 37.885's probability, else NLOSv
                state = v2v.v2v_state_from_uniform(cfg.environment, dist, store.los_u[slots],
                                                   blocked).astype(np.int64)
        self.state_counts += np.bincount(state, minlength=3)
        self.evaluations += len(slots)
        d3d = dist  # both antennas at the same height
        loss = v2v.v2v_path_loss_db(cfg.environment, state, d3d, cfg.carrier_ghz)
        nlosv = state == v2v.NLOSV
        if nlosv.any():
            h = v2v.ANTENNA_HEIGHT_M
            blockage = v2v.nlosv_blockage_db(store.blockage_z[slots], d3d, h, h, BLOCKER_HEIGHT_M)
            loss = loss + np.where(nlosv, blockage, 0.0)
        if cfg.shadowing:
            loss = loss + self._shadowing(slots, state, np.stack([xa, ya, xb, yb], axis=1))
        snr = v2v.sidelink_snr_db(loss, cfg.tx_power_dbm, self.bandwidth_hz, cfg.noise_figure_db,
                                  cfg.antenna_gain_dbi)
        rate = v2v.sidelink_rate_bps(snr, self.bandwidth_hz, cfg.efficiency, cfg.max_spectral_efficiency)
        return np.where(snr >= cfg.min_snr_db, rate, 0.0)

    def _shadowing(self, slots: np.ndarray, state: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """Each pair's shadow fading (dB): an AR(1) in the distance its ends moved since the
        last evaluation, with the decorrelation distance and sigma of its LOS state."""
        env, store = self.cfg.environment, self.pairs
        last = store.last_xy[slots]
        moved = (np.hypot(xy[:, 0] - last[:, 0], xy[:, 1] - last[:, 1])
                 + np.hypot(xy[:, 2] - last[:, 2], xy[:, 3] - last[:, 3]))
        dcor = np.asarray(v2v.SHADOW_DCOR_M[env])[state]
        rho = np.where(np.isnan(moved), 1.0, np.exp(-np.nan_to_num(moved) / dcor))
        step = rho < 1.0
        if step.any():
            s = slots[step]
            innovation = normal(store.tag[s], store.draws[s], SHADOW_INNOVATION)
            store.draws[s] += np.uint64(1)
            r = rho[step]
            store.shadow_z[s] = r * store.shadow_z[s] + np.sqrt(1.0 - r * r) * innovation
        store.last_xy[slots] = xy
        return np.asarray(v2v.SHADOW_SIGMA_DB[env])[state] * store.shadow_z[slots]

    def _update_windows(self, keys: list[tuple[str, str]], slots: np.ndarray, rates: np.ndarray,
                        now: float) -> None:
        store = self.pairs
        on = rates > 0.0
        up_slots = slots[on]
        closing = np.setdiff1d(self._open, up_slots)  # down now, or not evaluated (gone, far)
        for slot in closing.tolist():
            self._close(int(slot), now, censored=False)
        opening = up_slots[np.isnan(store.start[up_slots])]
        store.start[opening] = now
        store.rate_sum[opening], store.steps[opening], store.rate_min[opening] = 0.0, 0, np.inf
        store.rate_sum[up_slots] += rates[on]
        store.steps[up_slots] += 1
        store.rate_min[up_slots] = np.minimum(store.rate_min[up_slots], rates[on])
        self._open = np.sort(up_slots)
        up_keys = [keys[i] for i in np.flatnonzero(on)]
        self.rate = dict(zip(up_keys, rates[on].tolist(), strict=True))
        neighbours: dict[str, dict[str, float]] = {}
        for (a, b), r in self.rate.items():
            neighbours.setdefault(a, {})[b] = r
            neighbours.setdefault(b, {})[a] = r
        self.neighbours_of = neighbours
        if len(self._rows["a"]) >= 4096:
            self._flush()

    def _close(self, slot: int, now: float, censored: bool) -> None:
        store = self.pairs
        start = float(store.start[slot])
        if math.isnan(start):
            return
        a, b = store.keys[slot]
        for name, value in (("a", a), ("b", b), ("start", start), ("end", now),
                            ("duration_s", now - start),
                            ("mean_rate_bps", float(store.rate_sum[slot] / max(store.steps[slot], 1))),
                            ("min_rate_bps", float(store.rate_min[slot])), ("censored", censored)):
            self._rows[name].append(value)
        store.start[slot] = np.nan
        self.windows_closed += 1

    def _flush(self) -> None:
        if self._rows["a"]:
            self.table.append(self._rows)
            self._rows = {k: [] for k in V2V_WINDOW_SCHEMA.names}

    def finish(self) -> None:
        """Close the windows still open at the end of the run (censored)."""
        for slot in sorted(self._open.tolist(), key=lambda i: self.pairs.keys[i]):
            self._close(int(slot), self.env.now, censored=True)
        self._open = np.zeros(0, np.int64)
        self._flush()

    def summary(self) -> dict[str, Any]:
        n = max(int(self.state_counts.sum()), 1)
        return {"pair_evaluations": self.evaluations, "v2v_windows": self.windows_closed,
                "transfers": dict(sorted(self.transfers.items())),
                "state_share": {"LOS": self.state_counts[0] / n, "NLOSv": self.state_counts[1] / n,
                                "NLOS": self.state_counts[2] / n}}


def _key(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a < b else (b, a)


@numba.njit(cache=True)
def _buildings_between(mask, origin, res, xa, ya, xb, yb):  # pragma: no cover
    """Per pair: does the straight line between the two cross a building pixel? (half-pixel
    steps; off the raster is open)."""
    out = np.zeros(xa.shape[0], dtype=np.bool_)
    ny, nx = mask.shape
    for p in range(xa.shape[0]):
        dx, dy = xb[p] - xa[p], yb[p] - ya[p]
        n = int(math.ceil(math.hypot(dx, dy) / (0.5 * res))) + 1
        for s in range(n + 1):
            f = s / n
            ix = int(math.floor((xa[p] + f * dx - origin[0]) / res))
            iy = int(math.floor((ya[p] + f * dy - origin[1]) / res))
            if 0 <= ix < nx and 0 <= iy < ny and mask[iy, ix]:
                out[p] = True
                break
    return out


@numba.njit(cache=True)
def _vehicles_between(x, y, x_sorted, order, ia, ib, skip, half_width):  # pragma: no cover
    """Per pair not in ``skip``: does another vehicle's centre lie within ``half_width`` of the
    line between the pair, strictly between its ends? ``order`` sorts the vehicles by x
    (``x_sorted``), so only those in the pair's x-range are looked at."""
    out = np.zeros(ia.shape[0], dtype=np.bool_)
    w2 = half_width * half_width
    for p in range(ia.shape[0]):
        if skip[p]:
            continue
        a, b = ia[p], ib[p]
        dx, dy = x[b] - x[a], y[b] - y[a]
        length2 = dx * dx + dy * dy
        if length2 <= 0.0:
            continue
        lo = np.searchsorted(x_sorted, min(x[a], x[b]) - half_width)
        hi = np.searchsorted(x_sorted, max(x[a], x[b]) + half_width, side="right")
        for k in range(lo, hi):
            v = order[k]
            if v == a or v == b:  # noqa: SIM109 (numba)
                continue
            t = ((x[v] - x[a]) * dx + (y[v] - y[a]) * dy) / length2
            if t <= 0.0 or t >= 1.0:
                continue
            px, py = x[a] + t * dx - x[v], y[a] + t * dy - y[v]
            if px * px + py * py <= w2:
                out[p] = True
                break
    return out
