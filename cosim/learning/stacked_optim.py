"""K clients' optimisers as one: Adam, AdamW or SGD with momentum on stacked (K, ...) parameters.

Each client has its own moments and step count, and a step touches only the rows of the clients
(and modules) it is given, so one stacked step equals K independent ``torch.optim`` steps: the
same update rules (PyTorch's Adam with L2 weight decay, AdamW's decoupled decay, SGD's momentum
buffer started from the first gradient). ``tests/test_batched_training.py`` checks this against
``torch.optim`` itself. Which rows step is known on the host, so choosing costs no device sync;
when every row steps with the same count (the common case) the update runs as multi-tensor
(``torch._foreach_*``) operations over all parameters, as ``torch.optim``'s foreach path does.
"""

from __future__ import annotations

from typing import cast

import torch

from cosim.scenario import LocalTrainingConfig

_BETA1, _BETA2, _EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam(W)'s defaults


class StackedOptimizer:
    """A fresh optimiser per client (as every local update starts one), on stacked parameters."""

    def __init__(self, cfg: LocalTrainingConfig, params: dict[str, torch.Tensor]):
        self.cfg, self.params = cfg, params
        k = next(iter(params.values())).shape[0]
        self.steps = {name: [0] * k for name in params}  # per client, on the host
        self.m = {name: torch.zeros_like(p) for name, p in params.items()}
        self.v = {name: torch.zeros_like(p) for name, p in params.items()} if cfg.optimizer != "sgd" else {}

    @torch.no_grad()
    def step(self, rows: dict[str, list[bool]]) -> None:
        """Step the parameters' rows marked in ``rows[name]`` with their ``.grad``."""
        uniform: list[str] = []
        for name, p in self.params.items():
            active = rows.get(name)
            if active is None or not any(active) or p.grad is None:
                continue
            counts = self.steps[name]
            for i, a in enumerate(active):
                counts[i] += int(a)
            if all(active) and len(set(counts)) == 1:
                uniform.append(name)
            else:
                self._masked(name, p, active)
        if uniform:
            self._together(uniform)

    # ---- every row steps, same count: multi-tensor, in place --------------------------------
    def _together(self, names: list[str]) -> None:
        cfg = self.cfg
        params = [self.params[n] for n in names]
        # step() passes only parameters with a grad
        grads: list[torch.Tensor] | tuple[torch.Tensor, ...] = cast(
            "list[torch.Tensor]", [p.grad for p in params])
        t = self.steps[names[0]][0]
        if cfg.optimizer == "sgd":
            if cfg.weight_decay:
                grads = torch._foreach_add(grads, params, alpha=cfg.weight_decay)
            if cfg.momentum:
                bufs = [self.m[n] for n in names]
                if t == 1:
                    torch._foreach_copy_(bufs, grads)
                else:
                    torch._foreach_mul_(bufs, cfg.momentum)
                    torch._foreach_add_(bufs, grads)
                grads = bufs
            torch._foreach_add_(params, grads, alpha=-cfg.lr)
            return
        if cfg.optimizer == "adamw":
            torch._foreach_mul_(params, 1 - cfg.lr * cfg.weight_decay)
        elif cfg.weight_decay:
            grads = torch._foreach_add(grads, params, alpha=cfg.weight_decay)
        m, v = [self.m[n] for n in names], [self.v[n] for n in names]
        torch._foreach_lerp_(m, grads, 1 - _BETA1)
        torch._foreach_mul_(v, _BETA2)
        torch._foreach_addcmul_(v, grads, grads, 1 - _BETA2)
        step_size = cfg.lr / (1 - _BETA1 ** t)
        bias2_sqrt = (1 - _BETA2 ** t) ** 0.5
        denom = torch._foreach_sqrt(v)
        torch._foreach_div_(denom, bias2_sqrt)
        torch._foreach_add_(denom, _EPS)
        torch._foreach_addcdiv_(params, m, denom, -step_size)

    # ---- some rows: the same rules per row, written where the mask says -----------------------
    def _masked(self, name: str, p: torch.Tensor, active: list[bool]) -> None:
        cfg = self.cfg
        shape = (-1,) + (1,) * (p.dim() - 1)
        mask = torch.tensor(active, device=p.device).view(shape)
        g = p.grad
        assert g is not None  # step() passes only parameters with a grad
        if cfg.optimizer == "sgd":
            if cfg.weight_decay:
                g = g + cfg.weight_decay * p
            if cfg.momentum:
                first = torch.tensor([c == 1 for c in self.steps[name]], device=p.device).view(shape)
                g = torch.where(first, g, cfg.momentum * self.m[name] + g)
                self.m[name].copy_(torch.where(mask, g, self.m[name]))
            p.copy_(torch.where(mask, p - cfg.lr * g, p))
            return
        decayed = p
        if cfg.optimizer == "adamw":
            decayed = p * (1 - cfg.lr * cfg.weight_decay)
        elif cfg.weight_decay:
            g = g + cfg.weight_decay * p
        m = self.m[name].lerp(g, 1 - _BETA1)
        v = self.v[name] * _BETA2 + (1 - _BETA2) * g * g
        t = torch.tensor([max(c, 1) for c in self.steps[name]], dtype=torch.float64,
                         device=p.device).view(shape)
        bias1 = (1 - _BETA1 ** t).to(p.dtype)
        bias2_sqrt = (1 - _BETA2 ** t).sqrt().to(p.dtype)
        new = decayed - (cfg.lr / bias1) * m / (v.sqrt() / bias2_sqrt + _EPS)
        p.copy_(torch.where(mask, new, p))
        self.m[name].copy_(torch.where(mask, m, self.m[name]))
        self.v[name].copy_(torch.where(mask, v, self.v[name]))
