"""FedBuff (Nguyen et al., 2022): asynchronous clients; their staleness-weighted deltas are
buffered and applied, scaled by the server learning rate, every ``buffer_size`` arrivals.

A buffered update changes nothing until the buffer is applied, so the completed arrivals of one
buffer are trained together when it fills (one batched pass, ``cosim/learning/batched.py``), each
from the model it downloaded and with the seed it would have had at its arrival. Where the
scheduling policy reads the losses clients report (Oort: ``reads_losses``), a loss must be known
at its client's arrival, so each arrival is trained when it arrives, as in FedAsync."""

from __future__ import annotations

from cosim.learning.federated.aggregation import FedBuffer
from cosim.learning.federated.attempt import Attempt
from cosim.learning.federated.strategies.base import Decision, NewModel, Record, ServerHost, register
from cosim.learning.federated.strategies.fedasync import AsyncStrategy
from cosim.learning.federated.training import State, TrainedUpdate
from cosim.scenario import FedBuffConfig


@register
class FedBuff(AsyncStrategy):
    config = FedBuffConfig
    cfg: FedBuffConfig

    def __init__(self, cfg: FedBuffConfig, host: ServerHost):
        super().__init__(cfg, host)
        self.buffer = FedBuffer(cfg.buffer_size, cfg.server_lr)
        self.pending: list[tuple[Attempt, State, float]] = []  # arrived, trained when full

    def on_arrival(self, attempt: Attempt, start: State) -> list[Decision]:
        host = self.host
        if host.policy.reads_losses:
            return super().on_arrival(attempt, start)
        attempt.staleness = host.version - attempt.model_version
        decisions: list[Decision] = []
        if attempt.completed:
            self.pending.append((attempt, start, self.weight(attempt)))
            if len(self.buffer.deltas) + len(self.pending) >= self.cfg.buffer_size:
                trained = host.train([(a, s) for a, s, _ in self.pending], self.train_seed(host.version))
                for (_, s, w), update in zip(self.pending, trained, strict=True):
                    self.buffer.add(s, update.modules, w)
                self.pending = []
                decisions.append(NewModel(self.buffer.apply(host.global_state)))
        return [*decisions, Record([attempt])]

    def fold_in(self, update: TrainedUpdate, start: State, weight: float) -> State | None:
        self.buffer.add(start, update.modules, weight)
        return self.buffer.apply(self.host.global_state) if self.buffer.full() else None
