"""FedBuff (Nguyen et al., 2022): asynchronous clients; their staleness-weighted deltas are
buffered and applied, scaled by the server learning rate, every ``buffer_size`` arrivals."""

from __future__ import annotations

from cosim.learning.federated.aggregation import FedBuffer
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

    def fold_in(self, update: TrainedUpdate, start: State, weight: float) -> bool:
        self.buffer.add(start, update.modules, weight)
        if not self.buffer.full():
            return False
        self.host.global_state = self.buffer.apply(self.host.global_state)
        return True
