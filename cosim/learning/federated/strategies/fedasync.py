"""FedAsync (Xie et al., 2019): keep ``per_round`` clients busy; each arrival is trained from the
model it downloaded and mixed in at once with its staleness weight."""

from __future__ import annotations

from cosim.learning.federated.aggregation import mix, staleness_weight
from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.policies import ServerView
from cosim.learning.federated.strategies.base import Strategy, register
from cosim.learning.federated.training import State, TrainedUpdate
from cosim.scenario import FedAsyncConfig, FedBuffConfig


class AsyncStrategy(Strategy):
    """Clients run on their own clocks: free slots are refilled whenever a client comes back."""

    cfg: FedAsyncConfig | FedBuffConfig

    def done(self) -> bool:
        return self.cfg.max_rounds is not None and self.host.version >= self.cfg.max_rounds

    def select(self) -> None:
        host = self.host
        free = host.per_round - len(host.in_flight)
        if free <= 0:
            return
        candidates = [c for c in host.candidates() if c.client not in host.in_flight]
        view = ServerView(host.env.now, host.version + 1, self.cfg.round_deadline_s)
        for client in host.policy.select(view, candidates, free)[:free]:
            host.launch(client, host.env.now + self.cfg.round_deadline_s, host.global_state)

    def wait(self, flights):
        return self.host.env.any_of(flights)

    def on_arrival(self, attempt: Attempt, start: State) -> None:
        host = self.host
        attempt.staleness = host.version - attempt.model_version
        if attempt.completed:
            [update] = host.train([(attempt, start)], self.train_seed(host.version))
            weight = staleness_weight(self.cfg.staleness, attempt.staleness, self.cfg.staleness_a,
                                      self.cfg.staleness_b)
            if self.fold_in(update, start, weight):
                self.new_version()
        host.record([attempt])

    def new_version(self) -> None:
        host = self.host
        host.version += 1
        host.round = host.version
        if host.version % self.cfg.eval_every_rounds == 0:
            host.evaluate()

    def fold_in(self, update: TrainedUpdate, start: State, weight: float) -> bool:
        """Take the update into the global model; True when that made a new model version."""
        raise NotImplementedError


@register
class FedAsync(AsyncStrategy):
    config = FedAsyncConfig
    cfg: FedAsyncConfig

    def fold_in(self, update: TrainedUpdate, start: State, weight: float) -> bool:
        self.host.global_state = mix(self.host.global_state, update.modules, self.cfg.async_alpha * weight)
        return True
