"""The towers' batch-first self-attention against PyTorch's own ``nn.MultiheadAttention``."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from cosim.learning.attention import BatchFirstSelfAttention, batch_first_attention


def _pair(dtype: torch.dtype) -> tuple[nn.MultiheadAttention, nn.MultiheadAttention]:
    torch.manual_seed(0)
    reference = nn.MultiheadAttention(64, 4, batch_first=True).to(dtype)
    with torch.no_grad():  # a bias that is not zero, as a trained tower's
        reference.in_proj_bias.normal_()
        reference.out_proj.bias.normal_()
    ours = copy.deepcopy(reference)
    batch_first_attention(ours)
    assert type(ours) is BatchFirstSelfAttention
    return reference, ours


def _refused(*args, **kwargs):
    raise AssertionError("fell back to nn.MultiheadAttention.forward")


def _causal(t: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.full((t, t), float("-inf"), dtype=dtype).triu(1)  # open_clip's text mask


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_training_attention_matches_pytorch(masked, dtype, tol, monkeypatch):
    reference, ours = _pair(dtype)
    x = torch.randn(6, 17, 64, dtype=dtype)
    mask = _causal(17, dtype) if masked else None
    outs, grads = [], []
    for module in (reference, ours):
        xi = x.clone().requires_grad_(True)
        with monkeypatch.context() as patch:
            if module is ours:  # its own path, not PyTorch's forward by way of the fallback
                patch.setattr(nn.MultiheadAttention, "forward", _refused)
            out, weights = module(xi, xi, xi, need_weights=False, attn_mask=mask)
        assert weights is None
        (out * torch.linspace(-1, 1, 64, dtype=dtype)).sum().backward()
        outs.append(out.detach())
        grads.append(xi.grad)
    # the same arithmetic, its sums grouped another way: equal to float rounding
    assert torch.allclose(outs[0], outs[1], atol=tol, rtol=tol)
    assert torch.allclose(grads[0], grads[1], atol=tol, rtol=tol)


def test_parameter_gradients_match_pytorch():
    """LoRA trains through the projections: their weights' gradients agree too."""
    reference, ours = _pair(torch.float64)
    x = torch.randn(3, 9, 64, dtype=torch.float64)
    for module in (reference, ours):
        out, _ = module(x, x, x, need_weights=False)
        out.square().sum().backward()
    for (name, a), (_, b) in zip(reference.named_parameters(), ours.named_parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-10, rtol=1e-10), name


def test_other_calls_are_pytorch_s_own():
    """Weights asked for, key masks, cross-attention, no gradients: nn.MultiheadAttention's path,
    the same bits."""
    reference, ours = _pair(torch.float32)
    reference.eval()
    ours.eval()
    x, y = torch.randn(2, 5, 64), torch.randn(2, 7, 64)
    padding = torch.tensor([[False] * 5, [False] * 3 + [True] * 2])
    calls = [((x, x, x), {"need_weights": True}),
             ((x, x, x), {"need_weights": False, "key_padding_mask": padding}),
             ((x, y, y), {"need_weights": False})]
    for args, kwargs in calls:
        a, b = reference(*args, **kwargs), ours(*args, **kwargs)
        assert torch.equal(a[0], b[0])
        assert (a[1] is None) == (b[1] is None)
    with torch.no_grad():  # the evaluation's inference path
        assert torch.equal(reference(x, x, x, need_weights=False)[0], ours(x, x, x, need_weights=False)[0])


def test_model_towers_use_it():
    from cosim.learning.model import M3TModel
    from cosim.scenario import ModelConfig

    model = M3TModel(ModelConfig())
    attentions = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    assert attentions and all(isinstance(m, BatchFirstSelfAttention) for m in attentions)
