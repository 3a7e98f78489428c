"""The aggregation section: one configuration per method, told apart by ``method``.

Each method reads only its own settings, so a setting of another method is an error, not silently
ignored. Without ``method`` the section is synchronous FedAvg. A strategy in
``cosim/learning/federated/strategies/`` names the configuration it runs (its ``config`` class).
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    Tag,
    WithJsonSchema,
    field_validator,
)

from cosim.registry import USER_REFERENCE, is_user_reference
from cosim.scenario.base import USER_CODE, NameList, StrictModel


class AggregationBase(StrictModel):
    """Settings every method has: when to evaluate and when the server is done."""

    # async and hierarchical: every this many model versions
    eval_every_rounds: PositiveInt = Field(1, le=10**9)
    eval_every_s: PositiveFloat | None = None  # also evaluate at least this often (simulated)
    max_rounds: PositiveInt | None = Field(None, le=10**9)  # async and hierarchical: model versions
    end_run_at_max_rounds: bool = True  # the run ends when max_rounds are done


class StalenessSettings(StrictModel):
    """s(tau) of FedAsync (Xie et al., 2019), used by both asynchronous methods."""

    staleness: Literal["constant", "polynomial", "hinge"] = "polynomial"
    staleness_a: float = Field(0.5, ge=0.0, le=1e6)
    staleness_b: float = Field(4.0, ge=0.0, le=1e9)  # hinge: no discount up to this staleness


class SyncConfig(AggregationBase):
    """Synchronous FedAvg: a round with a deadline, module-level weighted average."""

    method: Literal["sync"] = "sync"
    round_deadline_s: PositiveFloat = 120.0
    min_round_gap_s: NonNegativeFloat = 0.0  # pause between rounds


class FedAsyncConfig(AggregationBase, StalenessSettings):
    """FedAsync: every arrival is mixed in with its staleness weight."""

    method: Literal["fedasync"]
    round_deadline_s: PositiveFloat = 120.0  # each client's budget
    async_alpha: float = Field(0.6, gt=0.0, le=1.0)  # mixing weight


class FedBuffConfig(AggregationBase, StalenessSettings):
    """FedBuff: staleness-weighted deltas applied every ``buffer_size`` arrivals."""

    method: Literal["fedbuff"]
    round_deadline_s: PositiveFloat = 120.0  # each client's budget
    buffer_size: PositiveInt = Field(5, le=1_000_000)  # arrivals per aggregation
    server_lr: float = Field(1.0, gt=0.0, le=1e6)


class TierRule(StrictModel):
    """Where a group of modules is aggregated (HF-FMs: modules aligned with the tiers).

    ``modules``: patterns over the model's module names (``peft.image.*``, ``task_adapter``,
    ``heads.*``; fnmatch). ``cloud``: averaged over the edges every ``every`` edge rounds (and
    handed back to every edge); ``edge``: averaged at each cell only, never at the cloud (each
    cell's clients keep a model of their area); ``fog``: averaged only among the selected clients
    of a cell that hear each other over the sidelink (clusters of the round), each of them keeping
    its cluster's average (needs radio.sidelink)."""

    modules: NameList = Field(min_length=1)
    tier: Literal["fog", "edge", "cloud"]
    every: PositiveInt = Field(1, le=1_000_000)  # cloud: in edge rounds


class HierarchicalConfig(AggregationBase):
    """Edge FedAvg at every cell each period; cloud average every ``cloud_every`` edge rounds."""

    method: Literal["hierarchical"]
    edge_period_s: PositiveFloat = 60.0  # an edge round at every cell
    cloud_every: PositiveInt = Field(3, le=1_000_000)  # cloud aggregation every this many edge rounds
    macro_to_cloud_ms: float = Field(10.0, ge=0.0, le=1e7)
    small_to_macro_ms: float = Field(2.0, ge=0.0, le=1e7)
    backhaul_gbps: float = Field(1.0, gt=0.0, le=1e6)
    # Per module group, the tier that aggregates it (first matching rule); modules no rule names
    # are cloud modules every ``cloud_every``. None: every module at the cloud (as above).
    tiers: list[TierRule] | None = None


class SpanningTreeConfig(AggregationBase):
    """Fed-Span: synchronous rounds whose updates are aggregated along the minimum spanning
    forest of the live graph of the selected clients and the server (sidelinks between clients,
    cellular uplinks to the server); needs radio.sidelink."""

    method: Literal["spanning_tree"]
    round_deadline_s: PositiveFloat = 120.0
    min_round_gap_s: NonNegativeFloat = 0.0  # pause between rounds
    # what an edge costs: one update's seconds over it at its rate now, or the joules its
    # transmitter spends on it
    weight: Literal["latency", "energy"] = "latency"
    # a node waits for its children until the time left to the deadline is this many times its
    # estimated path time to the server
    wait_margin: float = Field(2.0, ge=1.0, le=100.0)


class UserAggregationConfig(AggregationBase):
    """A strategy of the user's own, ``method: package.module:Class``: the settings it takes
    beyond the common ones are checked against the class's own ``config`` once the rest of the
    scenario is valid (its module is imported only then)."""

    model_config = ConfigDict(extra="allow")  # the strategy's own settings: checked by its config

    # package.module:Class, a subclass of cosim's Strategy
    method: Annotated[str, WithJsonSchema({"type": "string", "pattern": USER_REFERENCE.pattern}),
                      USER_CODE]

    @field_validator("method")
    @classmethod
    def _reference(cls, v: str) -> str:
        if not is_user_reference(v):
            raise ValueError(f"{v!r}: give a module and a class, as module:Class")
        return v


USER_METHOD = "module:Class"  # the union's tag for a user's strategy


def _method(value: Any) -> str | None:
    method = value.get("method", "sync") if isinstance(value, dict) else getattr(value, "method", None)
    return USER_METHOD if isinstance(method, str) and ":" in method else method


def method_name(config: type[AggregationBase]) -> str:
    """The ``method`` value that selects this configuration."""
    return typing.get_args(config.model_fields["method"].annotation)[0]


# To add a method: its configuration class above, and here.
METHOD_CONFIGS = {method_name(c): c
                  for c in (SyncConfig, FedAsyncConfig, FedBuffConfig, HierarchicalConfig,
                            SpanningTreeConfig)}
AGGREGATIONS = tuple(METHOD_CONFIGS)

if TYPE_CHECKING:
    # What mypy sees: the union built below from METHOD_CONFIGS, written out.
    AggregationConfig = Union[  # noqa: UP007
        SyncConfig, FedAsyncConfig, FedBuffConfig, HierarchicalConfig, SpanningTreeConfig,
        UserAggregationConfig]
else:
    AggregationConfig = Annotated[
        Union[(*(Annotated[c, Tag(m)] for m, c in METHOD_CONFIGS.items()),  # noqa: UP007
               Annotated[UserAggregationConfig, Tag(USER_METHOD)])],
        Discriminator(_method),
    ]
"""One of the method configurations, chosen by ``method`` (default ``sync``)."""
