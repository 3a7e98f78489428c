"""What a client's round costs in simulated terms: bytes of its modules on the air, and seconds
of compute on its vehicle's device (FLOPs per sample, measured once per task/modality mix, over
the FLOP/s its device lends to training now)."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from cosim.learning.data.datasets import ClientDataset
from cosim.learning.federated.clients import Client, available_flops
from cosim.learning.local import to_device, trainable_modules
from cosim.learning.model import M3TModel, state_bytes
from cosim.learning.tasks import task_loss
from cosim.ports import MobilityPort
from cosim.scenario import LocalTrainingConfig


def module_bytes(state: dict[str, torch.Tensor], names: list[str]) -> int:
    """Bytes of the named modules in a state: what a client downloads and uploads."""
    return state_bytes({k: v for k, v in state.items() if any(k.startswith(n + ".") for n in names)})


class ComputeCost:
    """Seconds a client's local update takes on its device."""

    def __init__(self, model: M3TModel, local: LocalTrainingConfig, mobility: MobilityPort,
                 frozen: tuple[str, ...]):
        self.model, self.local, self.mobility, self.frozen = model, local, mobility, frozen
        self.device = next(model.parameters()).device
        self._flops: dict[tuple, float] = {}

    def modules(self, data: ClientDataset) -> list[str]:
        """What a client with this data trains and uploads."""
        return trainable_modules(self.model, data.tasks, data.modalities, self.frozen)

    def seconds(self, client: Client, data: ClientDataset) -> float:
        flops = self.flops_per_sample(data)
        parked = self.mobility.is_parked(client.vehicle)
        return len(data) * self.local.epochs * flops / available_flops(client.profile, parked)

    def flops_per_sample(self, data: ClientDataset) -> float:
        """FLOPs of one training step per sample, measured once per task/modality mix."""
        key = (tuple(data.tasks), tuple(data.modalities))
        if key not in self._flops:
            inputs, targets = next(data.batches(min(4, len(data)), torch.Generator().manual_seed(0)))
            with FlopCounterMode(display=False) as counter:
                out = self.model(to_device(inputs, self.device), tasks=data.tasks)
                loss = sum(task_loss(t, out[t], to_device(targets[t], self.device)) for t in data.tasks)
                loss.backward()
            self.model.zero_grad(set_to_none=True)
            self._flops[key] = counter.get_total_flops() / len(inputs["text"])
        return self._flops[key]
