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


def test_cagrad_with_c_zero_is_the_summed_gradient():
    g = torch.tensor([[1.0, 2.0], [3.0, -1.0]], dtype=torch.float64)
    assert torch.allclose(cagrad_direction(g, 0.0), g.sum(0))


# Cranial-XIX/CAGrad @ dc3d48152b6196945cfd56144879b9d42353b095: nyuv2/utils.py ``cagrad`` (3
# tasks) and cityscapes/utils.py ``cagrad`` (2 tasks), rescale=1, then ``overwrite_grad``'s
# ``newgrad * T  # to match the sum loss``; run on these gradients (float32, laid out (D, T)).
# LibMTL's CAGrad.py is the same minus the final * T.
CAGRAD_G3 = [[1.0, -2.0, 0.5, 3.0, 0.0], [-1.5, 1.0, 2.0, -0.5, 1.0], [0.5, 0.5, -1.0, 1.0, -2.5]]
CAGRAD_G2 = [[2.0, 0.0, 1.0, -1.0, 0.5], [-1.5, 0.8, 0.0, 2.0, -0.5]]
CAGRAD_CASES = [  # (grads, c, reference as published, reference with SLSQP ftol=1e-12)
    (CAGRAD_G3, 0.4, [-0.775345, 0.2379924, 2.2660449, 2.9109232, -1.1717452],
     [-0.7753467, 0.2380238, 2.2660351, 2.910953, -1.1718231]),
    (CAGRAD_G3, 0.5, [-0.8889731, 0.4711315, 2.2739043, 2.7821584, -1.3314064],
     [-0.8889325, 0.4712542, 2.2737904, 2.7823215, -1.3318229]),
    (CAGRAD_G2, 0.4, [0.7537889, 0.9214713, 1.2407738, 1.0629044, 0.0444673],
     [0.7540883, 0.9213295, 1.2407905, 1.0625331, 0.0445643]),
    (CAGRAD_G2, 0.5, [0.7518204, 0.9189159, 1.237394, 1.0598958, 0.0443745],
     [0.7520386, 0.9188253, 1.2374181, 1.0596453, 0.0444432]),
]


@pytest.mark.parametrize(("grads", "c", "published", "solved"), CAGRAD_CASES)
def test_cagrad_matches_the_official_implementation(grads, c, published, solved):
    d = cagrad_direction(torch.tensor(grads, dtype=torch.float64), c)
    # The official SLSQP call (default ftol on the raw Gram matrix) stops ~4e-4 short of the
    # optimum; with its tolerance tightened (its only change) it agrees with cosim to ~1e-6.
    assert torch.allclose(d, torch.tensor(solved, dtype=torch.float64), atol=1e-5)
    assert torch.allclose(d, torch.tensor(published, dtype=torch.float64), atol=5e-4)


def test_cagrad_is_scale_equivariant():
    # PEFT gradients are small; the official code at scale 1e-2 returns (1 + c) T g0 / (1 + c^2)
    g = torch.tensor(CAGRAD_G3, dtype=torch.float64)
    for s in (1e-2, 1e-4, 1e3):
        assert torch.allclose(cagrad_direction(g * s, 0.4) / s, cagrad_direction(g, 0.4), atol=1e-6)


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


