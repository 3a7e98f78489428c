"""FedAsync (Xie et al., 2019): keep ``per_round`` clients busy; each arrival is trained from the
model it downloaded and mixed in at once with its staleness weight."""

from __future__ import annotations

import simpy

from cosim.learning.federated.aggregation import mix, staleness_weight
from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.policies import ServerView
from cosim.learning.federated.strategies.base import (
    Decision,
    Launch,
    NewModel,
    Record,
    Selection,
    Strategy,
    register,
)
from cosim.learning.federated.training import State, TrainedUpdate
from cosim.scenario import FedAsyncConfig, FedBuffConfig


class AsyncStrategy(Strategy):
    """Clients run on their own clocks: free slots are refilled whenever a client comes back."""

    cfg: FedAsyncConfig | FedBuffConfig
    round_is_version = True

    def done(self) -> bool:
        return self.cfg.max_rounds is not None and self.host.version >= self.cfg.max_rounds

    def select(self) -> Selection:
        host = self.host
        free = host.per_round - len(host.in_flight)
        if free <= 0:
            return Selection()
        candidates = [c for c in host.candidates() if c.client not in host.in_flight]
        view = ServerView(host.env.now, host.version + 1, self.cfg.round_deadline_s)
        deadline = host.env.now + self.cfg.round_deadline_s
        return Selection([Launch(client, deadline, host.global_state)
                          for client in host.policy.select(view, candidates, free)[:free]])

    def wait(self, flights: list[simpy.Event]) -> simpy.Event:
        return self.host.env.any_of(flights)

    def on_arrival(self, attempt: Attempt, start: State) -> list[Decision]:
        host = self.host
        attempt.staleness = host.version - attempt.model_version
        decisions: list[Decision] = []
        if attempt.completed:
            [update] = host.train([(attempt, start)], self.train_seed(host.version))
            new = self.fold_in(update, start, self.weight(attempt))
            if new is not None:
                decisions.append(NewModel(new))
        return [*decisions, Record([attempt])]

    def weight(self, attempt: Attempt) -> float:
        """The update's staleness weight."""
        return staleness_weight(self.cfg.staleness, attempt.staleness, self.cfg.staleness_a,
                                self.cfg.staleness_b)

    def fold_in(self, update: TrainedUpdate, start: State, weight: float) -> State | None:
        """Take the update into the global model; the new global model when that made one."""
        raise NotImplementedError


@register
class FedAsync(AsyncStrategy):
    config = FedAsyncConfig
    cfg: FedAsyncConfig

    def fold_in(self, update: TrainedUpdate, start: State, weight: float) -> State | None:
        return mix(self.host.global_state, update.modules, self.cfg.async_alpha * weight)
