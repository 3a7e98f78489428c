"""The learning layer on a CUDA device: local updates, batched passes, bf16, evaluation, the
pinned sample cache and pre-training give on the device what they give on the CPU.

Marked ``cuda``: they run on ``COSIM_TEST_DEVICE`` (default ``cuda``) and are skipped where it has
no GPU. ``bench/gpu/run.sh`` runs them on a GPU machine (``pytest -m cuda``); its dry run runs
them here with ``COSIM_TEST_DEVICE=cpu``, the same code with the CPU as the device."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from test_batched_training import ALL_TASKS, CLIENTS, _client
from test_precision import _float32, _norm

from cosim.learning import precision as P
from cosim.learning.balancing import GradientBalancer
from cosim.learning.batched import ClientJob, PrefixCache, batched_local_updates
from cosim.learning.data.datasets import _pinned
from cosim.learning.local import TensorClientData, evaluate, local_update
from cosim.learning.model import M3TModel
from cosim.scenario import BalancingConfig, LocalTrainingConfig, ModelConfig

DEVICE = torch.device(os.environ.get("COSIM_TEST_DEVICE", "cuda"))
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(
    DEVICE.type == "cuda" and not torch.cuda.is_available(),
    reason="no CUDA device (COSIM_TEST_DEVICE=cpu runs these on the CPU)")]
needs_bf16 = pytest.mark.skipif(not P.native_bf16(DEVICE)[0], reason=f"{DEVICE} has no native bfloat16")

SGD = LocalTrainingConfig(epochs=2, batch_size=3, lr=0.05, optimizer="sgd", momentum=0.0)
ADAMW = LocalTrainingConfig(epochs=1, batch_size=3, lr=3e-3, optimizer="adamw", weight_decay=0.01)
BAL = BalancingConfig()


def _model(precision: str = "fp32", device: torch.device = DEVICE) -> M3TModel:
    torch.manual_seed(0)
    model = M3TModel(ModelConfig()).to(device)
    model.set_precision(precision)
    return model


def _clients() -> list[TensorClientData]:
    return [_float32(_client(n, t, m, seed=i)) for i, (n, t, m) in enumerate(CLIENTS)]


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in state.items()}


def _sequential(model, clients, start, cfg):
    return [_cpu(local_update(model, start, c, cfg, BAL, seed=7 + i, count_flops=False,
                              balancer=GradientBalancer(BAL, c.tasks))[0]) for i, c in enumerate(clients)]


def _batched(model, clients, start, cfg):
    jobs = [ClientJob(start, c, 7 + i, GradientBalancer(BAL, c.tasks)) for i, c in enumerate(clients)]
    return [_cpu(m) for m, _ in batched_local_updates(model, jobs, cfg, BAL, prefix=PrefixCache())]


def _relative(a: dict, b: dict, start: dict) -> float:
    """||a - b|| over the size of b's update from ``start`` (floating, trained tensors)."""
    keys = [k for k, v in b.items() if v.is_floating_point() and "running_" not in k]
    return _norm({k: a[k] - b[k] for k in keys}) / _norm({k: b[k] - start[k] for k in keys})


def test_the_model_and_its_modules_live_on_the_device():
    model = _model()
    assert {p.device.type for p in model.parameters()} == {DEVICE.type}
    assert {b.device.type for b in model.buffers()} <= {DEVICE.type}
    start = model.export_modules(model.module_names())
    out = _sequential(model, _clients()[:1], start, SGD)[0]
    assert set(out) <= set(start) and all(torch.isfinite(v.float()).all() for v in out.values())


def test_a_local_update_on_the_device_is_the_cpus():
    """fp32 on the device against fp32 on the CPU, from the same weights and batches: within 2 %
    of the update (TF32 convolutions on a GPU round more than the CPU's float32)."""
    clients = _clients()
    cpu = _model(device=torch.device("cpu"))
    start = _cpu(cpu.export_modules(cpu.module_names()))
    on_cpu = _sequential(cpu, clients, start, ADAMW)
    on_device = _sequential(_model(), clients, start, ADAMW)
    for d, c in zip(on_device, on_cpu, strict=True):
        assert set(d) == set(c)
        assert _relative(d, c, start) < 0.02


