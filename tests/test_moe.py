"""MoE adapter gating: Switch top-1 (output scaled by the router probability) and top-k."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cosim.learning.peft import MoEAdapter


def _adapter(top_k: int) -> MoEAdapter:
    torch.manual_seed(0)
    moe = MoEAdapter(width=8, bottleneck=4, scale=0.5, experts=4, top_k=top_k)
    with torch.no_grad():  # ``up`` starts at zero; give the experts an output to route
        moe.up.normal_()
        moe.up_bias.normal_()
        moe.gate.weight.mul_(4.0)
    return moe


def _expert(moe: MoEAdapter, x: torch.Tensor, e: int) -> torch.Tensor:
    return F.gelu(x @ moe.down[e] + moe.down_bias[e]) @ moe.up[e] + moe.up_bias[e]


def test_top1_scales_the_expert_by_its_router_probability():
    moe = _adapter(top_k=1)
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    out = moe(x)
    probs = torch.softmax(x @ moe.gate.weight.T + moe.gate.bias, dim=-1)
    p, idx = probs.max(-1)
    expected = torch.stack([moe.scale * p[b, t] * _expert(moe, x[b, t], int(idx[b, t]))
                            for b in range(2) for t in range(5)]).view(2, 5, 8)
    assert torch.allclose(out, expected, atol=1e-6)
    assert moe.aux_loss > 0  # the load-balancing loss is still computed


def test_top1_router_gets_a_task_gradient_without_the_aux_loss():
    moe = _adapter(top_k=1)
    x = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1))
    target = torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(2))
    ((moe(x) - target) ** 2).mean().backward()  # a task loss alone
    assert moe.gate.weight.grad.norm() > 1e-2
    assert moe.gate.weight.grad.norm() > 1e-2 * moe.down.grad.norm()


def test_top2_renormalises_the_selected_probabilities():
    moe = _adapter(top_k=2)
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(3))
    out = moe(x)
    probs = torch.softmax(x @ moe.gate.weight.T + moe.gate.bias, dim=-1)
    top_p, top_i = probs.topk(2, dim=-1)
    for b in range(3):
        mix = sum(top_p[b, j] / top_p[b].sum() * _expert(moe, x[b], int(top_i[b, j])) for j in range(2))
        assert torch.allclose(out[b], moe.scale * mix, atol=1e-6)
