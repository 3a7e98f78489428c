"""The sidelink layer's per-step evaluation vs a pair-by-pair reference, timed in one process.

Synthetic step: 300 vehicles placed at random on a 2 km x 2 km area with a random building raster
(2 m pixels, a third of them buildings), 20 of them clients and 150 the fleet: about 1 400 pairs
within the 1 km range per step. Shadowing is off so both paths compute the same numbers. The
reference evaluates each pair on its own, in Python, with the same TR 37.885 functions called on
scalars (the line of sight to buildings and to other cars walked point by point); the layer does
all pairs in one vectorised/compiled pass. Prints both times per step, their ratio, and the
largest rate difference (0: the same links at the same rates).

    python bench/sidelink.py [--steps 20]
"""

from __future__ import annotations

import argparse
import math
import time
from types import SimpleNamespace

import numpy as np
import simpy

from cosim.mobility.session import VehicleStates
from cosim.radio import v2v_pathloss as v2v
from cosim.radio.sidelink import BLOCKER_HALF_WIDTH_M, BLOCKER_HEIGHT_M, SidelinkLayer
from cosim.scenario import SidelinkConfig

N, TALKERS, FLEET, RES = 300, 20, 150, 2.0


def reference_rates(cfg: SidelinkConfig, states: VehicleStates, mask: np.ndarray, talkers, fleet):
    """Pair by pair: {(a, b): rate} of the links that are up."""
    row = {v: i for i, v in enumerate(states.ids)}
    x, y = states.x, states.y
    bw = cfg.bandwidth_mhz * 1e6
    out = {}
    pairs = {tuple(sorted((a, b))) for a in talkers for b in set(fleet) | set(talkers) if a != b}
    for a, b in sorted(pairs):
        i, j = row[a], row[b]
        d = math.hypot(x[j] - x[i], y[j] - y[i])
        if d > cfg.max_range_m:
            continue
        blocked = False
        n = int(math.ceil(d / (0.5 * RES))) + 1
        for s in range(n + 1):
            px, py = x[i] + s / n * (x[j] - x[i]), y[i] + s / n * (y[j] - y[i])
            ix, iy = int(math.floor(px / RES)), int(math.floor(py / RES))
            if 0 <= ix < mask.shape[1] and 0 <= iy < mask.shape[0] and mask[iy, ix]:
                blocked = True
                break
        car = False
        if not blocked:
            for k in range(len(x)):
                if k in (i, j):
                    continue
                t = ((x[k] - x[i]) * (x[j] - x[i]) + (y[k] - y[i]) * (y[j] - y[i])) / (d * d)
                if 0 < t < 1 and math.hypot(x[i] + t * (x[j] - x[i]) - x[k],
                                            y[i] + t * (y[j] - y[i]) - y[k]) <= BLOCKER_HALF_WIDTH_M:
                    car = True
                    break
        state = v2v.NLOS if blocked else v2v.NLOSV if car else v2v.LOS
        loss = float(v2v.v2v_path_loss_db(cfg.environment, state, d, cfg.carrier_ghz))
        if state == v2v.NLOSV:
            z = layer_blockage_z(a, b)
            loss += float(v2v.nlosv_blockage_db(z, d, v2v.ANTENNA_HEIGHT_M, v2v.ANTENNA_HEIGHT_M,
                                                BLOCKER_HEIGHT_M))
        snr = float(v2v.sidelink_snr_db(loss, cfg.tx_power_dbm, bw, cfg.noise_figure_db,
                                        cfg.antenna_gain_dbi))
        if snr >= cfg.min_snr_db:
            out[(a, b)] = float(v2v.sidelink_rate_bps(snr, bw, cfg.efficiency, cfg.max_spectral_efficiency))
    return out


_LAYER: SidelinkLayer | None = None


def layer_blockage_z(a: str, b: str) -> float:
    """The pair's blockage draw, as the layer drew it (draws are per pair, counter-based)."""
    store = _LAYER.pairs
    return float(store.blockage_z[store.slot_of[(a, b)]])


def main() -> None:
    global _LAYER
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    ids = np.array([f"v{i:03d}" for i in range(N)], dtype=object)
    mask = rng.random((1000, 1000)) < 1 / 3
    cfg = SidelinkConfig(shadowing=False)
    steps = [VehicleStates(float(k), ids, rng.uniform(0, 2000, N), rng.uniform(0, 2000, N), np.zeros(N),
                           np.zeros(N), ids, np.zeros(N, bool), (), ()) for k in range(args.steps)]
    road = SimpleNamespace(current=steps[0])
    radio = SimpleNamespace(channel=SimpleNamespace(street_los=SimpleNamespace(
        building_mask=mask, origin=(0.0, 0.0), resolution_m=RES)))
    env = simpy.Environment()
    layer = _LAYER = SidelinkLayer(cfg, seed=1, step_s=1.0)
    no_trace = SimpleNamespace(table=lambda *a: SimpleNamespace(append=lambda rows: None))
    layer.attach(SimpleNamespace(env=env, layers={"mobility": road, "radio": radio},
                                 layer=lambda name: road, traces=no_trace))
    talkers, fleet = list(ids[:TALKERS]), list(ids[:FLEET])
    layer.track(lambda: talkers, lambda: fleet)
    layer._evaluate(0.0)  # compile the numba kernels outside the timing
    fast = slow = 0.0
    worst = 0.0
    pairs = 0
    for k, states in enumerate(steps):
        road.current = states
        t0 = time.perf_counter()
        layer._evaluate(float(k))
        fast += time.perf_counter() - t0
        t0 = time.perf_counter()
        ref = reference_rates(cfg, states, mask, talkers, fleet)
        slow += time.perf_counter() - t0
        assert set(ref) == set(layer.rate), "the two paths found different links"
        worst = max([worst, *(abs(ref[p] - layer.rate[p]) / ref[p] for p in ref)])
        pairs += layer.evaluations
    n = len(steps)
    print(f"pairs evaluated per step: {layer.evaluations / (n + 1):.0f}")
    print(f"layer (vectorised): {1e3 * fast / n:.2f} ms/step; reference (pair by pair): "
          f"{1e3 * slow / n:.1f} ms/step; ratio {slow / fast:.0f}x")
    print(f"largest relative rate difference: {worst:.2e}")


if __name__ == "__main__":
    main()
