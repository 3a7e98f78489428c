"""Local-update benchmark: samples per second of one client's local update (adapter PEFT, all
four tasks, image + LiDAR + text), for the tiny CPU configuration and ViT-B-32, on this machine's
CPU and on CUDA when present. Random weights: speed does not depend on them.

    python bench/local_update.py [--models cosim-tiny,ViT-B-32] [--samples 16]
"""

from __future__ import annotations

import argparse
import time

import torch

from cosim.learning.local import TensorClientData, local_update
from cosim.learning.model import M3TModel
from cosim.learning.precision import pick_device
from cosim.scenario import BalancingConfig, LocalTrainingConfig, ModelConfig


def client_data(model: M3TModel, n: int) -> TensorClientData:
    g = torch.Generator().manual_seed(0)
    s, grid = model.image_size, 4 * model.grid
    inputs = {"image": torch.randn(n, 3, s, s, generator=g), "lidar": torch.randn(n, 3, s, s, generator=g),
              "lidar_bev": torch.randn(n, 3, s, s, generator=g),
              "text": ["a rainy dusk street in Seattle with 3 cars"] * n}
    heat = torch.zeros(n, 4, grid, grid)
    heat[:, 0, grid // 2, grid // 2] = 1.0
    mask = heat.amax(1) == 1
    labels = torch.randint(0, 23, (n, grid, grid), generator=g)
    targets = {
        "seg3d": {"labels": labels},
        "det3d": {"heatmap": heat, "reg": torch.zeros(n, 8, grid, grid), "mask": mask},
        "pan2d": {"labels": labels, "center": heat[:, :1], "offset": torch.zeros(n, 2, grid, grid),
                  "offset_mask": labels > 10},
        "det2d": {"heatmap": heat, "reg": torch.zeros(n, 4, grid, grid), "mask": mask},
    }
    return TensorClientData(inputs, targets, list(targets), ["image", "lidar", "text"])


def run(name: str, samples: int, device: torch.device) -> None:
    torch.manual_seed(0)
    model = M3TModel(ModelConfig(name=name)).to(device)
    data = client_data(model, samples)
    g = model.export_modules(model.module_names())
    cfg = LocalTrainingConfig(epochs=1, batch_size=8, device=device.type)
    local_update(model, g, client_data(model, 8), cfg, BalancingConfig(), seed=0)  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    _, stats = local_update(model, g, data, cfg, BalancingConfig(), seed=0)
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    trainable = sum(p.numel() for p in model.trainable_parameters(model.module_names()))
    print(f"  {name:<11} {device.type:<4} {samples / wall:8.1f} samples/s  "
          f"({stats.flops_per_sample / 1e9:.2f} GFLOP/sample for a training step, "
          f"{trainable / 1e6:.2f} M trainable)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="cosim-tiny,ViT-B-32")
    parser.add_argument("--samples", type=int, default=16)
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([pick_device("cuda")] if torch.cuda.is_available() else [])
    print(f"one local update, adapter PEFT, 4 tasks, batch 8, {args.samples} samples, "
          f"{torch.get_num_threads()} CPU threads")
    for device in devices:
        for name in args.models.split(","):
            run(name, args.samples, device)


if __name__ == "__main__":
    main()
