"""local_update and evaluate, and the target codec they share with the data layer."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch

from cosim.learning.balancing import GradientBalancer
from cosim.learning.codec import (
    decode_boxes_2d,
    decode_boxes_3d,
    decode_panoptic,
    encode_boxes_2d,
    encode_boxes_3d,
    encode_panoptic,
)
from cosim.learning.federated.training import LocalTrainer, TrainJob
from cosim.learning.local import TensorClientData, evaluate, local_update
from cosim.learning.model import M3TModel
from cosim.scenario import BalancingConfig, LocalTrainingConfig, ModelConfig

pytestmark = pytest.mark.slow  # end to end (runs, training, SUMO): outside the unit loop


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return M3TModel(ModelConfig())


def _client(n=6, tasks=("seg3d", "det3d", "pan2d", "det2d"), modalities=("image", "lidar", "text")):
    g = torch.Generator().manual_seed(3)
    inputs = {"image": torch.randn(n, 3, 64, 64, generator=g),
              "lidar": torch.randn(n, 3, 64, 64, generator=g),
              "lidar_bev": torch.randn(n, 3, 64, 64, generator=g),
              "text": [f"scene {i} in Phoenix at noon" for i in range(n)]}
    labels = torch.full((n, 32, 32), 18, dtype=torch.long)
    labels[:, 20:] = 22
    boxes2d = [np.array([[8.0, 8, 24, 20]])] * n
    boxes3d = [np.array([[5.0, -3, 0.5, 4.5, 2, 1.6, 0.3]])] * n
    det2d = [encode_boxes_2d(b, [0], 4, 32, 64) for b in boxes2d]
    det3d = [encode_boxes_3d(b, [0], 4, 32, 40.0) for b in boxes3d]
    inst = torch.zeros(n, 32, 32, dtype=torch.long)
    inst[:, 4:10, 4:12] = 1
    pan_labels = labels.clone() % 28
    pan_labels[inst == 1] = 1
    pan = [encode_panoptic(pan_labels[i], inst[i]) for i in range(n)]
    stack = lambda items, key: torch.stack([it[key] for it in items])  # noqa: E731
    targets = {
        "seg3d": {"labels": labels},
        "det2d": {k: stack(det2d, k) for k in ("heatmap", "reg", "mask")},
        "det3d": {k: stack(det3d, k) for k in ("heatmap", "reg", "mask")},
        "pan2d": {k: stack(pan, k) for k in ("labels", "center", "offset", "offset_mask")},
    }
    return TensorClientData(inputs, {t: targets[t] for t in tasks}, list(tasks), list(modalities))


def test_local_update_trains_only_the_clients_modules(model):
    global_modules = model.export_modules(model.module_names())
    before = {k: v.clone() for k, v in global_modules.items()}
    cfg = LocalTrainingConfig(epochs=4, batch_size=3, lr=3e-3)
    modules, stats = local_update(model, global_modules, _client(), cfg, BalancingConfig(), seed=1)
    tasks = list(stats.samples_per_task)
    assert set(stats.modules) == set(model.modules_for(tasks, ["image", "lidar", "text"]))
    assert all(any(k.startswith(n + ".") for n in stats.modules) for k in modules)
    assert all(any(k.startswith(n + ".") for k in modules) for n in stats.modules)
    assert all(torch.equal(before[k], global_modules[k]) for k in before)  # input untouched
    assert stats.steps == 8 and stats.samples_per_task == dict.fromkeys(stats.samples_per_task, 6)
    for task in stats.first_epoch_loss:
        assert stats.last_epoch_loss[task] < stats.first_epoch_loss[task]
    # FLOPs of one training step per sample: more than a forward of the tiny towers
    assert 1e7 < stats.flops_per_sample < 1e10
    changed = [k for k in modules if not torch.equal(modules[k], global_modules[k])]
    assert changed


def test_local_update_is_deterministic_on_cpu(model):
    g = model.export_modules(model.module_names())
    cfg = LocalTrainingConfig(epochs=1, batch_size=3)
    a, _ = local_update(model, g, _client(), cfg, BalancingConfig(method="cagrad"), seed=5)
    b, _ = local_update(model, g, _client(), cfg, BalancingConfig(method="cagrad"), seed=5)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_camera_only_client_uploads_no_lidar_or_3d_modules(model):
    g = model.export_modules(model.module_names())
    client = _client(tasks=("pan2d", "det2d"), modalities=("image", "text"))
    modules, stats = local_update(model, g, client, LocalTrainingConfig(), BalancingConfig(), seed=0)
    assert not any(k.startswith(("peft.lidar", "heads.seg3d", "heads.det3d")) for k in modules)
    assert any(k.startswith("heads.det2d") for k in modules)


def test_gradnorm_state_carries_over_a_clients_updates(model):
    g = model.export_modules(model.module_names())
    cfg, gradnorm = LocalTrainingConfig(batch_size=3), BalancingConfig(method="gradnorm")
    client = _client()
    balancer = GradientBalancer(gradnorm, client.tasks)
    _, first = local_update(model, g, client, cfg, gradnorm, seed=0, count_flops=False,
                            balancer=balancer)
    initial, after_first = balancer.initial_losses.clone(), balancer.weights.clone()
    assert not torch.isnan(initial).any() and not torch.equal(after_first, torch.ones(4).double())
    _, second = local_update(model, g, client, cfg, gradnorm, seed=1, count_flops=False,
                             balancer=balancer)
    assert torch.equal(balancer.initial_losses, initial)  # L_i(0) is the client's first loss
    # the next update starts where the last left off (weights used at its first step)
    assert not torch.equal(balancer.weights, after_first)
    assert balancer.weights.sum().item() == pytest.approx(4.0)
    assert list(second.task_weights.values()) != [1.0] * 4
    with pytest.raises(ValueError, match="cannot weigh"):
        local_update(model, g, client, cfg, gradnorm, balancer=GradientBalancer(gradnorm, ["seg3d"]))


def test_local_trainer_keeps_one_balancer_per_client(model):
    clients = [_client(), _client(tasks=("pan2d", "det2d"), modalities=("image", "text"))]
    trainer = LocalTrainer(model, clients, LocalTrainingConfig(batch_size=3),
                           BalancingConfig(method="gradnorm"), frozen=())
    g = model.export_modules(model.module_names())
    trainer.train([TrainJob(0, g, 0), TrainJob(1, g, 0)])
    first = {c: trainer.balancer(c) for c in (0, 1)}
    weights = first[0].weights.clone()
    trainer.train([TrainJob(0, g, 1)])
    assert trainer.balancer(0) is first[0] and trainer.balancer(1) is first[1]
    assert first[1].tasks == ["pan2d", "det2d"]
    assert not torch.equal(first[0].weights, weights)


def _logit(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-4, 1 - 1e-4)
    return torch.log(p / (1 - p))


def test_2d_and_3d_box_codec_round_trip():
    boxes = np.array([[10.0, 12.0, 30.0, 40.0], [40.0, 5.0, 50.0, 15.0]])
    enc = encode_boxes_2d(boxes, [1, 3], 4, 32, 64)
    dec = decode_boxes_2d(_logit(enc["heatmap"]), enc["reg"], 64, threshold=0.5)
    order = dec["labels"].argsort()
    assert dec["labels"][order].tolist() == [1, 3]
    assert torch.allclose(dec["boxes"][order], torch.tensor(boxes, dtype=torch.float32), atol=1e-4)
    boxes3 = np.array([[5.3, -7.9, 0.8, 4.5, 1.9, 1.6, 0.4], [-20.1, 11.0, 1.0, 0.8, 0.7, 1.8, -2.0]])
    enc = encode_boxes_3d(boxes3, [0, 1], 4, 32, 40.0)
    dec = decode_boxes_3d(_logit(enc["heatmap"]), enc["reg"], 40.0, threshold=0.5)
    order = dec["labels"].argsort()
    assert torch.allclose(dec["boxes"][order], torch.tensor(boxes3, dtype=torch.float32), atol=1e-4)


def test_panoptic_codec_round_trip():
    semantic = torch.full((32, 32), 19)
    instance = torch.zeros(32, 32, dtype=torch.long)
    instance[2:8, 3:9], instance[20:30, 15:25] = 4, 9
    semantic[instance > 0] = 1
    enc = encode_panoptic(semantic, instance)
    scores = torch.nn.functional.one_hot(enc["labels"], 28).permute(2, 0, 1).float() * 10
    reg = torch.cat([_logit(enc["center"]), enc["offset"]])
    sem, inst = decode_panoptic(scores, reg)
    assert torch.equal(sem, semantic)
    # each true instance maps to exactly one predicted id, and vice versa
    pairs = {(int(a), int(b)) for a, b in zip(instance.flatten(), inst.flatten(), strict=True) if a}
    assert len(pairs) == 2 and len({b for _, b in pairs}) == 2


def test_evaluate_returns_every_tasks_metric(model):
    client = _client(n=4)
    inputs, targets = next(client.batches(4, torch.Generator().manual_seed(0)))
    targets["det2d"].update(boxes=[np.array([[8.0, 8, 24, 20]])] * 4, box_labels=[np.array([0])] * 4)
    targets["det3d"].update(boxes=[np.array([[5.0, -3, 0.5, 4.5, 2, 1.6, 0.3]])] * 4,
                            box_labels=[np.array([0])] * 4, points=[np.array([12])] * 4)
    inst = torch.zeros(4, 32, 32, dtype=torch.long)
    inst[:, 4:10, 4:12] = 1
    targets["pan2d"]["instance"] = inst
    inputs["sequence"] = ["seg-a"] * 4
    out = evaluate(copy.deepcopy(model), model.export_modules(model.module_names()), [(inputs, targets)])
    assert set(out) == {"seg3d", "det3d", "pan2d", "det2d"}
    assert set(out["seg3d"]) == {"mIoU"} and set(out["det2d"]) == {"mAP50"}
    assert set(out["det3d"]) == {"mAP", "mAPH", "mAP_center"} and "STQ" in out["pan2d"]
    for values in out.values():
        for v in values.values():
            assert math.isnan(v) or 0.0 <= v <= 1.0
