"""Mobility benchmark: sf_downtown, one simulated hour at 1 s steps.

Prints vehicle-steps per second of reading every vehicle's state each step, for libsumo and for
TraCI measured in the same run (this machine is shared: compare the ratio, not absolute times),
plus the read strategies that lost (libsumo subscriptions) and SUMO stepping alone as the floor.

    python bench/mobility.py [--duration 3600]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cosim.mobility.build import prepare_inputs
from cosim.mobility.session import (
    _SUBSCRIBED,
    LibsumoSession,
    SumoLaunch,
    TraciSession,
    pack_subscriptions,
)
from cosim.scenario_loader import load_scenario

SCENARIO = Path(__file__).resolve().parent.parent / "scenarios" / "sf_downtown.yaml"


class LibsumoSubscriptionSession(LibsumoSession):
    """libsumo read through variable subscriptions (the alternative to direct getters)."""

    _subscribed: set[str] = set()

    def _read_all(self) -> tuple:
        v = self._sumo.vehicle
        ids = v.getIDList()
        for vid in ids:
            if vid not in self._subscribed:
                v.subscribe(vid, _SUBSCRIBED)
        self._subscribed = set(ids)
        return pack_subscriptions(ids, v.getAllSubscriptionResults())


class StepOnlySession(LibsumoSession):
    """SUMO's own cost: step, read nothing but the id list."""

    def _read_all(self) -> tuple:
        ids = self._sumo.vehicle.getIDList()
        z = np.zeros(len(ids))
        return list(ids), z, z, z, z, [""] * len(ids), np.zeros(len(ids), np.int64)


def measure(session_cls, launch: SumoLaunch, steps: int) -> tuple[float, int]:
    session = session_cls(launch)
    try:
        vehicle_steps = 0
        t0 = time.perf_counter()
        for _ in range(steps):
            vehicle_steps += len(session.step())
        return time.perf_counter() - t0, vehicle_steps
    finally:
        session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=3600.0, help="simulated seconds")
    args = parser.parse_args()
    sc = load_scenario(SCENARIO, [f"duration_s={args.duration}"])
    inputs = prepare_inputs(sc.mobility, sc.seed, sc.duration_s)
    steps = int((sc.mobility.warmup_s + args.duration) / sc.mobility.step_length_s)
    launch = SumoLaunch(inputs, "libsumo", sc.mobility.step_length_s, sc.seed)
    print(f"sf_downtown, {steps} steps of {sc.mobility.step_length_s} s "
          f"(warm-up {sc.mobility.warmup_s:.0f} s + {args.duration:.0f} s), seed {sc.seed}")
    results = {}
    for label, cls in [("libsumo getters (used)", LibsumoSession),
                       ("libsumo subscriptions", LibsumoSubscriptionSession),
                       ("libsumo step only (floor)", StepOnlySession),
                       ("traci subscriptions (used)", TraciSession)]:
        wall, vsteps = measure(cls, launch, steps)
        results[label] = vsteps / wall
        print(f"  {label:<28} {wall:7.1f} s wall  {vsteps:>9,} vehicle-steps  "
              f"{vsteps / wall:>9,.0f} vehicle-steps/s")
    ratio = results["libsumo getters (used)"] / results["traci subscriptions (used)"]
    sub = results["libsumo getters (used)"] / results["libsumo subscriptions"]
    print(f"libsumo / TraCI: {ratio:.2f}x   libsumo getters / libsumo subscriptions: {sub:.2f}x")


if __name__ == "__main__":
    main()
