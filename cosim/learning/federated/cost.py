"""What a client's round costs in simulated terms: bytes of its modules on the air, and seconds
of compute on its vehicle's device (FLOPs per sample times samples, over the FLOP/s its device
lends to training now).

Without ``learning.deployed_model`` both are the trained model's own (FLOPs measured once per
task/modality mix on a real batch). With it, both are the deployed model's, counted on the meta
device (``cosim.learning.deployed``), and a local epoch covers every frame the client's stretch of
driving holds at the deployed frame rate; the trained model still does the learning.
"""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from cosim.learning.data.datasets import ClientDataset
from cosim.learning.federated.clients import Client, available_flops
from cosim.learning.federated.compression import BYTES_PER_VALUE, SCALE_BYTES
from cosim.learning.local import to_device, trainable_modules
from cosim.learning.model import M3TModel, state_bytes
from cosim.learning.tasks import task_loss
from cosim.ports import MobilityPort
from cosim.scenario import LearningConfig

WAYMO_HZ = 10.0  # Waymo's perception segments: camera and LiDAR frames at ~10 Hz


def module_bytes(state: dict[str, torch.Tensor], names: list[str]) -> int:
    """Bytes of the named modules in a state: what a client downloads and uploads."""
    return state_bytes({k: v for k, v in state.items() if any(k.startswith(n + ".") for n in names)})


def data_rate_hz(cfg: LearningConfig) -> float:
    """Frames per second of driving in the client data (before ``frame_stride``)."""
    return cfg.data.synthetic.hz if cfg.data.root is None else WAYMO_HZ


class ComputeCost:
    """Seconds a client's local update takes on its device, and bytes its modules take."""

    def __init__(self, model: M3TModel, cfg: LearningConfig, mobility: MobilityPort,
                 frozen: tuple[str, ...]):
        self.model, self.local, self.mobility, self.frozen = model, cfg.local, mobility, frozen
        self.compression = cfg.compression
        self.device = next(model.parameters()).device
        self._flops: dict[tuple, float] = {}
        self._bytes: dict[tuple, int] = {}
        self.deployed = None
        if cfg.deployed_model is not None:
            from cosim.learning.deployed import meta_model

            self.deployed = meta_model(cfg.model.model_copy(update={"name": cfg.deployed_model.name}))
            self._deployed_samples_per_sample = (
                cfg.deployed_model.frame_hz * cfg.data.frame_stride / data_rate_hz(cfg))

    # ---- what a client trains -------------------------------------------------------------------
    def modules(self, data: ClientDataset) -> list[str]:
        """What a client with this data trains and uploads (trained model's names)."""
        return trainable_modules(self.model, data.tasks, data.modalities, self.frozen)

    def _costed_model(self) -> M3TModel:
        return self.deployed if self.deployed is not None else self.model

    # ---- bytes ----------------------------------------------------------------------------------
    def bytes(self, data: ClientDataset, direction: str) -> int:
        """Bytes down (the global modules, as stored) or up (compressed as configured)."""
        key = (tuple(data.tasks), tuple(data.modalities), direction)
        if key not in self._bytes:
            self._bytes[key] = self._count_bytes(data, direction)
        return self._bytes[key]

    def union_bytes(self, datasets: list[ClientDataset]) -> int:
        """Bytes up of an aggregate of these clients' updates (cluster aggregation): every module
        any of them trained, once (compressed as configured)."""
        model = self._costed_model()
        names = sorted({n for data in datasets
                        for n in trainable_modules(model, data.tasks, data.modalities, self.frozen)})
        return self._names_bytes(names, "up")

    def _count_bytes(self, data: ClientDataset, direction: str) -> int:
        model = self._costed_model()
        return self._names_bytes(trainable_modules(model, data.tasks, data.modalities, self.frozen),
                                 direction)

    def _names_bytes(self, names: list[str], direction: str) -> int:
        model = self._costed_model()
        state = model.export_modules(names)
        raw = state_bytes(state)
        if direction == "down" or self.compression == "none":
            return raw
        per_value = BYTES_PER_VALUE[self.compression]
        floats = [v for v in state.values() if v.is_floating_point()]
        scales = SCALE_BYTES.get(self.compression, 0) * len(floats)
        return raw - sum(v.numel() * (v.element_size() - per_value) for v in floats) + scales

    # ---- seconds --------------------------------------------------------------------------------
    def samples(self, data: ClientDataset) -> float:
        """Samples one local update trains on (deployed: every frame at its frame rate)."""
        n = len(data) * self.local.epochs
        return n * self._deployed_samples_per_sample if self.deployed is not None else float(n)

    def seconds(self, client: Client, data: ClientDataset) -> float:
        # asked for a bound client (its vehicle and its device profile are set together)
        assert client.vehicle is not None and client.profile is not None
        parked = self.mobility.is_parked(client.vehicle)
        return self.samples(data) * self.flops_per_sample(data) / available_flops(client.profile, parked)

    def flops_per_sample(self, data: ClientDataset) -> float:
        """FLOPs of one training step per sample, counted once per task/modality mix."""
        key = (tuple(data.tasks), tuple(data.modalities))
        if key not in self._flops:
            self._flops[key] = (self._deployed_flops(data) if self.deployed is not None
                                else self._trained_flops(data))
        return self._flops[key]

    def _deployed_flops(self, data: ClientDataset) -> float:
        from cosim.learning.deployed import training_flops_per_sample

        deployed = self.deployed
        assert deployed is not None  # asked only with a deployed model
        names = trainable_modules(deployed, data.tasks, data.modalities, self.frozen)
        return training_flops_per_sample(deployed, data.tasks, data.modalities, names=names)

    def _trained_flops(self, data: ClientDataset) -> float:
        inputs, targets = next(data.batches(min(4, len(data)), torch.Generator().manual_seed(0)))
        with FlopCounterMode(display=False) as counter:
            out = self.model(to_device(inputs, self.device), tasks=data.tasks)
            loss = sum(task_loss(t, out[t], to_device(targets[t], self.device)) for t in data.tasks)
            assert isinstance(loss, torch.Tensor)  # a client's data holds at least one task
            loss.backward()
        self.model.zero_grad(set_to_none=True)
        return counter.get_total_flops() / len(inputs["text"])

    def summary(self) -> dict:
        """What run.json says about the cost model."""
        model = self._costed_model()
        return {"costed_model": model.cfg.name, "trained_model": self.model.cfg.name,
                "deployed": self.deployed is not None, "compression": self.compression,
                "flops_per_sample": {"+".join(k[0]) + "|" + "+".join(k[1]): v
                                     for k, v in sorted(self._flops.items())},
                "all_module_bytes": state_bytes(model.export_modules(model.module_names()))}
