"""The whole scenario: one experiment, its sections, and the checks that span sections."""

from __future__ import annotations

from pydantic import (
    Field,
    PositiveFloat,
    model_validator,
)

from cosim.scenario.aggregation import AggregationConfig, SyncConfig
from cosim.scenario.base import SEED_MAX, FieldError, StrictModel, extension_fields, whole_multiple
from cosim.scenario.clients import ClientsConfig
from cosim.scenario.d2d import D2DConfig
from cosim.scenario.learning import LearningConfig
from cosim.scenario.limits import Workload, check_limits
from cosim.scenario.mobility import MobilityConfig
from cosim.scenario.onboarding import OnboardingConfig
from cosim.scenario.output import OutputConfig
from cosim.scenario.radio import RadioConfig
from cosim.scenario.scheduling import SchedulingConfig


class Scenario(StrictModel):
    """One experiment: what moves, what connects, what learns, and where the traces go."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    seed: int = Field(0, ge=0, le=SEED_MAX)
    duration_s: PositiveFloat
    mobility: MobilityConfig
    radio: RadioConfig | None = None
    clients: ClientsConfig = Field(default_factory=ClientsConfig)
    learning: LearningConfig | None = None
    scheduling: SchedulingConfig = Field(default_factory=SchedulingConfig)
    aggregation: AggregationConfig = Field(default_factory=SyncConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    onboarding: OnboardingConfig | None = None  # read by cosim onboarding only
    d2d: D2DConfig | None = None  # relaying and cluster aggregation over radio.sidelink

    def seeds(self) -> dict[str, int]:
        """The three streams of randomness: connectivity (mobility, radio, which vehicles carry
        clients, the policies' draws), data (learning.data.seed) and training (learning.seed);
        the last two default to the scenario's seed."""
        data = self.learning.data.seed if self.learning is not None else None
        training = self.learning.seed if self.learning is not None else None
        return {"connectivity": self.seed, "data": self.seed if data is None else data,
                "training": self.seed if training is None else training}

    @model_validator(mode="after")
    def _whole_steps(self) -> Scenario:
        check_limits(Workload(self.duration_s, self.mobility, self.radio, self.learning,
                              self.aggregation))  # first: an absurd step makes every ratio below meaningless
        step = self.mobility.step_length_s
        if not whole_multiple(self.duration_s, step):
            raise ValueError(f"duration_s ({self.duration_s} s) must be a whole multiple of "
                             f"mobility.step_length_s ({step} s)")
        if not whole_multiple(self.output.mobility_period_s, step):
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
        if (self.radio is not None and self.radio.sidelink is not None
                and self.clients.ideal_connectivity):
            raise ValueError("radio.sidelink evaluates the links of the clients' vehicles, which "
                             "clients.ideal_connectivity does without")
        if self.d2d is not None and (self.radio is None or self.radio.sidelink is None):
            raise ValueError("d2d needs radio.sidelink: relaying and clusters go over the V2V "
                             "sidelink")
        if (self.aggregation.method == "spanning_tree"
                and (self.radio is None or self.radio.sidelink is None)):
            raise ValueError("aggregation.method: spanning_tree aggregates over the V2V sidelink: "
                             "it needs radio.sidelink")
        tiers = getattr(self.aggregation, "tiers", None) or []
        if any(t.tier == "fog" for t in tiers) and (self.radio is None or self.radio.sidelink is None):
            raise ValueError("aggregation.tiers: the fog tier aggregates over the V2V sidelink: it "
                             "needs radio.sidelink")
        if self.d2d is not None and self.d2d.cluster and self.aggregation.method != "sync":
            raise ValueError("d2d.cluster: cluster aggregation runs in synchronous rounds "
                             "(aggregation.method: sync)")
        if self.radio is not None and not whole_multiple(step, self.radio.step_s):
            raise ValueError(
                f"mobility.step_length_s ({step} s) must be a whole multiple of radio.step_s "
                f"({self.radio.step_s} s): the radio runs between SUMO steps"
            )
        return self

    @model_validator(mode="after")
    def _drift_happens(self) -> Scenario:
        """A drift event after the run's end, or naming a task the model does not have, would
        change nothing: the run would look like a drift study and be none."""
        if self.learning is None or self.learning.drift is None:
            return self
        tasks = self.learning.model.tasks
        for i, event in enumerate(self.learning.drift.events):
            if event.at_s >= self.duration_s:
                raise FieldError(f"learning.drift.events.{i}.at_s",
                                 f"{event.at_s:g} s is not before the run's end (duration_s "
                                 f"{self.duration_s:g} s): the event would never happen")
            lacking = [t for t in event.tasks or [] if t not in tasks]
            if lacking:
                raise FieldError(f"learning.drift.events.{i}.tasks",
                                 f"{lacking[0]} is not among learning.model.tasks "
                                 f"({', '.join(tasks)})")
        return self

    @property
    def learning_enabled(self) -> bool:
        return self.learning is not None and self.learning.enabled


EXTENSION_FIELDS = extension_fields(Scenario)
"""Every scenario field that may name the user's own code as ``module:Name`` (a data file such
as run.json must never choose one)."""
