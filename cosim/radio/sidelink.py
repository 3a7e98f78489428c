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
import zlib
from collections.abc import Callable, Iterable
from typing import Any

import numba
import numpy as np

from cosim.engine import Engine, until
from cosim.names import LEFT_NETWORK, SIDELINK_LOST, TRANSFER_TIMEOUT
from cosim.radio import v2v_pathloss as v2v
from cosim.radio.pathloss import thermal_noise_dbm
from cosim.radio.transfers import TransferResult
from cosim.scenario import SidelinkConfig
from cosim.trace_schemas import V2V_WINDOW_SCHEMA, V2V_WINDOWS

BLOCKER_HALF_WIDTH_M = 0.9  # a passenger car is about 1.8 m wide
# Every blocker is a passenger car (ns-3's 1.6 m; the scenarios' demand is passenger cars): taller
# than the 1.5 m antennas, so 37.885's 9 dB / 4.5 dB blockage case.
BLOCKER_HEIGHT_M = v2v.BLOCKER_HEIGHT_CAR_M


class _Pair:
    """One evaluated pair's state: its draws, its shadowing and its open window."""

    __slots__ = ("rng", "los_u", "blockage_z", "shadow_z", "x", "y", "start", "rate_sum", "steps",
                 "rate_min")

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.los_u = rng.random()
        self.blockage_z, self.shadow_z = rng.standard_normal(), rng.standard_normal()
        self.x = self.y = None  # both ends' positions at the last evaluation (for decorrelation)
        self.start: float | None = None
        self.rate_sum, self.steps, self.rate_min = 0.0, 0, math.inf


