"""The deployed model's system cost on the meta device, against counts made without cosim's code:
ViT-B/16's published forward cost and parameters counted by hand."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from cosim.learning.deployed import meta_model, module_bytes, training_flops_per_sample
from cosim.scenario import ModelConfig

# ViT-B/16 at 224 x 224: 17.56 G multiply-adds per image (fvcore's count, as timm lists it for
# vit_base_patch16_224: "GMACs 17.6"; the ViT paper's Table 6 gives 55.5 "exaFLOPs"-scale totals
# for pre-training, consistent with it). FlopCounterMode counts 2 FLOPs per multiply-add.
VIT_B16_GMACS = 17.56


@pytest.fixture(scope="module")
def vit_b16():
    return meta_model(ModelConfig(name="ViT-B-16"))


def test_the_image_tower_costs_what_vit_b16_is_published_to_cost(vit_b16):
    tower = vit_b16.image_tower
    x = torch.zeros(1, 3, 224, 224, device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        tower(x)
    gmacs = counter.get_total_flops() / 2 / 1e9
    assert gmacs == pytest.approx(VIT_B16_GMACS, rel=0.05)
    assert all(p.device.type == "meta" for p in vit_b16.parameters()), "no weights were allocated"


def test_module_bytes_are_the_parameters_counted_by_hand(vit_b16):
    sizes = module_bytes(vit_b16)
    width, text_width, b = 768, 512, 32  # ViT-B-16: vision width 768, text width 512; bottleneck 32

    def adapter(w: int) -> int:  # down (w x b + b) and up (b x w + w), float32
        return 4 * (w * b + b + b * w + w)

    assert sizes["peft.image.block11"] == sizes["peft.lidar.block11"] == adapter(width)
    assert sizes["peft.image.block10"] == adapter(width)
    assert sizes["peft.text.block11"] == adapter(text_width)
    assert "peft.image.block9" not in sizes  # last_blocks: 2
    embed = 512  # the towers' output width, where the task adapter (bottleneck 64) sits
    assert sizes["task_adapter"] == 4 * (embed * 64 + 64 + 64 * embed + embed)
    # 3x3 conv 3 -> 3 without bias; BatchNorm weight, bias, running mean and var; int64 counter
    assert sizes["peft.lidar.stem"] == 4 * (3 * 3 * 3 * 3) + 4 * 4 * 3 + 8


def test_training_step_flops_cover_the_towers_and_grow_with_modalities(vit_b16):
    all_mod = training_flops_per_sample(vit_b16, ["seg3d", "det3d", "pan2d", "det2d"],
                                        ["image", "lidar", "text"])
    camera = training_flops_per_sample(vit_b16, ["pan2d", "det2d"], ["image", "text"])
    per_tower = 2 * VIT_B16_GMACS * 1e9
    # forward: the image tower, the LiDAR tower on its two views, the text tower, heads;
    # backward: the image tower's upper blocks, and all of the LiDAR tower on both views (its
    # stems, at the bottom, are trained)
    assert 4 * per_tower < all_mod < 6 * per_tower
    assert per_tower < camera < 2 * per_tower


def test_int8_and_fp16_compression_reconstruct_within_their_step():
    from cosim.learning.federated.compression import compress

    g = torch.Generator().manual_seed(0)
    start = {"a.w": torch.randn(64, 32, generator=g), "a.n": torch.tensor(3)}
    trained = {"a.w": start["a.w"] + 0.01 * torch.randn(64, 32, generator=g), "a.n": torch.tensor(4)}
    q = compress(trained, start, "int8")
    step = (trained["a.w"] - start["a.w"]).abs().max() / 127
    assert (q["a.w"] - trained["a.w"]).abs().max() <= step / 2 + 1e-7
    assert not torch.equal(q["a.w"], trained["a.w"]) and q["a.n"] == 4
    half = compress(trained, start, "fp16")
    assert torch.equal(half["a.w"], trained["a.w"].half().float())
    assert compress(trained, start, "none") is trained


def test_bytes_on_the_air_follow_the_deployed_model_and_the_compression():
    from types import SimpleNamespace

    from cosim.learning.federated.cost import ComputeCost
    from cosim.scenario import LearningConfig

    tiny = meta_model(ModelConfig(name="cosim-tiny"))
    data = SimpleNamespace(tasks=["pan2d", "det2d"], modalities=["image", "text"])
    camera_modules = ["peft.image.block10", "peft.image.block11", "peft.text.block10",
                      "peft.text.block11", "task_adapter", "heads.pan2d", "heads.det2d"]
    vit = meta_model(ModelConfig(name="ViT-B-16"))
    tensors = [t for m in camera_modules for t in vit.get_module(m).state_dict().values()]
    floats = sum(t.numel() for t in tensors if t.is_floating_point())
    ints = sum(8 * t.numel() for t in tensors if not t.is_floating_point())  # BN batch counters
    raw = 4 * floats + ints
    n_float = sum(1 for t in tensors if t.is_floating_point())
    expected = {"none": raw, "fp16": 2 * floats + ints, "int8": floats + 4 * n_float + ints}
    for method, up in expected.items():
        cfg = LearningConfig(deployed_model={"name": "ViT-B-16"}, compression=method)
        cost = ComputeCost(tiny, cfg, mobility=None, frozen=())
        assert cost.bytes(data, "down") == raw
        assert cost.bytes(data, "up") == up
    own = ComputeCost(tiny, LearningConfig(), mobility=None, frozen=())
    assert own.bytes(data, "up") < raw / 3, "without deployed_model: the trained model's own modules"
