"""What an aggregation strategy is, and what it may ask of the server that drives it.

Flower's Strategy is the model: a strategy decides, the server owns the state. Event hooks replace
Flower's round calls because asynchronous methods do not fit a round loop. At each turn of the
server's one loop:

1. ``select()`` returns a ``Selection``: the clients to start (picked through the scheduling
   policy) and whether they open a new round. The server counts the round and launches them.
2. When nothing is in flight and the strategy has an ``idle_s``, the server waits that long and
   asks again; otherwise it waits for ``wait(in_flight)`` (all of them, or any one).
3. ``on_arrival(attempt, start)`` for every client whose round ended, in launch order; it returns
   the decisions that arrival makes (a new global model, attempts to record).
4. ``aggregate()``: a generator that may take simulated time (it yields SimPy events, e.g. a
   backhaul) and yields its decisions as it makes them: ``NewModel`` (the server stores the
   state as the next model version, and evaluates it when the strategy's cadence says so),
   ``Record`` (attempts for the participation trace) and ``RoundEnd``.

It stops when ``done()``. Training of completed updates goes through ``host.train`` with a list
of (attempt, start state), so a batched trainer can take them all at once. A strategy reads the
server through ``ServerHost`` and never assigns to it.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

import simpy

from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.deferred import Deferred, DeferredState
from cosim.learning.federated.policies import Candidate, Policy
from cosim.learning.federated.training import State, TrainedUpdate
from cosim.learning.federated.tree import TreeNode
from cosim.registry import Registry
from cosim.scenario import AggregationBase
from cosim.scenario.aggregation import method_name


@dataclass(frozen=True)
class Launch:
    """Start ``client``'s round now, due by ``deadline``, training from ``start`` if it completes;
    ``node``: its place in an aggregation tree (a cluster, a spanning tree)."""

    client: int
    deadline: float
    start: State | DeferredState
    node: TreeNode | None = None


@dataclass(frozen=True)
class Selection:
    """The clients to start now; ``new_round``: they open the next round (counted first)."""

    launches: list[Launch] = field(default_factory=list)
    new_round: bool = False


@dataclass(frozen=True)
class NewModel:
    """The next global model version (averaged when first read, where it is deferred)."""

    state: State | DeferredState


@dataclass(frozen=True)
class Record:
    """Attempts that ended, for the participation trace."""

    attempts: list[Attempt]


@dataclass(frozen=True)
class RoundEnd:
    """A round is over (strategies that evaluate by round: the server evaluates when due)."""


Decision = Selection | NewModel | Record | RoundEnd


class ServerHost(Protocol):
    """The server as a strategy sees it: what it may read and the services it may call."""

    @property
    def env(self) -> simpy.Environment: ...

    @property
    def seed(self) -> int: ...

    @property
    def per_round(self) -> int: ...

    @property
    def round(self) -> int: ...

    @property
    def version(self) -> int: ...

    @property
    def global_state(self) -> State | DeferredState: ...  # deferred while a round's updates train

    @property
    def overlap(self) -> bool: ...

    @property
    def in_flight(self) -> dict[int, Any]: ...  # client index -> its flight

    @property
    def policy(self) -> Policy: ...

    @property
    def radio(self) -> Any: ...

    @property
    def model(self) -> Any: ...

    def candidates(self) -> list[Candidate]: ...

    def form_clusters(self, chosen: list[int], candidates: list[Candidate], always: bool = False
                      ) -> dict[int, TreeNode]: ...

    def spanning_trees(self, chosen: list[int], candidates: list[Candidate], weight: str
                       ) -> dict[int, TreeNode]: ...

    def train(self, arrivals: list[tuple[Attempt, State]], seed: int) -> list[TrainedUpdate]: ...

    def train_later(self, arrivals: list[tuple[Attempt, State]], seed: int
                    ) -> Deferred[list[TrainedUpdate]]: ...


Steps = Generator[simpy.Event | Decision, Any, None]


class Strategy:
    """Base of the aggregation strategies (see the module docstring for the hooks)."""

    config: ClassVar[type[AggregationBase]]
    idle_s: ClassVar[float | None] = 5.0  # nobody to pick: look again this much later
    # when the server evaluates: at a new model version whose number is due, or at the end of a
    # round whose number is due (synchronous FedAvg: also a round without a completed update)
    evaluate_by: ClassVar[Literal["version", "round"]] = "version"
    round_is_version: ClassVar[bool] = False  # asynchronous methods: the round is the version

    def __init__(self, cfg: AggregationBase, host: ServerHost):
        self.cfg, self.host = cfg, host

    def done(self) -> bool:
        raise NotImplementedError

    def select(self) -> Selection:
        raise NotImplementedError

    def wait(self, flights: list[simpy.Event]) -> simpy.Event:
        return self.host.env.all_of(flights)

    def on_arrival(self, attempt: Attempt, start: State) -> list[Decision]:
        raise NotImplementedError

    def aggregate(self) -> Steps:
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

    def on_arrival(self, attempt: Attempt, start: State) -> list[Decision]:
        self.arrived.append((attempt, start))
        return []

    def train_round(self) -> tuple[list[Attempt], list[TrainedUpdate]]:
        """The round's attempts (in launch order), and its completed updates trained."""
        attempts, updates = self.train_round_later()
        return attempts, updates.result()

    def train_round_later(self) -> tuple[list[Attempt], Deferred[list[TrainedUpdate]]]:
        """``train_round``, with the updates perhaps still training (``host.overlap``)."""
        arrived, self.arrived = self.arrived, []
        done = sorted((x for x in arrived if x[0].completed), key=lambda x: _upload_end(x[0]))
        return [a for a, _ in arrived], self.host.train_later(done, self.train_seed(self.host.round))


def _upload_end(attempt: Attempt) -> float:
    """When a completed attempt's update reached the server."""
    assert attempt.t_upload_end is not None  # a completed attempt has uploaded
    return attempt.t_upload_end


def _strategy_class_problem(found: object) -> str | None:
    """What keeps a user's object from being a strategy class (None: nothing)."""
    if not isinstance(found, type) or not issubclass(found, Strategy):
        return "expected a subclass of cosim.learning.federated.strategies.Strategy"
    config = next((vars(c)["config"] for c in found.__mro__ if "config" in vars(c)), None)
    if not isinstance(config, type) or not issubclass(config, AggregationBase):
        return "its config must be a subclass of cosim.scenario.AggregationBase (its settings)"
    return None


REGISTRY: Registry[type[Strategy]] = Registry("aggregation method", "aggregation.method",
                                              check=_strategy_class_problem)


def register(cls: type[Strategy]) -> type[Strategy]:
    """Register a strategy under its configuration's ``method``."""
    return REGISTRY.register(method_name(cls.config))(cls)