class SidelinkLayer:
    """Pairwise V2V links among the fleet, one evaluation per SUMO step."""

    name = "sidelink"

    def __init__(self, cfg: SidelinkConfig, seed: int, step_s: float):
        self.cfg, self.seed, self.step_s = cfg, seed, step_s
        self.bandwidth_hz = cfg.bandwidth_mhz * 1e6
        self.noise_dbm = thermal_noise_dbm(self.bandwidth_hz, cfg.noise_figure_db)
        self.pairs: dict[tuple[str, str], _Pair] = {}
        self.rate: dict[tuple[str, str], float] = {}  # pairs whose link is up now -> bit/s
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
        talkers = sorted({v for v in self._talkers() if v in row})
        fleet = sorted({v for v in self._fleet() if v in row} | set(talkers))
        keys, ia, ib = [], [], []
        for a in talkers:
            for b in fleet:
                if a == b or (b in talkers and b < a):
                    continue  # each pair once
                keys.append(_key(a, b))
                ia.append(row[keys[-1][0]])
                ib.append(row[keys[-1][1]])
        ia_arr, ib_arr = np.array(ia, dtype=np.int64), np.array(ib, dtype=np.int64)
        dist = np.hypot(cur.x[ia_arr] - cur.x[ib_arr], cur.y[ia_arr] - cur.y[ib_arr])
        near = dist <= self.cfg.max_range_m
        keys = [k for k, n in zip(keys, near, strict=True) if n]
        ia_arr, ib_arr, dist = ia_arr[near], ib_arr[near], dist[near]
        rates = self._rates(keys, ia_arr, ib_arr, dist, cur) if keys else np.zeros(0)
        self._update_windows(dict(zip(keys, rates.tolist(), strict=True)), now)

    def _rates(self, keys: list[tuple[str, str]], ia: np.ndarray, ib: np.ndarray, dist: np.ndarray,
               cur: Any) -> np.ndarray:
        cfg = self.cfg
        states = [self._pair(k) for k in keys]
        xa, ya, xb, yb = cur.x[ia], cur.y[ia], cur.x[ib], cur.y[ib]
        state = np.full(len(keys), v2v.LOS, dtype=np.int64)
        if cfg.los != "always":
            blocked = np.zeros(len(keys), dtype=bool)
            if self.buildings is not None:
                mask, origin, res = self.buildings
                blocked = _buildings_between(mask, origin, res, xa, ya, xb, yb)
            if cfg.los == "geometry":  # another car on the line: NLOSv
                vehicles = _vehicles_between(cur.x, cur.y, ia, ib, BLOCKER_HALF_WIDTH_M)
                state = np.where(blocked, v2v.NLOS, np.where(vehicles, v2v.NLOSV, v2v.LOS))
            else:  # a link clear of buildings is LOS with 37.885's probability, else NLOSv
                u = np.array([s.los_u for s in states])
                state = v2v.v2v_state_from_uniform(cfg.environment, dist, u, blocked).astype(np.int64)
        self.state_counts += np.bincount(state, minlength=3)
        self.evaluations += len(keys)
        d3d = dist  # both antennas at the same height
        loss = v2v.v2v_path_loss_db(cfg.environment, state, d3d, cfg.carrier_ghz)
        nlosv = state == v2v.NLOSV
        if nlosv.any():
            z = np.array([s.blockage_z for s in states])
            h = v2v.ANTENNA_HEIGHT_M
            loss = loss + np.where(nlosv, v2v.nlosv_blockage_db(z, d3d, h, h, BLOCKER_HEIGHT_M), 0.0)
        if cfg.shadowing:
            loss = loss + self._shadowing(states, state, xa, ya, xb, yb)
        snr = v2v.sidelink_snr_db(loss, cfg.tx_power_dbm, self.bandwidth_hz, cfg.noise_figure_db,
                                  cfg.antenna_gain_dbi)
        rate = v2v.sidelink_rate_bps(snr, self.bandwidth_hz, cfg.efficiency, cfg.max_spectral_efficiency)
        return np.where(snr >= cfg.min_snr_db, rate, 0.0)

    def _shadowing(self, states: list[_Pair], state: np.ndarray, xa, ya, xb, yb) -> np.ndarray:
        """Each pair's shadow fading (dB): an AR(1) in the distance its ends moved since the
        last evaluation, with the decorrelation distance and sigma of its LOS state."""
        env = self.cfg.environment
        out = np.empty(len(states))
        for i, s in enumerate(states):
            st = int(state[i])
            if s.x is not None:
                moved = (math.hypot(xa[i] - s.x[0], ya[i] - s.y[0])
                         + math.hypot(xb[i] - s.x[1], yb[i] - s.y[1]))
                rho = math.exp(-moved / v2v.SHADOW_DCOR_M[env][st])
                if rho < 1.0:
                    s.shadow_z = rho * s.shadow_z + math.sqrt(1.0 - rho * rho) * s.rng.standard_normal()
            s.x, s.y = (xa[i], xb[i]), (ya[i], yb[i])
            out[i] = v2v.SHADOW_SIGMA_DB[env][st] * s.shadow_z
        return out

    def _pair(self, key: tuple[str, str]) -> _Pair:
        pair = self.pairs.get(key)
        if pair is None:
            tag = zlib.crc32(f"{key[0]}\x00{key[1]}".encode())
            pair = self.pairs[key] = _Pair(np.random.default_rng([self.seed, 37, tag]))
        return pair

    def _update_windows(self, rates: dict[tuple[str, str], float], now: float) -> None:
        up = {k: r for k, r in rates.items() if r > 0.0}
        for key in [k for k in self.rate if k not in up]:
            self._close(key, now, censored=False)
        for key, r in up.items():
            pair = self.pairs[key]
            if pair.start is None:
                pair.start, pair.rate_sum, pair.steps, pair.rate_min = now, 0.0, 0, math.inf
            pair.rate_sum += r
            pair.steps += 1
            pair.rate_min = min(pair.rate_min, r)
        for key in [k for k in self.pairs if k not in rates and self.pairs[k].start is None]:
            del self.pairs[key]  # out of range and no window open: forget its draws' state
        self.rate = up
        neighbours: dict[str, dict[str, float]] = {}
        for (a, b), r in up.items():
            neighbours.setdefault(a, {})[b] = r
            neighbours.setdefault(b, {})[a] = r
        self.neighbours_of = neighbours
        if len(self._rows["a"]) >= 4096:
            self._flush()

    def _close(self, key: tuple[str, str], now: float, censored: bool) -> None:
        pair = self.pairs[key]
        if pair.start is None:
            return
        for name, value in (("a", key[0]), ("b", key[1]), ("start", pair.start), ("end", now),
                            ("duration_s", now - pair.start),
                            ("mean_rate_bps", pair.rate_sum / max(pair.steps, 1)),
                            ("min_rate_bps", pair.rate_min), ("censored", censored)):
            self._rows[name].append(value)
        pair.start = None
        self.windows_closed += 1

    def _flush(self) -> None:
        if self._rows["a"]:
            self.table.append(self._rows)
            self._rows = {k: [] for k in V2V_WINDOW_SCHEMA.names}

    def finish(self) -> None:
        """Close the windows still open at the end of the run (censored)."""
        for key in sorted(self.rate):
            self._close(key, self.env.now, censored=True)
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
def _vehicles_between(x, y, ia, ib, half_width):  # pragma: no cover
    """Per pair: does another vehicle's centre lie within ``half_width`` of the line between the
    pair, strictly between its ends?"""
    out = np.zeros(ia.shape[0], dtype=np.bool_)
    for p in range(ia.shape[0]):
        a, b = ia[p], ib[p]
        dx, dy = x[b] - x[a], y[b] - y[a]
        length2 = dx * dx + dy * dy
        if length2 <= 0.0:
            continue
        for v in range(x.shape[0]):
            if v == a or v == b:  # noqa: SIM109 (numba)
                continue
            t = ((x[v] - x[a]) * dx + (y[v] - y[a]) * dy) / length2
            if t <= 0.0 or t >= 1.0:
                continue
            px, py = x[a] + t * dx - x[v], y[a] + t * dy - y[v]
            if px * px + py * py <= half_width * half_width:
                out[p] = True
                break
    return out
