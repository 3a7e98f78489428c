"""The radio section: cells, channel, handoff, rates and interference."""

from __future__ import annotations

from typing import Literal

from pydantic import (
    Field,
    PositiveFloat,
    PositiveInt,
    model_validator,
)

from cosim.scenario.base import Coordinate, InputFile, NameList, StrictModel, whole_multiple


class CellTemplate(StrictModel):
    """Radio parameters shared by a cell and by the cells a layout generator places."""

    height_m: float = Field(25.0, gt=0.0, le=1000.0)
    kind: Literal["macro", "small", "rsu"] = "macro"
    tx_power_dbm: float = Field(46.0, ge=-60.0, le=90.0)  # total, over the bandwidth
    antenna_gain_dbi: float = Field(8.0, ge=-30.0, le=60.0)
    carrier_ghz: float = Field(3.5, ge=0.5, le=100.0)  # 38.901's validity range
    bandwidth_mhz: float = Field(40.0, gt=0.0, le=5000.0)
    scenario: Literal["uma", "umi"] = "uma"
    # The antenna's boresight as a compass bearing (degrees clockwise from north, +y); none: an
    # omnidirectional antenna. A sector antenna has the 38.901 element pattern (Table 7.3-1).
    azimuth_deg: float | None = Field(None, ge=0.0, lt=360.0)
    downtilt_deg: float = Field(0.0, ge=-30.0, le=60.0)  # electrical, positive towards the ground


class CellConfig(CellTemplate):
    """One base station / small cell / RSU at a position in the network's frame (metres)."""

    id: str = Field(min_length=1, max_length=200)
    x: Coordinate
    y: Coordinate


class HexLayout(CellTemplate):
    """Macro sites on a hexagonal lattice: a centre site and ``rings`` rings around it."""

    isd_m: float = Field(500.0, gt=0.0, le=100_000.0)
    rings: int = Field(1, ge=0, le=6)
    center: tuple[Coordinate, Coordinate] | None = None  # default: the centre of the network
    id_prefix: str = "macro"
    # Three sectors per site (38.901 Fig. 7.8-1), each a cell with the Table 7.3-1 pattern around
    # its boresight; 1: one omnidirectional cell per site.
    sectors: Literal[1, 3] = 3
    # Leave out the sites farther than this from every road (a lattice over a coast, a port or
    # hills puts sites where no vehicle comes); none: every site of the lattice
    max_road_distance_m: float | None = Field(None, gt=0.0, le=100_000.0)
    antenna_gain_dbi: float = 17.0  # a sector panel's gain on boresight
    downtilt_deg: float = Field(12.0, ge=-30.0, le=60.0)  # 38.901 Table 7.8-1: theta_etilt = 102 deg

    @model_validator(mode="after")
    def _bearings_from_sectors(self) -> HexLayout:
        if self.azimuth_deg is not None:
            raise ValueError("azimuth_deg: the layout sets each sector's bearing (sectors: 1 or 3)")
        return self


class IntersectionLayout(CellTemplate):
    """Small cells on the network's most central intersections (networkx), spaced apart."""

    count: PositiveInt = Field(12, le=10_000)
    rank_by: Literal["betweenness", "degree"] = "betweenness"
    min_spacing_m: float = Field(200.0, ge=0.0, le=100_000.0)
    id_prefix: str = "small"
    height_m: float = Field(10.0, gt=0.0, le=1000.0)
    kind: Literal["macro", "small", "rsu"] = "small"
    tx_power_dbm: float = Field(30.0, ge=-60.0, le=90.0)
    antenna_gain_dbi: float = Field(5.0, ge=-30.0, le=60.0)
    carrier_ghz: float = Field(3.7, ge=0.5, le=100.0)
    bandwidth_mhz: float = Field(20.0, gt=0.0, le=5000.0)
    scenario: Literal["uma", "umi"] = "umi"


class CellGenerators(StrictModel):
    """Cells placed by generators instead of (or as well as) listed one by one."""

    hex: HexLayout | None = None
    intersections: IntersectionLayout | None = None
    extra: list[CellConfig] = Field(default_factory=list)


