"""The scenario: one validated pydantic object read by the CLI, the engine and the report.

Defaults live here and nowhere else. Unknown keys are rejected (with a did-you-mean), relative
input paths are resolved against the YAML file's folder, and a section that a later layer will
bring but that is not supported yet is an error rather than silently ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationInfo,
    field_validator,
    model_validator,
)


def _whole_multiple(value: float, step: float) -> bool:
    ratio = value / step
    return ratio > 1 - 1e-9 and abs(ratio - round(ratio)) < 1e-9


class StrictModel(BaseModel):
    """Base for every scenario section: unknown keys are errors, defaults are validated."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def _resolve_input_file(value: Path, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir", "."))
    path = value if value.is_absolute() else base / value
    path = path.resolve()
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


InputFile = Annotated[Path, AfterValidator(_resolve_input_file)]
"""A file the scenario reads; relative to the YAML file's folder; must exist."""


def _resolve_trace(value: Path, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir", "."))
    path = (value if value.is_absolute() else base / value).resolve()
    if path.is_dir():
        path = path / "mobility.parquet"
    if not path.is_file():
        raise ValueError(f"file not found: {path}")
    return path


TraceFile = Annotated[Path, AfterValidator(_resolve_trace)]
"""A recorded mobility trace: a run folder or its mobility.parquet."""


class PlainNetwork(StrictModel):
    """A network written as plain SUMO XML and built (cached) with netconvert."""

    nodes: InputFile
    edges: InputFile
    netconvert_options: list[str] = Field(
        default_factory=lambda: [
            "--tls.guess", "true",
            "--junctions.join", "true",
            "--junctions.join-dist", "18",
            "--no-turnarounds.except-deadend", "true",
        ]
    )


class ParkingDemand(StrictModel):
    """Parking areas placed on the network and a share of trips that park on the way."""

    areas: PositiveInt = 20
    share: float = Field(0.25, ge=0.0, le=1.0)
    duration_s: tuple[PositiveFloat, PositiveFloat] = (300.0, 1800.0)
    min_edge_length_m: PositiveFloat = 80.0

    @model_validator(mode="after")
    def _ordered(self) -> ParkingDemand:
        if self.duration_s[0] > self.duration_s[1]:
            raise ValueError("duration_s must be [min, max] with min <= max")
        return self


class RandomTripsDemand(StrictModel):
    """Demand from SUMO's randomTrips.py, routed with duarouter (cached per seed)."""

    period_s: PositiveFloat | list[PositiveFloat] = 1.0
    begin_s: NonNegativeFloat = 0.0
    end_s: PositiveFloat | None = None  # default: warm-up + duration
    fringe_factor: PositiveFloat = 5.0
    min_distance_m: NonNegativeFloat = 300.0
    parking: ParkingDemand | None = None
    random_trips_options: list[str] = Field(default_factory=list)


class GeoOrigin(StrictModel):
    """Latitude/longitude of the network's (0, 0); lon/lat are computed on a local tangent plane."""

    lat: float = Field(ge=-90.0, le=90.0)
    lon: float = Field(ge=-180.0, le=180.0)


class MobilityConfig(StrictModel):
    """Where vehicles come from: a SUMO network, its demand, and how SUMO is driven."""

    backend: Literal["libsumo", "traci", "gui"] = "libsumo"
    step_length_s: PositiveFloat = 1.0
    warmup_s: NonNegativeFloat = 0.0
    sumocfg: InputFile | None = None
    net: InputFile | None = None
    plain: PlainNetwork | None = None
    netgenerate: list[str] | None = None
    routes: list[InputFile] = Field(default_factory=list)
    additional: list[InputFile] = Field(default_factory=list)
    demand: RandomTripsDemand | None = None
    geo_origin: GeoOrigin | None = None
    sumo_options: list[str] = Field(default_factory=list)
    # A recorded run's mobility trace drives the radio and learning instead of SUMO; the network
    # is still read (cell placement, plots); demand and warm-up are not used.
    replay: TraceFile | None = None

    @model_validator(mode="after")
    def _one_network(self) -> MobilityConfig:
        given = [k for k in ("sumocfg", "net", "plain", "netgenerate") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one network source of sumocfg, net, plain, netgenerate"
                + (f" (got {', '.join(given)})" if given else "")
            )
        if not self.sumocfg and not self.routes and self.demand is None and self.replay is None:
            raise ValueError("no traffic: give routes or demand (or a sumocfg that has them)")
        return self


class CellTemplate(StrictModel):
    """Radio parameters shared by a cell and by the cells a layout generator places."""

    height_m: PositiveFloat = 25.0
    kind: Literal["macro", "small", "rsu"] = "macro"
    tx_power_dbm: float = 46.0
    antenna_gain_dbi: float = 8.0
    carrier_ghz: float = Field(3.5, ge=0.5, le=100.0)  # 38.901's validity range
    bandwidth_mhz: PositiveFloat = 40.0
    scenario: Literal["uma", "umi"] = "uma"


class CellConfig(CellTemplate):
    """One base station / small cell / RSU at a position in the network's frame (metres)."""

    id: str = Field(min_length=1)
    x: float
    y: float


class HexLayout(CellTemplate):
    """Macro sites on a hexagonal lattice: a centre site and ``rings`` rings around it."""

    isd_m: PositiveFloat = 500.0
    rings: int = Field(1, ge=0, le=6)
    center: tuple[float, float] | None = None  # default: the centre of the network
    id_prefix: str = "macro"
    antenna_gain_dbi: float = 17.0  # a sector panel's peak gain, applied in every direction


class IntersectionLayout(CellTemplate):
    """Small cells on the network's most central intersections (networkx), spaced apart."""

    count: PositiveInt = 12
    rank_by: Literal["betweenness", "degree"] = "betweenness"
    min_spacing_m: NonNegativeFloat = 200.0
    id_prefix: str = "small"
    height_m: PositiveFloat = 10.0
    kind: Literal["macro", "small", "rsu"] = "small"
    tx_power_dbm: float = 30.0
    antenna_gain_dbi: float = 5.0
    carrier_ghz: float = Field(3.7, ge=0.5, le=100.0)
    bandwidth_mhz: PositiveFloat = 20.0
    scenario: Literal["uma", "umi"] = "umi"


class CellGenerators(StrictModel):
    """Cells placed by generators instead of (or as well as) listed one by one."""

    hex: HexLayout | None = None
    intersections: IntersectionLayout | None = None
    extra: list[CellConfig] = Field(default_factory=list)


class ChannelConfig(StrictModel):
    """Large-scale channel: 3GPP TR 38.901 path loss, LOS, shadowing, vehicle penetration."""

    model: Literal["38.901", "free_space", "log_distance"] = "38.901"
    los: Literal["stochastic", "always", "never"] = "stochastic"
    shadowing: bool = True
    # Shadow-fading correlation between sites, as in TR 36.814 Table A.2.1.1.2-3 (0.5).
    shadow_site_correlation: float = Field(0.5, ge=0.0, le=1.0)
    penetration_mean_db: NonNegativeFloat = 9.0  # 38.901 7.4.3.2: N(9, 5^2) dB
    penetration_std_db: NonNegativeFloat = 5.0
    log_distance_exponent: PositiveFloat = 3.5
    ue_height_m: PositiveFloat = 1.5
    noise_figure_db: NonNegativeFloat = 9.0
    subcarrier_khz: PositiveFloat = 30.0


class HandoffConfig(StrictModel):
    """A3 handoff with L3 filtering and time-to-trigger; radio link failure via Qout and T310."""

    a3_offset_db: float = 3.0
    hysteresis_db: NonNegativeFloat = 0.0
    ttt_s: NonNegativeFloat = 0.256
    l3_filter_a: float = Field(0.5, gt=0.0, le=1.0)  # per measurement period (k = 4)
    measurement_period_s: PositiveFloat = 0.2  # RSRP measurement period (TS 38.133, FR1)
    interruption_s: NonNegativeFloat = 0.05
    qout_db: float = -8.0
    qin_db: float = -6.0
    t310_s: NonNegativeFloat = 1.0
    reestablish_s: NonNegativeFloat = 0.5
    ping_pong_s: PositiveFloat = 1.0


class LinkDirection(StrictModel):
    """One direction of the link: its share of the cell's time-frequency resources."""

    resource_share: float = Field(gt=0.0, le=1.0)


class RateConfig(StrictModel):
    """Rate = efficiency * B * log2(1 + SINR), capped at the peak spectral efficiency."""

    efficiency: float = Field(0.75, gt=0.0, le=1.0)
    max_spectral_efficiency: PositiveFloat = 7.4  # bit/s/Hz: 256-QAM, one layer
    sharing: Literal["equal"] = "equal"
    downlink: LinkDirection = Field(default_factory=lambda: LinkDirection(resource_share=0.8))
    uplink: LinkDirection = Field(default_factory=lambda: LinkDirection(resource_share=0.2))
    ue_tx_power_dbm: float = 23.0
    uplink_interference_margin_db: NonNegativeFloat = 3.0


class InterferenceConfig(StrictModel):
    """How busy co-channel cells are: fixed, or growing with the vehicles they serve."""

    activity: Literal["load", "fixed"] = "load"
    fixed_activity: float = Field(1.0, ge=0.0, le=1.0)
    min_activity: float = Field(0.2, ge=0.0, le=1.0)
    full_load_vehicles: PositiveInt = 10


class RadioConfig(StrictModel):
    """The radio layer: cells, channel, handoff, rates and how often it runs."""

    step_s: PositiveFloat = 0.1
    cells: list[CellConfig] | CellGenerators
    channel: ChannelConfig = Field(default_factory=ChannelConfig)
    handoff: HandoffConfig = Field(default_factory=HandoffConfig)
    rate: RateConfig = Field(default_factory=RateConfig)
    interference: InterferenceConfig = Field(default_factory=InterferenceConfig)
    trace_period_s: PositiveFloat = 1.0

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
        if not _whole_multiple(self.trace_period_s, self.step_s):
            raise ValueError(f"trace_period_s must be a whole multiple of step_s ({self.step_s} s)")
        return self


TASKS = ("seg3d", "det3d", "pan2d", "det2d")
MODALITIES = ("image", "lidar", "text")


SYNTHETIC_CHECKPOINT = "synthetic"


def _resolve_checkpoint(value: str | None, info: ValidationInfo) -> Path | str | None:
    """A local weights file, or ``synthetic`` (cosim's own pre-training, built once and cached);
    any other bare name such as ``openai`` is a hub tag, which cannot be used here."""
    if value is None or value == SYNTHETIC_CHECKPOINT:
        return value
    text = str(value)
    if "/" not in text and "." not in text:
        raise ValueError(
            f"{text!r} is an open_clip hub tag and nothing is downloaded here: fetch the weights "
            "on a machine with internet (open_clip.create_model(name, pretrained=tag) caches them) "
            "and set this to the local .bin/.pt/.safetensors file"
        )
    return _resolve_input_file(Path(text), info)


class PeftConfig(StrictModel):
    """Which parameter-efficient modules each tower gets, and their sizes."""

    method: Literal["adapter", "lora", "prompt", "moe_adapter"] = "adapter"
    branches: list[Literal["image", "lidar", "text"]] = Field(
        default_factory=lambda: ["image", "lidar", "text"])
    last_blocks: PositiveInt = 2  # PEFT in the upper blocks (the authors' choice)
    bottleneck: PositiveInt = 32
    scale: float = 0.1
    lora_rank: PositiveInt = 4
    lora_alpha: PositiveFloat = 8.0
    prompt_tokens: PositiveInt = 8
    experts: PositiveInt = 4
    top_k: PositiveInt = 1
    balance_weight: NonNegativeFloat = 0.01

    @model_validator(mode="after")
    def _top_k(self) -> PeftConfig:
        if self.top_k > self.experts:
            raise ValueError("top_k must not exceed experts")
        return self


class ModelConfig(StrictModel):
    """The multi-modal multi-task CLIP model every client fine-tunes."""

    name: str = "cosim-tiny"  # an open_clip configuration
    checkpoint: Annotated[str | None, AfterValidator(_resolve_checkpoint)] = None
    peft: PeftConfig = Field(default_factory=PeftConfig)
    task_adapter: bool = True  # the shared task adapter of FedAdapt
    task_adapter_bottleneck: PositiveInt = 64
    classifier: Literal["linear", "text"] = "linear"  # "text": cosine with class prompts
    tasks: list[Literal["seg3d", "det3d", "pan2d", "det2d"]] = Field(
        default_factory=lambda: list(TASKS))
    head_channels: PositiveInt = 64
    bev_range_m: PositiveFloat = 40.0  # the 3D detection grid covers +-range around the ego car


class BalancingConfig(StrictModel):
    """How per-task gradients of the shared modules are combined."""

    method: Literal["sum", "gradnorm", "cagrad"] = "sum"
    gradnorm_alpha: NonNegativeFloat = 1.5
    gradnorm_lr: PositiveFloat = 0.025
    cagrad_c: NonNegativeFloat = 0.4


class LocalTrainingConfig(StrictModel):
    """One client's local update: epochs over its data with a fresh optimiser."""

    epochs: PositiveInt = 1
    batch_size: PositiveInt = 8
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: PositiveFloat = 1e-3
    weight_decay: NonNegativeFloat = 0.0
    momentum: float = Field(0.9, ge=0.0, lt=1.0)  # sgd only
    bf16: bool = False  # autocast on CUDA only
    device: Literal["auto", "cpu", "cuda"] = "auto"


def _resolve_input_dir(value: Path, info: ValidationInfo) -> Path:
    base = Path((info.context or {}).get("base_dir", "."))
    path = (value if value.is_absolute() else base / value).resolve()
    if not path.is_dir():
        raise ValueError(f"folder not found: {path}")
    return path


InputDir = Annotated[Path, AfterValidator(_resolve_input_dir)]


class SyntheticDataConfig(StrictModel):
    """Synthetic segments in the Waymo v2 layout, generated once per setting and cached."""

    segments: PositiveInt = 24
    frames: PositiveInt = 40
    seed: int = Field(0, ge=0)
    hz: PositiveFloat = 2.0  # frame rate: 40 frames at 2 Hz span a Waymo segment's 20 s


class DataConfig(StrictModel):
    """Where client data comes from and how it is split among clients."""

    root: InputDir | None = None  # a Waymo folder; none: synthetic data (generated, cached)
    format: Literal["v2", "v1"] = "v2"  # v2: Parquet components; v1: *.tfrecord segments
    synthetic: SyntheticDataConfig = Field(default_factory=SyntheticDataConfig)
    partition: Literal["segment", "dirichlet"] = "segment"  # one segment per client (paper)
    dirichlet_alpha: PositiveFloat = 0.5  # over cities, for partition: dirichlet
    clients: PositiveInt = 20
    heldout_segments: NonNegativeInt = 4  # never given to a client; global evaluation
    frame_stride: PositiveInt = 1
    no_lidar_share: float = Field(0.0, ge=0.0, le=1.0)  # clients without a LiDAR
    camera_tasks_only_share: float = Field(0.0, ge=0.0, le=1.0)  # clients with 2D tasks only
    cache_frames: NonNegativeInt = 4096  # decoded samples kept in memory


class EvaluationConfig(StrictModel):
    """How the global model is scored on held-out data."""

    # 2D boxes lower than this share of the image height are "don't care" (neither missed nor
    # matched), as KITTI's minimum heights: at the tiny model's 64-px input they are 1-3 px.
    det2d_min_height: float = Field(0.0625, ge=0.0, lt=1.0)
    # 3D detection also gets nuScenes-style AP by BEV centre distance at these thresholds.
    det3d_center_thresholds_m: list[PositiveFloat] = Field(
        default_factory=lambda: [0.5, 1.0, 2.0, 4.0], min_length=1)
    tasks: list[Literal["seg3d", "det3d", "pan2d", "det2d"]] | None = None  # none: every task


class LearningConfig(StrictModel):
    """The federated trainer: the model, its data, local training and gradient balancing."""

    enabled: bool = True
    model: ModelConfig = Field(default_factory=ModelConfig)
    balancing: BalancingConfig = Field(default_factory=BalancingConfig)
    local: LocalTrainingConfig = Field(default_factory=LocalTrainingConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    # The starting global model: a run's global_modules.pt. Modules the model lacks are skipped
    # (a shared task adapter, for a model without one); modules the file lacks keep their seeded
    # initialisation (the head of a task that arrives).
    init_modules: InputFile | None = None
    # Modules clients neither train nor upload (e.g. heads.seg3d): they still run forward, so
    # their tasks' losses keep shaping the shared modules.
    frozen_modules: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _frozen_are_modules(self) -> LearningConfig:
        known = ("task_adapter", *(f"heads.{t}" for t in TASKS))
        for name in self.frozen_modules:
            if name not in known and not name.startswith("peft."):
                raise ValueError(f"frozen_modules: unknown module {name!r} (task_adapter, "
                                 "heads.<task> or peft.<branch>.<module>)")
        return self


class OutputConfig(StrictModel):
    """Where traces go and how densely they are sampled."""

    root: Path = Path("runs")  # relative to the working directory: runs/<name>-<timestamp>
    mobility_period_s: PositiveFloat = 1.0
    row_group_rows: PositiveInt = 65536


class DeviceProfile(StrictModel):
    """A vehicle's onboard computer: how fast it trains, driving and parked."""

    name: str = "onboard"
    flops: PositiveFloat = 4e12  # peak FLOP/s of the onboard accelerator
    efficiency: float = Field(0.3, gt=0.0, le=1.0)  # achieved share of peak on training
    driving_share: float = Field(0.25, ge=0.0, le=1.0)  # left for training while driving
    parked_share: float = Field(1.0, ge=0.0, le=1.0)  # left for training while parked
    weight: PositiveFloat = 1.0  # relative frequency among client vehicles


class ClientsConfig(StrictModel):
    """Which SUMO vehicles are federated clients, and their devices."""

    count: PositiveInt = 20  # = the data partitions
    vehicle_type: str | None = None  # only vehicles of this SUMO vType
    vehicles: list[str] | None = None  # only these SUMO vehicle ids
    share: float = Field(1.0, gt=0.0, le=1.0)  # of eligible entering vehicles, seeded draw
    rebind: bool = True  # a partition whose vehicle left waits for the next eligible vehicle
    profiles: list[DeviceProfile] = Field(default_factory=lambda: [DeviceProfile()])
    # Every client always present and every selected client completes: no radio in the way (the
    # paper's own setting), to set against connectivity-gated rounds.
    ideal_connectivity: bool = False


POLICIES = ("all_connected", "random", "availability_aware", "rate_aware", "deadline_aware",
            "modality_task_aware", "oort", "oracle")


class SchedulingConfig(StrictModel):
    """Who is picked at the start of a round."""

    policy: str = "availability_aware"  # a registered name or a dotted path module:Class
    per_round: PositiveInt = 10
    predictor: Literal["history", "oracle"] = "history"
    # oracle: link_windows.parquet of a run of the same scenario and seed (identical connectivity)
    oracle_windows: InputFile | None = None

    @field_validator("policy")
    @classmethod
    def _known_policy(cls, v: str) -> str:
        if v not in POLICIES and ":" not in v:
            raise ValueError(f"unknown policy {v!r} (known: {', '.join(POLICIES)}; or module:Class)")
        return v

    @model_validator(mode="after")
    def _oracle_needs_windows(self) -> SchedulingConfig:
        if (self.policy == "oracle" or self.predictor == "oracle") and self.oracle_windows is None:
            raise ValueError("the oracle needs oracle_windows: the link_windows.parquet of a run of "
                             "this scenario and seed (run it once with another policy)")
        return self


class AggregationConfig(StrictModel):
    """How completed updates become the next global model."""

    method: Literal["sync", "fedasync", "fedbuff", "hierarchical"] = "sync"
    round_deadline_s: PositiveFloat = 120.0  # sync: the round; async: each client's budget
    min_round_gap_s: NonNegativeFloat = 0.0  # pause between rounds
    eval_every_rounds: PositiveInt = 1  # async: every this many model versions
    eval_every_s: PositiveFloat | None = None  # also evaluate at least this often (simulated)
    max_rounds: PositiveInt | None = None  # async: model versions
    end_run_at_max_rounds: bool = True  # the run ends when max_rounds are done
    async_alpha: float = Field(0.6, gt=0.0, le=1.0)  # fedasync mixing weight
    staleness: Literal["constant", "polynomial", "hinge"] = "polynomial"
    staleness_a: NonNegativeFloat = 0.5
    staleness_b: NonNegativeFloat = 4.0  # hinge: no discount up to this staleness
    buffer_size: PositiveInt = 5  # fedbuff: arrivals per aggregation
    server_lr: PositiveFloat = 1.0  # fedbuff
    edge_period_s: PositiveFloat = 60.0  # hierarchical: an edge round at every cell
    cloud_every: PositiveInt = 3  # hierarchical: cloud aggregation every this many edge rounds
    macro_to_cloud_ms: NonNegativeFloat = 10.0
    small_to_macro_ms: NonNegativeFloat = 2.0
    backhaul_gbps: PositiveFloat = 1.0




ONBOARDING_METHODS = ("FedAdapt", "NTA", "NTA+GR", "NTA+CA", "FedAdapt_no_CA",
                      "FedAdapt_no_CA+GR")


class OnboardingConfig(StrictModel):
    """The paper's task-onboarding study (``cosim onboarding``): one task arrives after the
    other three were learnt; methods differ in the shared task adapter and gradient balancing."""

    arriving_tasks: list[Literal["seg3d", "det3d", "pan2d", "det2d"]] = Field(
        default_factory=lambda: list(TASKS), min_length=1)
    methods: list[Literal[ONBOARDING_METHODS]] = Field(  # type: ignore[valid-type]
        default_factory=lambda: list(ONBOARDING_METHODS), min_length=1)
    pretrain_rounds: PositiveInt = 12  # FedAvg rounds on the three other tasks
    rounds: PositiveInt = 8  # onboarding rounds per method
    connectivity: list[Literal["gated", "ideal"]] = Field(
        default_factory=lambda: ["gated", "ideal"], min_length=1)


class Scenario(StrictModel):
    """One experiment: what moves, what connects, what learns, and where the traces go."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0)
    duration_s: PositiveFloat
    mobility: MobilityConfig
    radio: RadioConfig | None = None
    clients: ClientsConfig = Field(default_factory=ClientsConfig)
    learning: LearningConfig | None = None
    scheduling: SchedulingConfig = Field(default_factory=SchedulingConfig)
    aggregation: AggregationConfig = Field(default_factory=AggregationConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    onboarding: OnboardingConfig | None = None  # read by cosim onboarding only

    @model_validator(mode="after")
    def _whole_steps(self) -> Scenario:
        step = self.mobility.step_length_s
        if not _whole_multiple(self.duration_s, step):
            raise ValueError(f"duration_s ({self.duration_s} s) must be a whole multiple of "
                             f"mobility.step_length_s ({step} s)")
        if not _whole_multiple(self.output.mobility_period_s, step):
            raise ValueError(
                f"output.mobility_period_s ({self.output.mobility_period_s} s) must be a whole "
                f"multiple of mobility.step_length_s ({step} s)"
            )
        if self.learning_enabled and self.radio is None and not self.clients.ideal_connectivity:
            raise ValueError("learning needs a radio section: connectivity decides who completes "
                             "(or clients.ideal_connectivity: true)")
        if (self.learning_enabled and self.clients.ideal_connectivity
                and self.aggregation.method == "hierarchical"):
            raise ValueError("aggregation.method: hierarchical needs cells, which ideal "
                             "connectivity does without")
        if self.radio is not None and not _whole_multiple(step, self.radio.step_s):
            raise ValueError(
                f"mobility.step_length_s ({step} s) must be a whole multiple of radio.step_s "
                f"({self.radio.step_s} s): the radio runs between SUMO steps"
            )
        return self

    @property
    def learning_enabled(self) -> bool:
        return self.learning is not None and self.learning.enabled
