"""Radio benchmark, measured side by side in one run (compare ratios; absolute times drift here).

(a) Vehicle x cell evaluations per second of the per-step radio update (distances, 38.901 path
    loss with LOS state and shadowing, RSRP, received power, co-channel interference, best cell
    and its SINR) at 2000 vehicles x 20 cells on one core: one radio step at a time, and a block
    of 10 radio steps at once (what the radio layer does per 1 s SUMO step).
(b) Wall time of sf_downtown for one simulated hour with mobility + radio (100 ms radio steps,
    1 s SUMO steps) over the plain ``sumo`` binary running the same network, routes and parking
    for the same simulated span; mobility alone for reference.

    python bench/radio.py [--duration 3600] [--skip-run]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # one core, as the goal says

import numpy as np  # noqa: E402

from cosim.mobility.build import prepare_inputs  # noqa: E402
from cosim.mobility.sumo_tools import binary  # noqa: E402
from cosim.radio.cells import Cells  # noqa: E402
from cosim.radio.channel import Channel  # noqa: E402
from cosim.runner import run_scenario  # noqa: E402
from cosim.scenario import CellConfig, ChannelConfig  # noqa: E402
from cosim.scenario_loader import load_scenario  # noqa: E402

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "sf_downtown.yaml"


def synthetic_cells(n_macro: int = 7, n_small: int = 13) -> Cells:
    rng = np.random.default_rng(0)
    configs = [CellConfig(id=f"m{i}", x=x, y=y, scenario="uma")
               for i, (x, y) in enumerate(rng.uniform(0, 2000, (n_macro, 2)))]
    configs += [CellConfig(id=f"s{i}", x=x, y=y, scenario="umi", height_m=10, tx_power_dbm=30,
                           antenna_gain_dbi=5, carrier_ghz=3.7, bandwidth_mhz=20)
                for i, (x, y) in enumerate(rng.uniform(0, 2000, (n_small, 2)))]
    return Cells.from_configs(configs)


def radio_update(channel: Channel, slots, xs, ys, group_onehot, noise_mw) -> np.ndarray:
    """One radio update for positions (K, N): best cell's SINR for every vehicle and step."""
    rsrp = channel.rsrp_dbm(slots, xs, ys)
    received = channel.received_mw(rsrp)
    k, n, c = received.shape
    cochannel = (received.reshape(k * n, c) @ group_onehot).reshape(k, n, -1)
    best = rsrp.argmax(axis=-1)
    signal = np.take_along_axis(received, best[..., None], -1)[..., 0]
    group = group_onehot.argmax(axis=1)[best]
    total = np.take_along_axis(cochannel, group[..., None], -1)[..., 0]
    return signal / (total - signal + noise_mw[best])


def bench_update(n_vehicles: int = 2000, repeats: int = 30) -> None:
    cells = synthetic_cells()
    channel = Channel(cells, ChannelConfig(), np.random.default_rng(1))
    rng = np.random.default_rng(2)
    slots = np.arange(n_vehicles)
    x, y = rng.uniform(0, 2000, n_vehicles), rng.uniform(0, 2000, n_vehicles)
    channel.add_vehicles(slots, x, y)
    onehot = np.zeros((len(cells), 2))
    onehot[np.arange(len(cells)), cells.cochannel_group] = 1.0
    print(f"(a) radio update, {n_vehicles} vehicles x {len(cells)} cells, one core")
    for k in (1, 10):
        xs, ys = x + np.zeros((k, 1)), y + np.zeros((k, 1))
        radio_update(channel, slots, xs, ys, onehot, channel.noise_mw)
        t0 = time.perf_counter()
        for _ in range(repeats):
            radio_update(channel, slots, xs, ys, onehot, channel.noise_mw)
        per_call = (time.perf_counter() - t0) / repeats
        evals = k * n_vehicles * len(cells) / per_call
        print(f"    {k:>2} radio step(s) per call: {per_call * 1e3:7.2f} ms/call  "
              f"{evals / 1e6:6.1f} M vehicle-cell evaluations/s")
    t0 = time.perf_counter()
    for _ in range(repeats):
        channel.move(slots, x + 10.0, y)
        channel.move(slots, x, y)
    print(f"    channel state update per SUMO step (LOS + shadowing): "
          f"{(time.perf_counter() - t0) / (2 * repeats) * 1e3:.2f} ms")


def bench_run(duration: float) -> None:
    sc = load_scenario(SCENARIO, [f"duration_s={duration}"])
    inputs = prepare_inputs(sc)
    end = sc.mobility.warmup_s + duration
    cmd = [binary("sumo"), "-n", str(inputs.net), "-r", ",".join(map(str, inputs.routes)),
           "-a", ",".join(map(str, inputs.additional)), "--step-length",
           repr(sc.mobility.step_length_s), "--seed", str(sc.seed), "--end", repr(end),
           "--no-step-log", "true", "--no-warnings", "true", "--duration-log.disable", "true"]
    print(f"(b) sf_downtown, {duration:.0f} s simulated after {sc.mobility.warmup_s:.0f} s warm-up")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    sumo_s = time.perf_counter() - t0
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_scenario(sc, source=SCENARIO, out=Path(tmp) / "full", quiet=True)
        full_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        run_scenario(load_scenario(SCENARIO, [f"duration_s={duration}", "radio=null"]),
                     source=SCENARIO, out=Path(tmp) / "mob", quiet=True)
        mob_s = time.perf_counter() - t0
    print(f"    plain sumo binary            {sumo_s:7.1f} s")
    print(f"    cosim mobility only          {mob_s:7.1f} s   {mob_s / sumo_s:5.2f}x sumo")
    print(f"    cosim mobility + radio       {full_s:7.1f} s   {full_s / sumo_s:5.2f}x sumo "
          f"(goal <= 2.0x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600.0)
    parser.add_argument("--skip-run", action="store_true", help="only (a)")
    args = parser.parse_args()
    bench_update()
    if not args.skip_run:
        bench_run(args.duration)


if __name__ == "__main__":
    main()
