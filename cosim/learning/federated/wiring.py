"""The ports the federated layer runs on, wired from the scenario: the mobility layer, and either
the radio layer or, with ``clients.ideal_connectivity``, the ideal link."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import simpy

from cosim.learning.federated.clients import ClientRegistry, EveryClientPresent, FollowVehicles
from cosim.learning.federated.d2d import SidelinkPort
from cosim.learning.federated.ideal import EndlessWindows, IdealLink
from cosim.ports import LinkPredictor, MobilityPort, RadioPort
from cosim.scenario import ClientsConfig, SchedulingConfig


class Presence(Protocol):
    """How partitions become clients: riding vehicles, or all present (ideal connectivity)."""

    def bind(self, registry: ClientRegistry) -> None: ...


@dataclass(frozen=True)
class LearningPorts:
    mobility: MobilityPort
    radio: RadioPort
    presence: Presence
    predictor: LinkPredictor  # the link-window prediction the scheduling policy sees
    sidelink: SidelinkPort | None = None  # V2V links (radio.sidelink), for the d2d section


def learning_ports(clients: ClientsConfig, sched: SchedulingConfig, env: simpy.Environment,
                   mobility: MobilityPort, radio: RadioPort | None, sidelink: SidelinkPort | None = None
                   ) -> LearningPorts:
    if clients.ideal_connectivity:  # every client present, nothing between it and the server
        return LearningPorts(mobility, IdealLink(env), EveryClientPresent(), EndlessWindows())
    if radio is None:
        raise ValueError("learning needs a radio (the scenario guarantees one)")
    if sched.policy == "oracle" or sched.predictor == "oracle":
        from cosim.radio.prediction import OraclePredictor

        assert sched.oracle_windows is not None  # the scheduling section requires it for the oracle
        predictor: LinkPredictor = OraclePredictor(sched.oracle_windows)
    else:
        predictor = radio.history_predictor()
    return LearningPorts(mobility, radio, FollowVehicles(mobility), predictor, sidelink)
