"""The channel as a function of position, and the handoffs it gives on a straight road through a
hexagonal layout, against geometry worked out independently (nearest site = Voronoi cell)."""

from __future__ import annotations

import numpy as np
import pytest

from cosim.radio.cells import Cells, hex_sites
from cosim.radio.channel import Channel
from cosim.radio.handoff import STATE_FIELDS, LinkStateMachine
from cosim.scenario import CellConfig, ChannelConfig, HandoffConfig

BOUNDS = (-1200.0, -1200.0, 1200.0, 1200.0)


def _hex_cells() -> Cells:
    return Cells.from_configs([CellConfig(id=f"m{i}", x=x, y=y, scenario="uma", antenna_gain_dbi=17)
                               for i, (x, y) in enumerate(hex_sites((0.0, 0.0), 500.0, 1))])


@pytest.mark.parametrize("los", ["stochastic", "always"])
def test_same_position_same_channel(los):
    cells = _hex_cells()
    cfg = ChannelConfig(los=los, penetration_std_db=0.0)  # the car body alike for every vehicle
    channel = Channel(cells, cfg, np.random.default_rng(7), BOUNDS)
    channel.add_vehicles(np.arange(4))
    rng = np.random.default_rng(1)
    x, y = rng.uniform(-800, 800, 50), rng.uniform(-800, 800, 50)
    a = channel.rsrp_dbm(np.zeros(50, int), x, y)
    b = channel.rsrp_dbm(np.full(50, 3), x[::-1], y[::-1])[::-1]  # another vehicle, another order
    c = channel.rsrp_dbm(np.zeros(50, int), x, y)  # the same vehicle coming back
    assert np.array_equal(a, b) and np.array_equal(a, c)
    # and it does vary over space: shadowing decorrelates over tens of metres
    moved = channel.rsrp_dbm(np.zeros(50, int), x + 200.0, y)
    assert np.abs(moved - a).mean() > 1.0


def test_two_vehicles_at_one_spot_differ_only_by_their_car_body():
    cells = _hex_cells()
    channel = Channel(cells, ChannelConfig(), np.random.default_rng(7), BOUNDS)
    channel.add_vehicles(np.arange(2))
    x, y = np.array([120.0, 120.0]), np.array([-40.0, -40.0])
    rsrp = channel.rsrp_dbm(np.arange(2), x, y)
    gap = rsrp[0] - rsrp[1]
    assert np.allclose(gap, gap[0], atol=1e-4)  # the same for every cell: penetration only
    assert gap[0] == pytest.approx(channel.penetration_db[1] - channel.penetration_db[0], abs=1e-4)


def _voronoi_crossings(cells: Cells, x: np.ndarray, y: np.ndarray) -> int:
    nearest = np.argmin(np.hypot(x[:, None] - cells.x, y[:, None] - cells.y), axis=1)
    return int((np.diff(nearest) != 0).sum())


@pytest.mark.slow
@pytest.mark.parametrize("offset_y", [0.0, 90.0, 210.0, -330.0])
def test_straight_road_through_hex_layout_gives_the_geometric_handover_count(offset_y):
    """LOS fixed, no shadowing, omni sites of equal power and height: the strongest cell is the
    nearest site, so a drive hands over once per Voronoi boundary it crosses (the offset and the
    time-to-trigger delay each handoff, they do not add or remove any)."""
    cells = _hex_cells()
    cfg = ChannelConfig(los="never", shadowing=False, penetration_std_db=0.0)
    channel = Channel(cells, cfg, np.random.default_rng(0), BOUNDS)
    channel.add_vehicles(np.zeros(1, int))
    dt, speed = 0.1, 12.0
    x = np.arange(-900.0, 900.0, speed * dt)
    y = np.full_like(x, offset_y)
    rsrp = channel.rsrp_dbm(np.zeros(len(x), int), x, y)[:, None, :]  # (K, 1, C)
    # SINR is not what decides a handoff; keep every link comfortably above Qin
    received = np.where(rsrp == rsrp.max(axis=2, keepdims=True), 1e3, 1.0)
    fsm = LinkStateMachine(HandoffConfig(), group=np.arange(len(cells)), carrier=np.full(len(cells), 3.5),
                           noise_mw=np.ones(len(cells)), max_sinr_db=30.0, step_s=dt)
    st = {name: np.full((1, len(cells)) if per_cell else 1, fill, dtype=dtype)
          for name, (dtype, fill, per_cell) in STATE_FIELDS.items()}
    links = fsm.run_block(st, rsrp, received, np.ones(1, bool), 0.0)
    handoffs = [e for _, e in links.events if e.kind == "handoff"]
    assert len(handoffs) == _voronoi_crossings(cells, x, y) > 0
    # and each lands on the site the road is entering
    nearest = np.argmin(np.hypot(x[:, None] - cells.x, y[:, None] - cells.y), axis=1)
    entered = nearest[1:][np.diff(nearest) != 0]
    assert [e.to_cell for e in handoffs] == entered.tolist()


@pytest.mark.parametrize("los", ["always", "never", "stochastic"])
def test_the_compiled_channel_computes_the_reference_formulas(los):
    """Channel.rsrp_dbm (compiled) = EIRP + sector attenuation - 38.901 path loss - shadowing -
    penetration, each from the pure reference functions."""
    from cosim.radio.antenna import attenuation_db
    from cosim.radio.pathloss import path_loss_db

    configs = [CellConfig(id=f"m{i}", x=x, y=y, scenario="uma", antenna_gain_dbi=17, azimuth_deg=az,
                          downtilt_deg=12)
               for i, ((x, y), az) in enumerate(zip(hex_sites((0.0, 0.0), 500.0, 1),
                                                    [60.0, 180.0, 300.0, 0.0, 90.0, 200.0, 330.0],
                                                    strict=True))]
    configs += [CellConfig(id="s0", x=120.0, y=-80.0, scenario="umi", height_m=10, carrier_ghz=3.7,
                           bandwidth_mhz=20, tx_power_dbm=30, antenna_gain_dbi=5)]  # omni
    cells = Cells.from_configs(configs)
    cfg = ChannelConfig(los=los)
    channel = Channel(cells, cfg, np.random.default_rng(3), BOUNDS)
    channel.add_vehicles(np.arange(40))
    rng = np.random.default_rng(4)
    x = rng.uniform(-1000, 1000, 40).astype(np.float32)
    y = rng.uniform(-1000, 1000, 40).astype(np.float32)
    x[0], y[0] = cells.x[0] + 3.0, cells.y[0]  # closer than 10 m: evaluated at 10 m
    got = channel.rsrp_dbm(np.arange(40), x, y)
    dx, dy = x[:, None] - cells.x, y[:, None] - cells.y
    d2d = np.hypot(dx, dy)
    state = channel.los(x, y)
    loss = np.empty_like(d2d)
    for scen, g in channel.groups.items():
        loss[:, g] = path_loss_db(scen, state[:, g], d2d[:, g], cells.carrier_ghz[g], cells.height_m[g], 1.5)
    shadow = np.where(state, channel.sigma_los, channel.sigma_nlos) * channel.fields.shadow_z(x, y, state)
    gain = attenuation_db(dx, dy, d2d, cells.height_m - 1.5, cells.azimuth_deg, cells.downtilt_deg)
    want = channel.eirp_re_dbm + gain - loss - shadow - channel.penetration_db[:40, None]
    assert np.abs(got - want).max() < 2e-3  # float32 vs float64 arithmetic