class ChannelConfig(StrictModel):
    """Large-scale channel: 3GPP TR 38.901 path loss, LOS, shadowing, vehicle penetration."""

    model: Literal["38.901", "free_space", "log_distance"] = "38.901"
    # stochastic: 38.901's LOS probability, drawn from a spatially consistent field per cell
    # (same position, same LOS); geometry: the line to the cell is blocked by buildings (the blocks
    # between the network's streets, or the polygons of ``buildings``); always / never.
    los: Literal["stochastic", "geometry", "always", "never"] = "stochastic"
    buildings: InputFile | None = None  # a SUMO .poly.xml; none: blocks between the streets
    building_types: NameList = Field(default_factory=lambda: ["building"])
    # street width beyond the lanes, for blocks between streets
    sidewalk_m: float = Field(3.0, ge=0.0, le=1000.0)
    shadowing: bool = True
    # Shadow-fading correlation between sites, as in TR 36.814 Table A.2.1.1.2-3 (0.5).
    shadow_site_correlation: float = Field(0.5, ge=0.0, le=1.0)
    penetration_mean_db: float = Field(9.0, ge=0.0, le=100.0)  # 38.901 7.4.3.2: N(9, 5^2) dB
    penetration_std_db: float = Field(5.0, ge=0.0, le=50.0)
    log_distance_exponent: float = Field(3.5, gt=0.0, le=10.0)
    ue_height_m: float = Field(1.5, gt=0.0, le=100.0)
    noise_figure_db: float = Field(9.0, ge=0.0, le=50.0)
    subcarrier_khz: float = Field(30.0, gt=0.0, le=1000.0)
    # The receiver's own limit (EVM, phase noise, ADC): no SINR above this reaches the decoder.
    max_sinr_db: float = Field(30.0, ge=-50.0, le=100.0)


class HandoffConfig(StrictModel):
    """Handoff per TS 38.331 measurement events on L3-filtered RSRP, each neighbour with its own
    time-to-trigger: A3 to a cell on the serving carrier (neighbour better than serving by the
    offset), A4 or A5 to a cell on another carrier (thresholds in dBm of RSRP per resource
    element); radio link failure via Qout and T310."""

    a3_offset_db: float = Field(3.0, ge=-100.0, le=100.0)
    hysteresis_db: float = Field(0.0, ge=0.0, le=100.0)
    ttt_s: float = Field(0.256, ge=0.0, le=3600.0)
    inter_frequency: Literal["a4", "a5"] = "a5"
    a4_threshold_dbm: float = Field(-100.0, ge=-250.0, le=100.0)  # A4: neighbour above this
    a5_threshold1_dbm: float = Field(-105.0, ge=-250.0, le=100.0)  # A5: serving below this ...
    a5_threshold2_dbm: float = Field(-100.0, ge=-250.0, le=100.0)  # ... and neighbour above this
    l3_filter_a: float = Field(0.5, gt=0.0, le=1.0)  # per measurement period (k = 4)
    # RSRP measurement period (TS 38.133, FR1)
    measurement_period_s: float = Field(0.2, gt=0.0, le=3600.0)
    interruption_s: float = Field(0.05, ge=0.0, le=3600.0)
    qout_db: float = Field(-8.0, ge=-100.0, le=100.0)
    qin_db: float = Field(-6.0, ge=-100.0, le=100.0)
    t310_s: float = Field(1.0, ge=0.0, le=3600.0)
    reestablish_s: float = Field(0.5, ge=0.0, le=3600.0)
    ping_pong_s: float = Field(1.0, gt=0.0, le=3600.0)


class LinkDirection(StrictModel):
    """One direction of the link: its share of the cell's time-frequency resources."""

    resource_share: float = Field(gt=0.0, le=1.0)


class RateConfig(StrictModel):
    """Rate = efficiency * B * log2(1 + SINR), capped at the peak spectral efficiency."""

    efficiency: float = Field(0.75, gt=0.0, le=1.0)
    max_spectral_efficiency: float = Field(7.4, gt=0.0, le=100.0)  # bit/s/Hz: 256-QAM, 1 layer
    sharing: Literal["equal"] = "equal"
    downlink: LinkDirection = Field(default_factory=lambda: LinkDirection(resource_share=0.8))
    uplink: LinkDirection = Field(default_factory=lambda: LinkDirection(resource_share=0.2))
    ue_tx_power_dbm: float = Field(23.0, ge=-60.0, le=60.0)
    uplink_interference_margin_db: float = Field(3.0, ge=0.0, le=100.0)


class InterferenceConfig(StrictModel):
    """How busy co-channel cells are: fixed, or growing with the vehicles they serve."""

    activity: Literal["load", "fixed"] = "load"
    fixed_activity: float = Field(1.0, ge=0.0, le=1.0)
    min_activity: float = Field(0.2, ge=0.0, le=1.0)
    full_load_vehicles: PositiveInt = Field(10, le=1_000_000)