# brianlan/pytorch-grad-norm @ 975ee855bde691cd5a102823e2575fcec6469a20, train.py, the
# ``grad_norm`` branch of ``train_toy_example`` (persistent Adam on the weights, the network stepping
# on sum_i w_i(t) L_i, renormalise to T), run in float64 on the problem below with alpha = 1.5 and
# the weights' Adam at lr = 0.025; plumbing changed only: W is the vector x, one batch per step.
GN_A = [[2.0, 0.0, 1.0], [-1.0, 0.5, 0.0], [0.0, -2.0, 3.0]]
GN_SCALES = [(1.0, 1.0, 1.0), (0.5, 0.9, 0.8), (0.3, 0.85, 0.6), (0.2, 0.8, 0.5), (0.15, 0.8, 0.45)]
GN_WEIGHTS = [  # w(t + 1) after each step
    [1.0165289255718974, 1.0165289255901682, 0.9669421488379344],
    [1.0317519480182327, 1.033332023818974, 0.9349160281627932],
    [1.0401577260703274, 1.0532228028866366, 0.9066194710430356],
    [1.0450823695568614, 1.0745103416028514, 0.8804072888402876],
    [1.04784027475109, 1.096609911904886, 0.8555498133440239],
]
GN_GRADS = [  # (x.grad, heads.grad) at each step: the gradients of sum_i w_i(t) L_i
    ([1.0, 0.0, -2.0], [2.5, 4.25, 6.5]),
    ([1.9933884298059552, -0.017355371637208794, -1.2644628102190874],
     [1.2706611569648718, 3.8882231403823937, 5.0280991739572585]),
    ([2.2673695244196503, -0.3833411742046981, -0.48713402709844766],
     [0.7738139610136745, 3.732911936046044, 3.6461725098348934]),
    ([2.3569498268072495, -0.5332588232681308, -0.12808245746745262],
     [0.5200788630351637, 3.580957529814565, 2.946513280889866]),
    ([2.5047210335243855, -0.6874290620637032, 0.1344834266520445],
     [0.391905888583823, 3.653335161449695, 2.5751913198578418]),
]


def test_gradnorm_matches_the_reference_implementation():
    tasks = ["a", "b", "c"]
    bal = GradientBalancer(BalancingConfig(method="gradnorm", gradnorm_alpha=1.5,
                                           gradnorm_lr=0.025), tasks)
    a = torch.tensor(GN_A, dtype=torch.float64)
    x = torch.nn.Parameter(torch.tensor([0.5, -0.5, 1.0], dtype=torch.float64))
    heads = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    used = [1.0, 1.0, 1.0]
    for scales, weights, (x_grad, head_grad) in zip(GN_SCALES, GN_WEIGHTS, GN_GRADS, strict=True):
        x.grad = heads.grad = None
        losses = {t: s * heads[i] * ((x - a[i]) ** 2).sum()
                  for i, (t, s) in enumerate(zip(tasks, scales, strict=True))}
        w = bal.backward(losses, [x])
        assert list(w.values()) == pytest.approx(used, abs=1e-12)  # the step uses w(t)
        assert x.grad.tolist() == pytest.approx(x_grad, abs=1e-12)
        assert heads.grad.tolist() == pytest.approx(head_grad, abs=1e-12)  # heads weighted too
        assert bal.weights.tolist() == pytest.approx(weights, abs=1e-12)
        used = weights
    assert bal.weights.sum().item() == pytest.approx(3.0)
    assert bal.weights[1] > bal.weights[0] > bal.weights[2]  # b trains slowest, c has most gradient


def test_gradnorm_adds_the_auxiliary_gradient_unweighted():
    x = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    bal = GradientBalancer(BalancingConfig(method="gradnorm"), ["a", "b"])
    bal.weights[:] = torch.tensor([1.5, 0.5], dtype=torch.float64)
    bal.backward({"a": (x**2).sum(), "b": (3 * x).sum()}, [x], extra_loss=(x**3).sum())
    expected = 1.5 * 2 * torch.tensor([1.0, -1.0]) + 0.5 * 3 + 3 * torch.tensor([1.0, 1.0])
    assert torch.allclose(x.grad, expected)


def test_cagrad_adds_the_auxiliary_gradient_to_the_combination():
    x = torch.nn.Parameter(torch.tensor([1.0, -1.0], dtype=torch.float64))
    bal = GradientBalancer(BalancingConfig(method="cagrad", cagrad_c=0.4), ["a", "b"])
    bal.backward({"a": (x**2).sum(), "b": (3 * x).sum()}, [x], extra_loss=(x**3).sum())
    g = torch.stack([2 * x.detach(), torch.full((2,), 3.0, dtype=torch.float64)])
    assert torch.allclose(x.grad, cagrad_direction(g, 0.4) + 3 * x.detach() ** 2)


def test_sum_is_plain_backward():
    x = torch.nn.Parameter(torch.tensor([1.0, -1.0]))
    GradientBalancer(BalancingConfig(method="sum"), ["a", "b"]).backward(
        {"a": (x**2).sum(), "b": (3 * x).sum()}, [x])
    assert torch.allclose(x.grad, 2 * torch.tensor([1.0, -1.0]) + 3)