def test_a_batched_pass_on_the_device_is_the_sequential_updates():
    """fp32: the K clients in one pass against one after another, both on the device."""
    clients = _clients()
    model = _model()
    start = model.export_modules(model.module_names())
    seq = _sequential(model, clients, start, SGD)
    bat = _batched(model, clients, start, SGD)
    for b, s in zip(bat, seq, strict=True):
        assert set(b) == set(s)
        assert _relative(b, s, _cpu(start)) < 0.01


@needs_bf16
def test_bf16_on_the_device_batched_is_within_bfloat16_rounding_of_sequential():
    """As on the CPU (``test_precision.py``): stacking clients adds no more than bf16's own
    rounding moves the sequential update from fp32."""
    clients = _clients()
    reference = _model("fp32")
    start = reference.export_modules(reference.module_names())
    fp32 = _sequential(reference, clients, start, SGD)
    model = _model("bf16")
    seq = _sequential(model, clients, start, SGD)
    bat = _batched(model, clients, start, SGD)
    for f, s, b in zip(fp32, seq, bat, strict=True):
        bf16_error = _relative(s, f, _cpu(start))
        stacking_error = _relative(b, s, _cpu(start))
        assert 0 < bf16_error < 0.1
        assert stacking_error < 0.05 and stacking_error <= 1.5 * bf16_error, (stacking_error, bf16_error)


def test_evaluation_on_the_device_scores_as_the_cpu():
    client = _client(6, ALL_TASKS, ("image", "lidar", "text"), seed=3)
    client = _float32(client)
    scores = []
    for device in (torch.device("cpu"), DEVICE):
        model = _model(device=device)
        modules = model.export_modules(model.module_names())
        scores.append(evaluate(model, modules, [(client.inputs, client.targets)], tasks=["seg3d"],
                               with_loss=True))
    cpu, dev = scores
    assert cpu["seg3d"]["loss"] == pytest.approx(dev["seg3d"]["loss"], rel=1e-2)
    assert cpu["seg3d"]["mIoU"] == pytest.approx(dev["seg3d"]["mIoU"], abs=0.02)


def test_pinned_samples_copy_to_the_device_unchanged():
    client = _float32(_client(3, ALL_TASKS, ("image", "lidar", "text"), seed=1))
    sample = {"inputs": {k: v for k, v in client.inputs.items() if isinstance(v, torch.Tensor)},
              "targets": client.targets["det2d"]}
    held = _pinned(sample) if DEVICE.type == "cuda" else sample
    if DEVICE.type == "cuda":
        assert all(v.is_pinned() for v in held["inputs"].values())
    moved = {k: v.to(DEVICE, non_blocking=True) for k, v in held["inputs"].items()}
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()
    for key, value in moved.items():
        assert value.device.type == DEVICE.type and torch.equal(value.cpu(), sample["inputs"][key])


def test_pretraining_on_the_device_writes_cpu_weights_that_load(tmp_path):
    from cosim.learning.openclip import open_clip_module
    from cosim.learning.pretrain import PretrainConfig, pretrain

    cfg = PretrainConfig(segments=2, frames_per_segment=3, steps=3, batch_size=4)
    report = pretrain(cfg, tmp_path / "model.pt", device=DEVICE)
    assert np.isfinite(report["last_loss"]) and 0 <= report["retrieval_after"] <= 1
    state = torch.load(tmp_path / "model.pt", weights_only=True)
    assert {v.device.type for v in state.values()} == {"cpu"}
    model = open_clip_module().create_model(cfg.model, pretrained=str(tmp_path / "model.pt"))
    assert torch.equal(model.state_dict()["logit_scale"], state["logit_scale"])