class BackgroundLoadConfig(StrictModel):
    """Non-FL users active in every cell (M/M/inf per cell and direction): they share the cell's
    resources with the clients' transfers and add to its interference activity."""

    mean_users_down: float = Field(4.0, ge=0.0, le=100_000.0)
    mean_users_up: float = Field(2.0, ge=0.0, le=100_000.0)
    holding_s: float = Field(30.0, gt=0.0, le=1e7)  # mean time a background user stays active


class SidelinkConfig(StrictModel):
    """The V2V sidelink (PC5) of 3GPP TR 37.885: which vehicles hear each other directly, and at
    what rate. Defaults are 37.885's evaluation assumptions (Table A-1: 5.9 GHz ITS band, 23 dBm,
    3 dBi antennas at 1.5 m, 9 dB noise figure) with a 20 MHz channel."""

    environment: Literal["urban", "highway"] = "urban"  # Table 6.2.1-1's path-loss set
    carrier_ghz: float = Field(5.9, ge=0.5, le=100.0)
    bandwidth_mhz: float = Field(20.0, gt=0.0, le=5000.0)
    tx_power_dbm: float = Field(23.0, ge=-60.0, le=60.0)
    antenna_gain_dbi: float = Field(3.0, ge=-30.0, le=60.0)  # each end
    noise_figure_db: float = Field(9.0, ge=0.0, le=50.0)
    # Buildings between two vehicles make the link NLOS (the street geometry of channel.los:
    # geometry; without it no link is NLOS, as 37.885 decides NLOS by geometry). A link clear of
    # buildings is NLOSv (blockage loss) when ``geometry``: another vehicle is on the line;
    # ``stochastic``: by 37.885's LOS probability. ``always``: every link LOS.
    los: Literal["geometry", "stochastic", "always"] = "geometry"
    shadowing: bool = True
    # A link is up while its SNR is at least this (the lowest MCS decodes about here).
    min_snr_db: float = Field(0.0, ge=-30.0, le=60.0)
    efficiency: float = Field(0.75, gt=0.0, le=1.0)  # Shannon with an implementation loss
    max_spectral_efficiency: float = Field(4.8, gt=0.0, le=100.0)  # bit/s/Hz: 64-QAM, 1 layer
    max_range_m: float = Field(1000.0, gt=0.0, le=100_000.0)  # pairs farther apart are not evaluated


class RadioConfig(StrictModel):
    """The radio layer: cells, channel, handoff, rates and how often it runs."""

    step_s: PositiveFloat = 0.1
    # sumo_steps: the channel is evaluated where vehicles are at each SUMO step and RSRP is
    # interpolated in dB over the radio steps between (fast); radio_steps: evaluated at every
    # radio step at interpolated positions (exact, ~K times the channel work).
    evaluate_at: Literal["sumo_steps", "radio_steps"] = "sumo_steps"
    cells: list[CellConfig] | CellGenerators
    channel: ChannelConfig = Field(default_factory=ChannelConfig)
    handoff: HandoffConfig = Field(default_factory=HandoffConfig)
    rate: RateConfig = Field(default_factory=RateConfig)
    interference: InterferenceConfig = Field(default_factory=InterferenceConfig)
    background: BackgroundLoadConfig | None = None  # none: the clients have the cells to themselves
    sidelink: SidelinkConfig | None = None  # none: vehicles talk only to cells
    trace_period_s: PositiveFloat = 1.0
    # Cells more than 2 km outside the network's boundary are refused as a likely typo (or a
    # frame mix-up); true accepts them.
    allow_cells_outside: bool = False

    @model_validator(mode="after")
    def _cells_given(self) -> RadioConfig:
        if isinstance(self.cells, list):
            ids = [c.id for c in self.cells]
        else:
            if self.cells.hex is None and self.cells.intersections is None and not self.cells.extra:
                raise ValueError("cells: give a list of cells or at least one generator")
            ids = [c.id for c in self.cells.extra]
        if isinstance(self.cells, list) and not self.cells:
            raise ValueError("cells: the list is empty")
        if len(set(ids)) != len(ids):
            raise ValueError("cells: cell ids must be unique")
        if (self.sidelink is not None and self.sidelink.los == "geometry"
                and self.channel.los != "geometry"):
            raise ValueError("sidelink.los: geometry reads the buildings of channel.los: geometry; "
                             "set that, or sidelink.los: stochastic")
        # a step of a millionth of the period or less is judged by the scenario's step budget
        if self.trace_period_s / self.step_s <= 1e6 and not whole_multiple(self.trace_period_s,
                                                                            self.step_s):
            raise ValueError(f"trace_period_s must be a whole multiple of step_s ({self.step_s} s)")
        return self


