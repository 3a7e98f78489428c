"""Multi-task gradient balancing over the per-task gradients of the shared trainable modules.

- ``sum``: the plain sum of task losses.
- ``gradnorm`` (Chen et al., 2018): learnable task weights, moved so that each task's weighted
  gradient norm approaches the mean norm times (relative inverse training rate) ** alpha; the
  relative rate of a task is its loss over its first loss, over the mean of those ratios.
- ``cagrad`` (Liu et al., 2021): the update d = g0 + (c ||g0|| / ||g_w||) g_w, with g0 the mean
  task gradient and w on the simplex minimising g_w . g0 + c ||g0|| ||g_w||; this maximises the
  worst task's improvement within a ball of radius c ||g0|| around g0. Rescaled by 1 / (1 + c^2).

Task-specific modules (heads) always get their own task's gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from cosim.scenario import BalancingConfig


def cagrad_direction(grads: torch.Tensor, c: float) -> torch.Tensor:
    """Combined update for task gradients ``grads`` (T, D)."""
    t = grads.shape[0]
    gram = (grads @ grads.T).double().cpu().numpy()
    g0_norm = float(np.sqrt(max(gram.mean(), 0.0)) + 1e-12)
    radius = c * g0_norm
    mean_w = np.full(t, 1.0 / t)

    def objective(w: np.ndarray) -> float:
        return float(w @ gram @ mean_w + radius * np.sqrt(max(w @ gram @ w, 0.0) + 1e-12))

    res = minimize(objective, mean_w, bounds=[(0.0, 1.0)] * t,
                   constraints={"type": "eq", "fun": lambda w: w.sum() - 1.0})
    w = torch.as_tensor(res.x, dtype=grads.dtype, device=grads.device)
    g_w = w @ grads
    g0 = grads.mean(0)
    d = g0 + radius / (g_w.norm() + 1e-12) * g_w
    return d / (1.0 + c**2)


class GradientBalancer:
    """Turns per-task losses into gradients on the shared and the task-specific parameters."""

    def __init__(self, cfg: BalancingConfig, tasks: list[str]):
        self.cfg = cfg
        self.tasks = list(tasks)
        self.weights = torch.ones(len(self.tasks), dtype=torch.float64)
        self.initial_losses: torch.Tensor | None = None

    def backward(self, losses: dict[str, torch.Tensor], shared: list[torch.nn.Parameter],
                 extra_loss: torch.Tensor | None = None) -> dict[str, float]:
        """Set ``.grad`` of every parameter reached by the losses; return the task weights."""
        tasks = [t for t in self.tasks if t in losses]
        if self.cfg.method == "sum" or len(tasks) < 2 or not shared:
            total = sum(losses[t] for t in tasks)
            if extra_loss is not None:
                total = total + extra_loss
            total.backward()
            return dict.fromkeys(tasks, 1.0)
        grads = []
        for t in tasks:
            g = torch.autograd.grad(losses[t], shared, retain_graph=True, allow_unused=True)
            grads.append(torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1)
                                    for x, p in zip(g, shared, strict=True)]))
        g = torch.stack(grads)  # (T, D)
        if self.cfg.method == "cagrad":
            combined = cagrad_direction(g, self.cfg.cagrad_c)
            weights = dict.fromkeys(tasks, 1.0)
        else:
            combined, weights = self._gradnorm(tasks, losses, g)
        # Task-specific parameters: each task's own loss; the shared ones get the combination.
        total = sum(losses[t] for t in tasks)
        if extra_loss is not None:
            total = total + extra_loss
        total.backward()
        offset = 0
        for p in shared:
            n = p.numel()
            part = combined[offset: offset + n].view_as(p)
            if extra_loss is not None and p.grad is not None:
                p.grad = p.grad - g[:, offset: offset + n].sum(0).view_as(p) + part
            else:
                p.grad = part.clone()
            offset += n
        return weights

    def _gradnorm(self, tasks: list[str], losses: dict[str, torch.Tensor], g: torch.Tensor):
        idx = [self.tasks.index(t) for t in tasks]
        current = torch.tensor([losses[t].item() for t in tasks], dtype=torch.float64)
        if self.initial_losses is None:
            self.initial_losses = torch.full((len(self.tasks),), float("nan"), dtype=torch.float64)
        first = self.initial_losses[idx]
        first = torch.where(torch.isnan(first), current, first)
        self.initial_losses[idx] = first
        w = self.weights[idx]
        norms = g.double().norm(dim=1)  # ||grad of L_t||; the weighted norm is w_t * norms_t
        weighted = w * norms
        ratio = current / first.clamp(min=1e-12)
        rate = ratio / ratio.mean()
        target = weighted.mean() * rate ** self.cfg.gradnorm_alpha
        # d/dw_t of sum_t |w_t ||g_t|| - target_t| with the target held constant
        w = w - self.cfg.gradnorm_lr * torch.sign(weighted - target) * norms
        w = w.clamp(min=1e-3)
        w = w * len(tasks) / w.sum()
        self.weights[idx] = w
        combined = (w.to(g.dtype).unsqueeze(1) * g).sum(0)
        return combined, {t: float(x) for t, x in zip(tasks, w, strict=True)}
