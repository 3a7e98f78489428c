"""The scenario: one validated pydantic object read by the CLI, the engine and the report.

Defaults live here and nowhere else, one module per section. Unknown keys are rejected (with a
did-you-mean), relative input paths are resolved against the YAML file's folder, and a section
that a later layer will bring but that is not supported yet is an error rather than silently
ignored.
"""

from cosim.names import MODALITIES, TASKS
from cosim.scenario.aggregation import (
    AGGREGATIONS,
    METHOD_CONFIGS,
    AggregationBase,
    AggregationConfig,
    FedAsyncConfig,
    FedBuffConfig,
    HierarchicalConfig,
    SpanningTreeConfig,
    SyncConfig,
    UserAggregationConfig,
)
from cosim.scenario.base import InputDir, InputFile, StrictModel, TraceFile, whole_multiple
from cosim.scenario.clients import ClientsConfig, DeviceProfile
from cosim.scenario.d2d import D2DConfig
from cosim.scenario.experiment import EXTENSION_FIELDS, Scenario
from cosim.scenario.learning import (
    SYNTHETIC_CHECKPOINT,
    BalancingConfig,
    DataConfig,
    DeployedModelConfig,
    EvaluationConfig,
    LearningConfig,
    LocalTrainingConfig,
    ModelConfig,
    PeftConfig,
    PersonalisationConfig,
    SyntheticDataConfig,
)
from cosim.scenario.mobility import (
    GeoOrigin,
    MobilityConfig,
    ParkingDemand,
    PlainNetwork,
    RandomTripsDemand,
)
from cosim.scenario.onboarding import ONBOARDING_METHODS, OnboardingConfig
from cosim.scenario.output import OutputConfig
from cosim.scenario.radio import (
    BackgroundLoadConfig,
    CellConfig,
    CellGenerators,
    CellTemplate,
    ChannelConfig,
    HandoffConfig,
    HexLayout,
    InterferenceConfig,
    IntersectionLayout,
    LinkDirection,
    RadioConfig,
    RateConfig,
    SidelinkConfig,
)
from cosim.scenario.scheduling import SchedulingConfig

__all__ = [
    "AGGREGATIONS", "EXTENSION_FIELDS", "METHOD_CONFIGS", "MODALITIES", "ONBOARDING_METHODS",
    "SYNTHETIC_CHECKPOINT",
    "TASKS", "AggregationBase", "AggregationConfig", "BackgroundLoadConfig", "BalancingConfig", "CellConfig",
    "CellGenerators", "CellTemplate", "ChannelConfig", "ClientsConfig", "D2DConfig", "DataConfig",
    "DeployedModelConfig", "DeviceProfile", "EvaluationConfig", "FedAsyncConfig", "FedBuffConfig",
    "GeoOrigin",
    "HandoffConfig", "HexLayout", "HierarchicalConfig", "InputDir", "InputFile",
    "InterferenceConfig", "IntersectionLayout", "LearningConfig", "LinkDirection",
    "LocalTrainingConfig", "MobilityConfig", "ModelConfig", "OnboardingConfig", "OutputConfig",
    "ParkingDemand", "PeftConfig", "PersonalisationConfig", "PlainNetwork", "RadioConfig",
    "RandomTripsDemand",
    "RateConfig", "Scenario", "SchedulingConfig", "SidelinkConfig", "SpanningTreeConfig", "StrictModel",
    "SyncConfig",
    "SyntheticDataConfig", "TraceFile", "UserAggregationConfig", "whole_multiple",
]
