"""FedBuff (Nguyen et al., 2022): asynchronous clients; their staleness-weighted deltas are
buffered and applied, scaled by the server learning rate, every ``buffer_size`` arrivals.

A buffered update changes nothing until the buffer is applied, so the completed arrivals of one
buffer are trained together when it fills (one batched pass, ``cosim/learning/batched.py``), each
from the model it downloaded and with the seed it would have had at its arrival. Where the
scheduling policy reads the losses clients report (Oort: ``reads_losses``), a loss must be known
at its client's arrival, so each arrival is trained when it arrives, as in FedAsync."""

from __future__ import annotations

from cosim.learning.federated.aggregation import FedBuffer, staleness_weight
from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.strategies.base import register
from cosim.learning.federated.strategies.fedasync import AsyncStrategy
from cosim.learning.federated.training import State, TrainedUpdate
from cosim.scenario import FedBuffConfig


@register
class FedBuff(AsyncStrategy):
    config = FedBuffConfig
    cfg: FedBuffConfig

    def __init__(self, cfg: FedBuffConfig, host):
        super().__init__(cfg, host)
        self.buffer = FedBuffer(cfg.buffer_size, cfg.server_lr)
        self.pending: list[tuple[Attempt, State, float]] = []  # arrived, trained when full

    def on_arrival(self, attempt: Attempt, start: State) -> None:
        host = self.host
        if getattr(host.policy, "reads_losses", True):  # unknown (user) policies: to be safe
            super().on_arrival(attempt, start)
            return
        attempt.staleness = host.version - attempt.model_version
        if attempt.completed:
            weight = staleness_weight(self.cfg.staleness, attempt.staleness, self.cfg.staleness_a,
                                      self.cfg.staleness_b)
            self.pending.append((attempt, start, weight))
            if len(self.buffer.deltas) + len(self.pending) >= self.cfg.buffer_size:
                trained = host.train([(a, s) for a, s, _ in self.pending], self.train_seed(host.version))
                for (_, s, w), update in zip(self.pending, trained, strict=True):
                    self.buffer.add(s, update.modules, w)
                self.pending = []
                host.global_state = self.buffer.apply(host.global_state)
                self.new_version()
        host.record([attempt])

    def fold_in(self, update: TrainedUpdate, start: State, weight: float) -> bool:
        self.buffer.add(start, update.modules, weight)
        if not self.buffer.full():
            return False
        self.host.global_state = self.buffer.apply(self.host.global_state)
        return True
