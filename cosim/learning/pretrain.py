"""Foundation pre-training of the tiny backbone: CLIP's contrastive loss on image-caption pairs
rendered from synthetic street scenes that no client holds.

This stands in for the centrally pre-trained foundation model of the paper, which cannot be
downloaded here. The result is an ordinary open_clip state dict, loadable with
``open_clip.create_model(name, pretrained=path)``; ``checkpoint: synthetic`` in a scenario builds
it once (deterministically) into the cache and reuses it.
"""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cosim.cache import cached_folder, content_key
from cosim.learning.data.render import caption, render_camera
from cosim.learning.data.scene import GENERATOR_VERSION, make_segment
from cosim.learning.openclip import CONFIG_DIR, open_clip_module, quiet_random_init, to_tensor, tokenizer
from cosim.learning.precision import FP32, autocast, resolve
from cosim.progress import warmup_step
from cosim.run_folder import write_atomically

# Scene seeds of pre-training live far from the seeds the client data generator uses.
PRETRAIN_SEED_BASE = 1_000_000_000


@dataclass(frozen=True)
class PretrainConfig:
    model: str = "cosim-tiny"
    segments: int = 96
    frames_per_segment: int = 6
    steps: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    seed: int = 0
    # fp32, or bf16: the forward under autocast (``precision.py``), the contrastive loss and the
    # weights in float32
    precision: str = "fp32"

    def key(self) -> str:
        """The cache key: the settings, the scene generator and the model's configuration (a
        changed ``model_configs/*.json`` must not reuse weights of another shape). fp32, the
        default, keys as before precision was a setting: its cached weights stay valid."""
        config = CONFIG_DIR / f"{self.model}.json"
        shape = config.read_text(encoding="utf-8") if config.exists() else self.model
        settings = {k: v for k, v in self.__dict__.items() if not (k == "precision" and v == FP32)}
        return content_key(["pretrain", str(GENERATOR_VERSION),
                            json.dumps(settings, sort_keys=True), shape])


def synthetic_pairs(segments: int, frames: int, size: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """Images and captions of ``frames`` evenly spaced frames of ``segments`` scenes."""
    images, captions = [], []
    rng = np.random.default_rng(seed)
    for s in range(segments):
        warmup_step(f"pre-training: rendering scene {s + 1} of {segments}")
        seg = make_segment(f"pretrain-{seed}-{s}", PRETRAIN_SEED_BASE + seed * 100_000 + s, frames=40)
        for k in np.linspace(0, 39, frames).astype(int):
            frame = render_camera(seg, int(k), size, size, rng)
            images.append(frame.image)
            captions.append(caption(seg, frame))
    return np.stack(images), captions


def retrieval_accuracy(model, images: torch.Tensor, captions: list[str], tok) -> float:
    """Image -> text top-1 over the set, correct when the retrieved caption reads the same."""
    with torch.no_grad():
        img = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
        txt = torch.nn.functional.normalize(model.encode_text(tok(captions).to(images.device)), dim=-1)
        best = (img @ txt.T).argmax(dim=1).tolist()
    return float(np.mean([captions[j] == captions[i] for i, j in enumerate(best)]))


def pretrain(cfg: PretrainConfig, out: Path, progress=None, device: torch.device | None = None) -> dict:
    """Train on ``device`` (default the CPU) and write the checkpoint to ``out`` (its tensors on
    the CPU); return before/after retrieval accuracy. The weights are initialised on the CPU, so
    every device starts from the same ones; the cache (``ensure_pretrained``) trains on the CPU.

    The initial weights come from ``cfg.seed`` in a fork of torch's global RNG: the caller's
    random state is left as it was, and a run that had to pre-train first initialises its own
    modules exactly as a run that found the checkpoint cached."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return _pretrain(cfg, out, progress, device or torch.device("cpu"))


def _pretrain(cfg: PretrainConfig, out: Path, progress, device: torch.device) -> dict:
    open_clip = open_clip_module()
    precision = resolve(cfg.precision, device)
    with quiet_random_init():
        model = open_clip.create_model(cfg.model, pretrained=None, device="cpu")
    model.to(device)
    size = model.visual.image_size[0]
    tok = tokenizer(cfg.model)
    images, captions = synthetic_pairs(cfg.segments, cfg.frames_per_segment, size, cfg.seed)
    held = np.random.default_rng(cfg.seed).permutation(len(captions))
    n_eval = min(128, len(captions) // 5)
    eval_idx, train_idx = held[:n_eval], held[n_eval:]
    x_all, t_all = to_tensor(images).to(device), tok(captions).to(device)
    x_eval, c_eval = x_all[eval_idx], [captions[i] for i in eval_idx]
    model.eval()
    before = retrieval_accuracy(model, x_eval, c_eval, tok)
    loss_fn = open_clip.ClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    losses = []
    for step in range(cfg.steps):
        idx = torch.as_tensor(train_idx)[torch.randperm(len(train_idx), generator=gen)[: cfg.batch_size]]
        idx = idx.to(device)
        with autocast(precision.name, device):
            img_f, txt_f, scale = model(x_all[idx], t_all[idx])
        loss = loss_fn(img_f.float(), txt_f.float(), scale)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if progress is not None:
            progress(step + 1, cfg.steps, loss.item())
    model.eval()
    after = retrieval_accuracy(model, x_eval, c_eval, tok)
    out.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(model.to("cpu").state_dict(), buffer)
    # a new file renamed into place: a replaced checkpoint's other hard links keep their bytes
    write_atomically(out, buffer.getvalue(), out.parent / f".{out.name}.{os.getpid()}.tmp")
    return {"retrieval_before": before, "retrieval_after": after, "first_loss": losses[0],
            "last_loss": float(np.mean(losses[-10:])), "pairs": len(captions), "steps": cfg.steps,
            **precision.summary(), **({"device": device.type} if device.type != "cpu" else {})}


def ensure_pretrained(cfg: PretrainConfig | None = None) -> Path:
    """The cached checkpoint for ``cfg`` (default configuration), pre-training it if missing."""
    cfg = cfg or PretrainConfig()

    def build(folder: Path) -> None:
        report = pretrain(cfg, folder / "model.pt", lambda step, steps, loss: warmup_step(
            f"pre-training: step {step} of {steps}, loss {loss:.3f}"))
        (folder / "report.json").write_text(json.dumps(report, indent=2))

    return cached_folder("pretrained", cfg.key(), build) / "model.pt"
