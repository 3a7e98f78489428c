"""K clients trained in one batched pass equal K sequential ``local_update`` calls.

The reference is the sequential path (``local_update``, PyTorch's own optimisers): each client's
trained modules from the batched pass must match it within 1e-5. The model runs in float64 so the
comparison measures the method, not float32 rounding (in float32, Adam turns rounding noise in
gradients that are zero in exact arithmetic, such as a bias before BatchNorm, into +-lr steps).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cosim.learning.balancing import GradientBalancer
from cosim.learning.batched import ClientJob, PrefixCache, batched_local_updates
from cosim.learning.codec import encode_boxes_2d, encode_boxes_3d, encode_panoptic
from cosim.learning.federated.training import LocalTrainer, TrainJob
from cosim.learning.local import TensorClientData, local_update
from cosim.learning.model import M3TModel
from cosim.learning.stacked_optim import StackedOptimizer
from cosim.scenario import BalancingConfig, LocalTrainingConfig, ModelConfig, PeftConfig

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop

ALL_TASKS = ("seg3d", "det3d", "pan2d", "det2d")


def _client(n: int, tasks, modalities, seed: int) -> TensorClientData:
    g = torch.Generator().manual_seed(seed)
    rand = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    inputs = {"image": rand(n, 3, 64, 64), "lidar": rand(n, 3, 64, 64), "lidar_bev": rand(n, 3, 64, 64),
              "text": [f"scene {seed}-{i} in Phoenix at noon" for i in range(n)]}
    labels = torch.randint(0, 23, (n, 32, 32), generator=g)
    labels[:, :3] = 255
    box2d = lambda i: np.array([[8.0 + i, 8, 24 + i, 20]])  # noqa: E731
    box3d = lambda i: np.array([[5.0 + i, -3, 0.5, 4.5, 2, 1.6, 0.3]])  # noqa: E731
    det2d = [encode_boxes_2d(box2d(i), [i % 4], 4, 32, 64) for i in range(n)]
    det3d = [encode_boxes_3d(box3d(i), [i % 4], 4, 32, 40.0) for i in range(n)]
    inst = torch.zeros(n, 32, 32, dtype=torch.long)
    inst[:, 4:10, 4:12] = 1
    pan_labels = labels.clamp(max=27)
    pan_labels[inst == 1] = 1
    pan = [encode_panoptic(pan_labels[i], inst[i]) for i in range(n)]

    def stack(items, key):
        value = torch.stack([it[key] for it in items])
        return value.double() if value.is_floating_point() else value

    targets = {"seg3d": {"labels": labels},
               "det2d": {k: stack(det2d, k) for k in ("heatmap", "reg", "mask")},
               "det3d": {k: stack(det3d, k) for k in ("heatmap", "reg", "mask")},
               "pan2d": {k: stack(pan, k) for k in ("labels", "center", "offset", "offset_mask")}}
    return TensorClientData(inputs, {t: targets[t] for t in tasks}, list(tasks), list(modalities))


# full; camera only without text (2D tasks, 5 frames: batches of 3 and 2); no camera (3D tasks)
CLIENTS = [(6, ALL_TASKS, ("image", "lidar", "text")), (5, ("pan2d", "det2d"), ("image",)),
           (4, ("seg3d", "det3d"), ("lidar", "text"))]


def _model(method: str) -> M3TModel:
    torch.manual_seed(0)
    return M3TModel(ModelConfig(peft=PeftConfig(method=method))).double()


def _starts(model: M3TModel) -> list[dict[str, torch.Tensor]]:
    """The global state, and for the second client an older one (FedBuff: versions differ)."""
    state = model.export_modules(model.module_names())
    g = torch.Generator().manual_seed(9)
    older = {k: v + 0.01 * torch.randn(v.shape, generator=g, dtype=v.dtype) if v.is_floating_point()
             and "running" not in k else v for k, v in state.items()}
    return [state, older, state]


@pytest.mark.parametrize("method,balancing", [("adapter", "sum"), ("lora", "sum"),
                                              ("adapter", "gradnorm"), ("lora", "cagrad")])
def test_batched_equals_sequential(method, balancing):
    model = _model(method)
    clients = [_client(n, t, m, seed=i) for i, (n, t, m) in enumerate(CLIENTS)]
    starts = _starts(model)
    cfg = LocalTrainingConfig(epochs=2, batch_size=3, lr=3e-3, optimizer="adamw", weight_decay=0.01)
    bal = BalancingConfig(method=balancing)
    sequential = [local_update(model, s, c, cfg, bal, seed=7 + i, count_flops=False,
                               balancer=GradientBalancer(bal, c.tasks))
                  for i, (s, c) in enumerate(zip(starts, clients, strict=True))]
    jobs = [ClientJob(s, c, 7 + i, GradientBalancer(bal, c.tasks))
            for i, (s, c) in enumerate(zip(starts, clients, strict=True))]
    batched = batched_local_updates(model, jobs, cfg, bal, prefix=PrefixCache())
    for (seq_modules, seq_stats), (bat_modules, bat_stats) in zip(sequential, batched, strict=True):
        assert bat_stats.modules == seq_stats.modules and set(bat_modules) == set(seq_modules)
        assert bat_stats.steps == seq_stats.steps
        for key, value in seq_modules.items():
            assert torch.allclose(bat_modules[key].double(), value.double(), atol=1e-5, rtol=0), key
        for task, loss in seq_stats.last_epoch_loss.items():
            assert bat_stats.last_epoch_loss[task] == pytest.approx(loss, abs=1e-8)
        for task, w in seq_stats.task_weights.items():
            assert bat_stats.task_weights[task] == pytest.approx(w, abs=1e-8)
    moved = [k for k in batched[0][0] if not torch.equal(batched[0][0][k], starts[0][k])]
    assert len(moved) > len(batched[0][0]) // 2  # it trained


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
def test_stacked_optimizer_equals_torch_optim_per_client(optimizer):
    cfg = LocalTrainingConfig(optimizer=optimizer, lr=0.01, weight_decay=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(0)
    start = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
    stacked = {"w": start.clone().requires_grad_(True)}
    opt = StackedOptimizer(cfg, stacked)
    rows = [start[k].clone().requires_grad_(True) for k in range(3)]
    cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(optimizer)
    refs = [cls([r], lr=cfg.lr, weight_decay=cfg.weight_decay) if cls else
            torch.optim.SGD([r], lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
            for r in rows]
    active_steps = [[True, True, True], [True, False, True], [False, False, True], [True, True, False]]
    for active in active_steps * 2:
        grad = torch.randn(3, 4, 5, generator=g, dtype=torch.float64)
        stacked["w"].grad = grad.clone()
        opt.step({"w": active})
        for k in range(3):
            if active[k]:
                rows[k].grad = grad[k].clone()
                refs[k].step()
    for k in range(3):
        assert torch.allclose(stacked["w"][k], rows[k], atol=1e-12, rtol=0)


def test_prefix_cache_gives_the_towers_own_output():
    model = _model("adapter")
    client = _client(3, ALL_TASKS, ("image", "lidar", "text"), seed=1)
    batch = {k: client.inputs[k] for k in ("image", "text")}
    cached = {**batch, **model.encode_prefix(batch)}
    assert set(cached) == {"image", "text", "image_prefix", "text_prefix"}
    plain, split = model.encode(batch), model.encode(cached)
    for key in ("image", "text"):  # open_clip's own forward vs prefix + suffix
        assert torch.allclose(split[key], plain[key], atol=1e-12, rtol=0)
    assert model.prefix_blocks() == {"image": 2, "text": 0}  # PEFT in the last 2 of 4 / 2 blocks


def test_trainer_says_how_it_trains():
    clients = [_client(4, ALL_TASKS, ("image", "lidar", "text"), seed=0)]
    bal = BalancingConfig()
    for method, per_pass, mode in (("adapter", 20, "batched"), ("adapter", 1, "sequential"),
                                   ("prompt", 20, "sequential"), ("moe_adapter", 20, "sequential")):
        model = _model(method)
        trainer = LocalTrainer(model, clients, LocalTrainingConfig(clients_per_pass=per_pass), bal, ())
        [update] = trainer.train([TrainJob(0, model.export_modules(model.module_names()), 1)])
        assert trainer.mode["mode"] == mode and update.stats.steps == 1
        if mode == "sequential":
            assert ("clients_per_pass" if per_pass == 1 else method) in trainer.mode["reason"]
        else:
            assert trainer.mode["passes"] == 1
