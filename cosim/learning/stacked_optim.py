"""K clients' optimisers as one: Adam, AdamW or SGD with momentum on stacked (K, ...) parameters.

Each client has its own moments and step count, and a step touches only the rows of the clients
(and modules) it is given, so one stacked step equals K independent ``torch.optim`` steps: the
same update rules (PyTorch's Adam with L2 weight decay, AdamW's decoupled decay, SGD's momentum
buffer started from the first gradient). ``tests/test_batched_training.py`` checks this against
``torch.optim`` itself.
"""

from __future__ import annotations

import torch

from cosim.scenario import LocalTrainingConfig


class StackedOptimizer:
    """A fresh optimiser per client (as every local update starts one), on stacked parameters."""

    def __init__(self, cfg: LocalTrainingConfig, params: dict[str, torch.Tensor]):
        self.cfg, self.params = cfg, params
        k = next(iter(params.values())).shape[0]
        device = next(iter(params.values())).device
        self.steps = {name: torch.zeros(k, dtype=torch.float64, device=device) for name in params}
        self.m = {name: torch.zeros_like(p) for name, p in params.items()}
        self.v = {name: torch.zeros_like(p) for name, p in params.items()} if cfg.optimizer != "sgd" else {}
        self.started = {name: torch.zeros(k, dtype=torch.bool, device=device) for name in params}

    @torch.no_grad()
    def step(self, rows: dict[str, torch.Tensor]) -> None:
        """Step the parameters' ``rows[name]`` (a (K,) bool mask) with their ``.grad``."""
        for name, p in self.params.items():
            active = rows.get(name)
            if active is None or not bool(active.any()) or p.grad is None:
                continue
            shape = (-1,) + (1,) * (p.dim() - 1)
            mask = active.view(shape)
            self.steps[name] += active.to(torch.float64)
            new_p, new_m, new_v = self._update(name, p, p.grad, mask)
            everyone = bool(active.all())
            p.copy_(new_p if everyone else torch.where(mask, new_p, p))
            self.m[name].copy_(new_m if everyone else torch.where(mask, new_m, self.m[name]))
            if new_v is not None:
                self.v[name].copy_(new_v if everyone else torch.where(mask, new_v, self.v[name]))
            self.started[name] |= active

    def _update(self, name: str, p: torch.Tensor, g: torch.Tensor, mask: torch.Tensor):
        cfg = self.cfg
        if cfg.optimizer == "sgd":
            if cfg.weight_decay:
                g = g + cfg.weight_decay * p
            if not cfg.momentum:
                return p - cfg.lr * g, self.m[name], None
            started = self.started[name].view(mask.shape)
            buf = torch.where(started, cfg.momentum * self.m[name] + g, g)
            return p - cfg.lr * buf, buf, None
        beta1, beta2, eps = 0.9, 0.999, 1e-8  # torch.optim.Adam(W)'s defaults
        if cfg.optimizer == "adamw":
            p_decayed = p * (1 - cfg.lr * cfg.weight_decay)
        else:
            p_decayed = p
            if cfg.weight_decay:
                g = g + cfg.weight_decay * p
        m = self.m[name].lerp(g, 1 - beta1)
        v = self.v[name] * beta2 + (1 - beta2) * g * g
        t = self.steps[name].clamp(min=1).view(mask.shape)
        bias1 = (1 - beta1 ** t).to(p.dtype)
        bias2_sqrt = (1 - beta2 ** t).sqrt().to(p.dtype)
        denom = v.sqrt() / bias2_sqrt + eps
        return p_decayed - (cfg.lr / bias1) * m / denom, m, v
