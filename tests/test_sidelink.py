"""The V2V sidelink layer on a scripted road: link windows at the range 37.885's formula gives,
transfers at bytes over rate, losses, sharing, blockage by cars and by buildings."""

from __future__ import annotations

import math

import numpy as np
import pyarrow.parquet as pq
import pytest
import simpy

from cosim.mobility.session import VehicleStates
from cosim.radio.sidelink import SidelinkLayer
from cosim.scenario import SidelinkConfig
from cosim.traces import TraceSet

# 37.885 urban LOS path loss at 5.9 GHz: 38.77 + 16.7 log10(d) + 18.2 log10(5.9).
# 18.2 log10(5.9) = 18.2 * 0.770852 = 14.0295.
# Link budget: 23 dBm + 2 * 3 dBi - PL - N, N = -174 + 10 log10(20e6) + 9 = -91.9897 dBm.
# With min_snr_db 40: PL <= 23 + 6 + 91.9897 - 40 = 80.9897 dB
# -> 16.7 log10(d) <= 80.9897 - 38.77 - 14.0295 = 28.1902 -> d <= 10^1.68803 = 48.75 m.
RANGE_AT_40DB_M = 48.75


class ScriptedRoad:
    """Vehicles at positions given as functions of time (whole seconds)."""

    def __init__(self, env: simpy.Environment, tracks: dict[str, callable]):
        self.env, self.tracks = env, tracks

    @property
    def current(self) -> VehicleStates:
        t = math.floor(self.env.now + 1e-9)
        here = {v: f(t) for v, f in self.tracks.items() if f(t) is not None}
        ids = np.array(sorted(here), dtype=object)
        xy = np.array([here[v] for v in ids], dtype=float).reshape(-1, 2)
        n = len(ids)
        return VehicleStates(float(t), ids, xy[:, 0], xy[:, 1], np.zeros(n), np.zeros(n),
                             np.array(["e"] * n, dtype=object), np.zeros(n, bool), (), ())


class FakeEngine:
    def __init__(self, env, layers, traces):
        self.env, self.layers, self.traces = env, layers, traces

    def layer(self, name):
        return self.layers[name]


def _layer(tmp_path, tracks, talkers=("a",), streets=None, **cfg):
    """A sidelink layer over ``tracks``; ``streets``: a building raster (1 m pixels from 0, 0)."""
    env = simpy.Environment()
    tmp_path.mkdir(parents=True, exist_ok=True)
    traces = TraceSet(tmp_path, 1000)
    layers = {"mobility": ScriptedRoad(env, tracks)}
    if streets is not None:
        layers["radio"] = _RadioWithStreets(streets)
    settings = {"los": "always", "shadowing": False, "min_snr_db": 40.0} | cfg
    layer = SidelinkLayer(SidelinkConfig(**settings), seed=1, step_s=1.0)
    layer.attach(FakeEngine(env, layers, traces))
    layer.track(lambda: talkers, lambda: set(tracks))
    return env, layer, traces


def _rate(distance_m: float, path_loss_db: float | None = None) -> float:
    """The 37.885 urban LOS link's rate at 5.9 GHz, 20 MHz, by hand (see RANGE_AT_40DB_M)."""
    if path_loss_db is None:
        path_loss_db = 38.77 + 16.7 * math.log10(distance_m) + 18.2 * math.log10(5.9)
    snr = 23 + 6 - path_loss_db + 91.9897
    return 20e6 * min(0.75 * math.log2(1 + 10 ** (snr / 10)), 4.8)


def test_a_window_closes_where_the_37885_budget_runs_out(tmp_path):
    # b drives away from a at 5 m/s: in range while 5 t <= 48.75, i.e. up to t = 9
    env, layer, traces = _layer(tmp_path, {"a": lambda t: (0.0, 0.0), "b": lambda t: (5.0 * t + 1, 0.0)})
    env.run(until=15)
    layer.finish()
    traces.close(complete=True)
    w = pq.read_table(tmp_path / "v2v_windows.parquet").to_pandas()
    assert len(w) == 1
    assert (w.a[0], w.b[0], w.start[0]) == ("a", "b", 0.0)
    last_in_range = max(t for t in range(15) if 5.0 * t + 1 <= RANGE_AT_40DB_M)
    assert w.end[0] == last_in_range + 1.0  # the first evaluation out of range closes it
    assert not w.censored[0]
    # at SNR >= 40 dB, 0.75 log2(1 + 10^4) = 9.97 bit/s/Hz: capped at 4.8 x 20 MHz throughout
    assert w.min_rate_bps[0] == w.mean_rate_bps[0] == 20e6 * 4.8


