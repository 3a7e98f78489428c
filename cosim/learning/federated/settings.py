"""What the federated layer reads of a scenario: its own sections and a few named shared values.

The layer never holds the whole scenario: mobility and radio settings reach it through its ports,
and the two radio powers it needs (to weigh sidelink against uplink hops) are named here.
"""

from __future__ import annotations

from dataclasses import dataclass

from cosim.learning.federated.journal_checks import scenario_digest
from cosim.scenario import (
    AggregationConfig,
    ClientsConfig,
    D2DConfig,
    LearningConfig,
    Scenario,
    SchedulingConfig,
)


@dataclass(frozen=True)
class FederatedSettings:
    learning: LearningConfig
    scheduling: SchedulingConfig
    aggregation: AggregationConfig
    clients: ClientsConfig
    d2d: D2DConfig | None
    seeds: dict[str, int]  # the scenario's streams: connectivity, data, training
    # output.checkpoint: record each training call for --resume; the digest of the scenario
    # trained, which each entry holds (None: no journal)
    journal: str | None
    uplink_tx_power_dbm: float | None  # radio.rate.ue_tx_power_dbm (None without a radio)
    sidelink_tx_power_dbm: float | None  # radio.sidelink.tx_power_dbm (None without a sidelink)

    @classmethod
    def of(cls, scenario: Scenario) -> FederatedSettings:
        if scenario.learning is None:
            raise ValueError("the federated layer runs a scenario's learning section; it has none")
        radio = scenario.radio
        sidelink = radio.sidelink if radio is not None else None
        return cls(scenario.learning, scenario.scheduling, scenario.aggregation, scenario.clients,
                   scenario.d2d, scenario.seeds(),
                   scenario_digest(scenario) if scenario.output.checkpoint else None,
                   radio.rate.ue_tx_power_dbm if radio is not None else None,
                   sidelink.tx_power_dbm if sidelink is not None else None)
