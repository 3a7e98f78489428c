"""Gradient balancing: CAGrad on a conflicting quadratic, GradNorm's task weights."""

from __future__ import annotations

import pytest
import torch

from cosim.learning.balancing import GradientBalancer, cagrad_direction
from cosim.scenario import BalancingConfig


def test_cagrad_step_improves_both_conflicting_tasks():
    # L1 = ||x - a||^2, L2 = ||x - b||^2 at x = 0: gradients -2a and -2b conflict
    a, b = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 0.4])
    g = torch.stack([-2 * a, -2 * b]).double()
    plain = g.mean(0)
    assert (g @ plain).min() < 0  # the average gradient hurts task 2
    d = cagrad_direction(g, c=0.8)
    assert (g @ d).min() >= -1e-9  # CAGrad's step does not increase either loss (to first order)
    assert d.norm() > 0


def test_cagrad_with_c_zero_is_the_mean():
    g = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    assert torch.allclose(cagrad_direction(g, 0.0), g.mean(0))


def test_balancer_sets_combined_gradient_on_shared_and_own_gradient_on_heads():
    shared = torch.nn.Parameter(torch.zeros(2))
    head_a, head_b = torch.nn.Parameter(torch.ones(1)), torch.nn.Parameter(torch.ones(1))
    a, b = torch.tensor([2.0, 0.0]), torch.tensor([-1.0, 0.4])
    losses = {"seg3d": ((shared - a) ** 2).sum() * head_a.sum(),
              "det3d": ((shared - b) ** 2).sum() * head_b.sum()}
    bal = GradientBalancer(BalancingConfig(method="cagrad", cagrad_c=0.8), ["seg3d", "det3d"])
    bal.backward(losses, [shared])
    g = torch.stack([-2 * a, -2 * b]).double()
    assert torch.allclose(shared.grad.double(), cagrad_direction(g, 0.8), atol=1e-6)
    assert head_a.grad.item() == pytest.approx(((0 - a) ** 2).sum().item())
    assert head_b.grad.item() == pytest.approx(((0 - b) ** 2).sum().item())


def test_gradnorm_moves_weight_to_the_task_that_trains_slower():
    tasks = ["fast", "slow"]
    bal = GradientBalancer(BalancingConfig(method="gradnorm", gradnorm_alpha=1.5), tasks)
    x = torch.nn.Parameter(torch.ones(4))
    spread = []
    for step in range(30):
        x.grad = None
        # "fast" has fallen to a quarter of its first loss, "slow" hardly moves; same gradient size
        scale_fast, scale_slow = (1.0, 1.0) if step == 0 else (0.25, 0.95)
        losses = {"fast": scale_fast * (x**2).sum(), "slow": scale_slow * ((x - 2) ** 2).sum()}
        w = bal.backward(losses, [x])
        spread.append(w["slow"] - w["fast"])
    assert w["slow"] > 1.0 > w["fast"]
    assert sum(w.values()) == pytest.approx(2.0)
    assert spread[-1] > spread[1] > 0  # keeps moving toward equal relative training rates


def test_sum_is_plain_backward():
    x = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    GradientBalancer(BalancingConfig(method="sum"), ["a", "b"]).backward(
        {"a": (x**2).sum(), "b": (3 * x).sum()}, [x])
    assert torch.allclose(x.grad, 2 * torch.tensor([1.0, -1.0]) + 3)