def test_transfer_takes_bytes_over_rate_then_fails_when_the_pair_parts(tmp_path):
    tracks = {"a": lambda t: (0.0, 0.0), "b": lambda t: (20.0, 0.0) if t < 10 else (500.0, 0.0)}
    env, layer, _ = _layer(tmp_path, tracks)
    results = {}

    def send(name, t0, nbytes):
        yield env.timeout(t0)
        results[name] = yield layer.transfer("a", "b", nbytes)

    env.process(send("short", 0.5, 1_000_000))
    env.process(send("long", 2.0, 10**9))
    env.run(until=20)
    rate = _rate(20.0)
    short = results["short"]
    assert short.ok and short.t_end - short.t_start == pytest.approx(8e6 / rate, rel=1e-6)
    long = results["long"]
    assert not long.ok and long.reason == "sidelink_lost" and long.t_end == 10.0
    assert long.bytes_moved == pytest.approx(rate * 8.0 / 8.0, rel=1e-6)  # 8 s at the full rate


def test_a_transmitter_shares_its_rate_between_its_transfers(tmp_path):
    tracks = {"a": lambda t: (0.0, 0.0), "b": lambda t: (20.0, 0.0), "c": lambda t: (0.0, 20.0)}
    env, layer, _ = _layer(tmp_path, tracks)
    out = {}

    def send(dst, t0):
        yield env.timeout(t0)
        out[dst] = yield layer.transfer("a", dst, 10_000_000)

    env.process(send("b", 1.0))
    env.process(send("c", 1.0))
    env.run(until=60)
    # both 20 m away: alone each would take 8e7 / rate; together, twice that
    for dst in "bc":
        assert out[dst].ok
        assert out[dst].t_end - out[dst].t_start == pytest.approx(2 * 8e7 / _rate(20.0), rel=1e-6)


def test_a_car_on_the_line_makes_the_link_nlosv_and_weaker(tmp_path):
    clear = {"a": lambda t: (0.0, 0.0), "b": lambda t: (40.0, 0.0)}
    blocked = clear | {"x": lambda t: (20.0, 0.3)}  # a car 0.3 m off the line, half-way
    rates = []
    for i, tracks in enumerate((clear, blocked)):
        env, layer, _ = _layer(tmp_path / str(i), tracks, streets=np.zeros((4, 4), bool),
                               los="geometry", min_snr_db=0.0)
        env.run(until=2)
        rates.append(layer.rate_bps("a", "b"))
        share = layer.summary()["state_share"]
        assert share["NLOSv" if i else "LOS"] > 0 and share["NLOS"] == 0
    assert rates[0] == pytest.approx(_rate(40.0), rel=1e-6)
    # 37.885's blockage (a car taller than the 1.5 m antennas): max(0, 9 + 4.5 z) dB, never a gain
    assert 0 < rates[1] <= rates[0]


class _RadioWithStreets:
    """A radio layer whose channel has a street raster (1 m pixels from (0, 0))."""

    def __init__(self, mask):
        from types import SimpleNamespace

        self.channel = SimpleNamespace(street_los=SimpleNamespace(
            building_mask=mask, origin=(0.0, 0.0), resolution_m=1.0))


def test_a_building_between_makes_the_link_nlos(tmp_path):
    mask = np.zeros((100, 100), bool)
    mask[:, 50:60] = True  # a wall from x = 50 to 60 m
    tracks = {"a": lambda t: (10.0, 10.0), "b": lambda t: (90.0, 10.0), "c": lambda t: (40.0, 80.0)}
    env, layer, _ = _layer(tmp_path, tracks, streets=mask, los="geometry", min_snr_db=-30.0)
    env.run(until=1)
    # a-b crosses the wall (NLOS, 37.885's 36.85 + 30 log d + 18.9 log fc), a-c does not (LOS)
    assert layer.summary()["state_share"] == {"LOS": 0.5, "NLOSv": 0.0, "NLOS": 0.5}
    pl_nlos = 36.85 + 30 * math.log10(80.0) + 18.9 * math.log10(5.9)
    assert layer.rate_bps("a", "b") == pytest.approx(_rate(80.0, pl_nlos), rel=1e-4)


def test_shadowing_is_deterministic_per_pair_and_seed(tmp_path):
    # far enough apart that the rate is below its cap (SNR under 25 dB)
    tracks = {"a": lambda t: (0.0, 0.0), "b": lambda t: (3.0 * t + 900, 0.0),
              "c": lambda t: (0.0, 2.0 * t + 900)}
    series = []
    for i in range(2):
        env, layer, _ = _layer(tmp_path / str(i), tracks, shadowing=True, min_snr_db=-30.0,
                               max_range_m=5000.0)
        seen = []

        def watch(env=env, layer=layer, seen=seen):
            while True:
                seen.append((layer.rate_bps("a", "b"), layer.rate_bps("a", "c")))
                yield env.timeout(1.0)

        env.process(watch())
        env.run(until=20)
        series.append(seen)
    assert series[0] == series[1]
    assert len({r for r, _ in series[0]}) > 5  # it varies as b moves
