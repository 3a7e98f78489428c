"""What an aggregation strategy is, and what it may ask of the server that drives it.

Flower's Strategy is the model, with event hooks because asynchronous methods do not fit a round
loop. The server's one loop, at each turn:

1. ``select()``: the strategy picks clients (through the scheduling policy) and starts them with
   ``host.launch``; its round counters move here.
2. When nothing is in flight and the strategy has an ``idle_s``, the server waits that long and
   asks again; otherwise it waits for ``wait(in_flight)`` (all of them, or any one).
3. ``on_arrival(attempt, start)`` for every client whose round ended, in launch order.
4. ``aggregate()``: a generator (it may take simulated time, e.g. a backhaul) that turns what
   arrived into the next global model.

It stops when ``done()``. Training of completed updates goes through ``host.train`` with a list
of (attempt, start state), so a batched trainer can take them all at once.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, ClassVar, Protocol

import simpy

from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.deferred import Deferred
from cosim.learning.federated.policies import Candidate
from cosim.learning.federated.training import State, TrainedUpdate
from cosim.scenario import AggregationBase
from cosim.scenario.aggregation import method_name


class ServerHost(Protocol):
    """The server as a strategy sees it."""

    env: simpy.Environment
    seed: int
    per_round: int
    round: int
    version: int
    global_state: State  # a DeferredState while a sync round's updates train (overlap)
    overlap: bool
    in_flight: dict[int, Any]  # client index -> its flight

    @property
    def policy(self) -> Any: ...

    @property
    def radio(self) -> Any: ...

    def candidates(self) -> list[Candidate]: ...

    def launch(self, client: int, deadline: float, start: State) -> None: ...

    def train(self, arrivals: list[tuple[Attempt, State]], seed: int) -> list[TrainedUpdate]: ...

    def train_later(self, arrivals: list[tuple[Attempt, State]], seed: int
                    ) -> Deferred[list[TrainedUpdate]]: ...

    def record(self, attempts: list[Attempt]) -> None: ...

    def evaluate(self) -> None: ...


class Strategy:
    """Base of the aggregation strategies (see the module docstring for the hooks)."""

    config: ClassVar[type[AggregationBase]]
    idle_s: ClassVar[float | None] = 5.0  # nobody to pick: look again this much later

    def __init__(self, cfg: AggregationBase, host: ServerHost):
        self.cfg, self.host = cfg, host

    def done(self) -> bool:
        raise NotImplementedError

    def select(self) -> None:
        raise NotImplementedError

    def wait(self, flights: list[simpy.Event]) -> simpy.Event:
        return self.host.env.all_of(flights)

    def on_arrival(self, attempt: Attempt, start: State) -> None:
        raise NotImplementedError

    def aggregate(self) -> Generator[simpy.Event, Any, None]:
        yield from ()

    def train_seed(self, counter: int) -> int:
        """The seed of a local update trained at this round (or model version)."""
        return self.host.seed * 100_003 + counter


class RoundStrategy(Strategy):
    """A strategy whose clients' rounds end together (synchronous FedAvg, hierarchical): arrivals
    are collected, and the completed ones trained at the round's end, in the order they reached
    the server."""

    def __init__(self, cfg: AggregationBase, host: ServerHost):
        super().__init__(cfg, host)
        self.arrived: list[tuple[Attempt, State]] = []

    def on_arrival(self, attempt: Attempt, start: State) -> None:
        self.arrived.append((attempt, start))

    def train_round(self) -> tuple[list[Attempt], list[TrainedUpdate]]:
        """The round's attempts (in launch order), and its completed updates trained."""
        attempts, updates = self.train_round_later()
        return attempts, updates.result()

    def train_round_later(self) -> tuple[list[Attempt], Deferred[list[TrainedUpdate]]]:
        """``train_round``, with the updates perhaps still training (``host.overlap``)."""
        arrived, self.arrived = self.arrived, []
        done = sorted((x for x in arrived if x[0].completed), key=lambda x: x[0].t_upload_end)
        return [a for a, _ in arrived], self.host.train_later(done, self.train_seed(self.host.round))


REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: type[Strategy]) -> type[Strategy]:
    """Register a strategy under its configuration's ``method``."""
    REGISTRY[method_name(cls.config)] = cls
    return cls
