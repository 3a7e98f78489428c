"""Multi-task gradient balancing over the per-task gradients of the shared trainable modules.

- ``sum``: the plain sum of task losses.
- ``gradnorm`` (Chen et al., 2018, Algorithm 1): the network steps on sum_i w_i(t) L_i (heads
  included); then w moves by Adam on dL_grad/dw with L_grad = sum_i |w_i ||g_i|| - target_i|, the
  target mean_j(w_j ||g_j||) * r_i ** alpha held constant (r_i: L_i / L_i(0) over its mean), and is
  renormalised to sum to T. Weights, L_i(0) and Adam's moments live as long as the balancer (one
  per client, across rounds), as in brianlan/pytorch-grad-norm's ``train.py``.
- ``cagrad`` (Liu et al., 2021): d = g0 + (c ||g0|| / ||g_w||) g_w, with g0 the mean task gradient
  and w on the simplex minimising g_w . g0 + c ||g0|| ||g_w||. Like the official code
  (Cranial-XIX/CAGrad, ``cagrad`` with rescale=1 and ``overwrite_grad``), the shared modules get
  T d / (1 + c^2): the scale of the summed loss that the heads train on.

Under ``cagrad`` each head gets its own task's gradient; under ``gradnorm`` that gradient times w_i.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize

from cosim.scenario import BalancingConfig

_BETAS, _EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, as the references use
_MIN_WEIGHT = 1e-3  # keeps weights positive if Adam overshoots (the references have no floor)


def cagrad_direction(grads: torch.Tensor, c: float) -> torch.Tensor:
    """Shared-parameter update for task gradients ``grads`` (T, D), on the summed-loss scale."""
    t = grads.shape[0]
    gram = (grads @ grads.T).double().cpu().numpy()
    # The optimal w does not depend on the gradients' scale. At unit scale with a tight tolerance
    # SLSQP solves it; the references' default ftol on the raw Gram matrix stops short (4e-4 off
    # in tests/test_balancing.py), and at w = 1/T (not CAGrad) once gradients are ~1e-2 or less.
    gram = gram / max(float(np.diag(gram).mean()), 1e-30)
    g0_norm = float(np.sqrt(max(gram.mean(), 0.0)))
    mean_w = np.full(t, 1.0 / t)

    def objective(w: np.ndarray) -> float:
        return float(w @ gram @ mean_w + c * g0_norm * np.sqrt(max(w @ gram @ w, 0.0) + 1e-12))

    res = minimize(objective, mean_w, bounds=[(0.0, 1.0)] * t, options={"ftol": 1e-12},
                   constraints={"type": "eq", "fun": lambda w: w.sum() - 1.0})
    w = torch.as_tensor(res.x, dtype=grads.dtype, device=grads.device)
    g_w = w @ grads
    g0 = grads.mean(0)
    d = g0 + c * g0.norm() / (g_w.norm() + 1e-12) * g_w
    return t * d / (1.0 + c**2)


class GradientBalancer:
    """Turns per-task losses into gradients; keep one per client so GradNorm's state persists."""

    def __init__(self, cfg: BalancingConfig, tasks: list[str]):
        self.cfg = cfg
        self.tasks = list(tasks)
        n = len(self.tasks)
        self.weights = torch.ones(n, dtype=torch.float64)  # w_i(t), the ones the next step uses
        self.initial_losses = torch.full((n,), float("nan"), dtype=torch.float64)  # L_i(0)
        self._m = torch.zeros(n, dtype=torch.float64)  # Adam moments and step count, per task
        self._v = torch.zeros(n, dtype=torch.float64)
        self._steps = torch.zeros(n, dtype=torch.float64)

    def backward(self, losses: dict[str, torch.Tensor], shared: list[torch.nn.Parameter],
                 extra_loss: torch.Tensor | None = None) -> dict[str, float]:
        """Set ``.grad`` of every parameter reached by the losses; return the task weights used."""
        tasks = [t for t in self.tasks if t in losses]
        if self.cfg.method == "sum" or len(tasks) < 2 or not shared:
            _backward(sum(losses[t] for t in tasks), extra_loss)
            return dict.fromkeys(tasks, 1.0)
        g = _task_grads([losses[t] for t in tasks], shared)  # (T, D)
        if self.cfg.method == "gradnorm":
            used = self.gradnorm_step(tasks, losses, g)
            _backward(sum(w * losses[t] for t, w in zip(tasks, used, strict=True)), extra_loss)
            return dict(zip(tasks, used, strict=True))
        combined = cagrad_direction(g, self.cfg.cagrad_c)
        if extra_loss is not None and extra_loss.requires_grad:  # its own gradient, unbalanced
            aux = torch.autograd.grad(extra_loss, shared, retain_graph=True, allow_unused=True)
            combined = combined + _flatten(aux, shared)
        _backward(sum(losses[t] for t in tasks), extra_loss)  # heads: their own task's gradient
        offset = 0
        for p in shared:
            p.grad = combined[offset: offset + p.numel()].view_as(p).clone()
            offset += p.numel()
        return dict.fromkeys(tasks, 1.0)

    def gradnorm_step(self, tasks: list[str], losses: dict[str, torch.Tensor],
                       g: torch.Tensor) -> list[float]:
        """Return w(t) for this step's loss and move the weights to w(t + 1); ``g`` holds the
        tasks' gradients of the shared modules (T, D)."""
        idx = torch.tensor([self.tasks.index(t) for t in tasks])
        current = torch.tensor([losses[t].item() for t in tasks], dtype=torch.float64)
        first = self.initial_losses[idx]
        first = torch.where(torch.isnan(first), current, first)
        self.initial_losses[idx] = first
        w = self.weights[idx]
        norms = g.double().norm(dim=1)  # ||grad L_i||; the weighted norm is w_i ||grad L_i||
        ratio = current / first.clamp(min=1e-12)
        target = (w * norms).mean() * (ratio / ratio.mean()) ** self.cfg.gradnorm_alpha
        grad = torch.sign(w * norms - target) * norms  # dL_grad/dw_i, target held constant
        self._steps[idx] += 1
        self._m[idx] = _BETAS[0] * self._m[idx] + (1 - _BETAS[0]) * grad
        self._v[idx] = _BETAS[1] * self._v[idx] + (1 - _BETAS[1]) * grad**2
        m_hat = self._m[idx] / (1 - _BETAS[0] ** self._steps[idx])
        v_hat = self._v[idx] / (1 - _BETAS[1] ** self._steps[idx])
        new = (w - self.cfg.gradnorm_lr * m_hat / (v_hat.sqrt() + _EPS)).clamp(min=_MIN_WEIGHT)
        self.weights[idx] = new * len(tasks) / new.sum()
        return w.tolist()


def _task_grads(losses: list[torch.Tensor], shared: list[torch.nn.Parameter]) -> torch.Tensor:
    return torch.stack([_flatten(torch.autograd.grad(loss, shared, retain_graph=True,
                                                     allow_unused=True), shared)
                        for loss in losses])


def _flatten(grads, params: list[torch.nn.Parameter]) -> torch.Tensor:
    return torch.cat([(x if x is not None else torch.zeros_like(p)).reshape(-1)
                      for x, p in zip(grads, params, strict=True)])


def _backward(total: torch.Tensor | int, extra_loss: torch.Tensor | None) -> None:
    """``total``: a sum of task losses (0 when there is none)."""
    loss = total if extra_loss is None else total + extra_loss
    assert isinstance(loss, torch.Tensor)  # a client trains on at least one task
    loss.backward()
