"""K clients' trainable modules stacked on a leading client axis, and the one model run that uses
them: the frozen backbone sees all K clients' samples as one batch (client-major, K x B), and
every trainable module applies client k's weights to client k's rows.

A trainable module (adapter, LIDAR stem, task adapter, head) runs as ``torch.func.vmap`` over the
client axis of ``functional_call`` with the client's parameters and buffers (BatchNorm statistics
per client, as each client computes them alone). LoRA changes a frozen attention's weights, so
inside a stacked run the attention itself is computed here: x W^T + s (x A_k^T) B_k^T per client,
then PyTorch's scaled-dot-product attention over all K x B rows at once.

What cannot stack (prompt tokens, MoE adapters whose auxiliary loss is a side effect of the call)
is named by ``unstackable_reason``; those runs train clients one after another.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, vmap
from torch.nn.utils import parametrize

from cosim.learning import peft as P
from cosim.learning.attention import attend
from cosim.learning.model import M3TModel
from cosim.names import STACKABLE_PEFT

Stacked = dict[str, torch.Tensor]  # "module.param" -> (K, ...)

def unstackable_reason(model: M3TModel) -> str | None:
    """Why this model's clients cannot share one batched pass (None: they can)."""
    method = model.cfg.peft.method
    if method not in STACKABLE_PEFT:
        return (f"PEFT method {method!r} trains clients one after another (batched: "
                f"{', '.join(STACKABLE_PEFT)})")
    return None


def module_state(stacked: Stacked, name: str) -> Stacked:
    """The entries of module ``name``, keyed relative to it (what ``functional_call`` takes)."""
    prefix = name + "."
    return {k[len(prefix):]: v for k, v in stacked.items() if k.startswith(prefix)}


class ClientStack:
    """The stacked parameters (leaves with gradients) and buffers of K clients' modules."""

    def __init__(self, model: M3TModel, names: list[str], starts: list[dict[str, torch.Tensor]],
                 device: torch.device):
        self.model, self.names, self.k = model, names, len(starts)
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        for name in names:
            module = model.get_module(name)
            current = module.state_dict()
            for key, _ in module.named_parameters():
                full = f"{name}.{key}"
                rows = [s.get(full, current[key]) for s in starts]
                self.params[full] = stack_rows(rows, current[key]).to(device).detach().requires_grad_(True)
            for key, _ in module.named_buffers():
                if key not in current:  # non-persistent (frozen class embeddings): shared
                    continue
                full = f"{name}.{key}"
                rows = [s.get(full, current[key]) for s in starts]
                self.buffers[full] = torch.stack(rows).to(device).clone()

    def export(self, client: int, names: list[str]) -> dict[str, torch.Tensor]:
        """Client ``client``'s state subset of ``names`` (as ``M3TModel.export_modules`` gives)."""
        out = {}
        for name in names:
            for key in self.model.get_module(name).state_dict():
                full = f"{name}.{key}"
                source = self.params if full in self.params else self.buffers
                out[full] = source[full][client].detach().clone()
        return out


def stack_rows(rows: list[torch.Tensor], like: torch.Tensor) -> torch.Tensor:
    """The rows on a new leading axis, each row laid out in memory as ``like`` (a channels-last
    convolution weight stays channels-last: no reorder in every call)."""
    if like.dim() == 4 and not like.is_contiguous() and like.is_contiguous(memory_format=torch.channels_last):
        return torch.stack([r.permute(0, 2, 3, 1) for r in rows]).permute(0, 1, 4, 2, 3)
    return torch.stack(rows)


@contextlib.contextmanager
def stacked_run(stack: ClientStack) -> Iterator[None]:
    """Inside: the model's trainable modules compute per client on client-major rows."""
    model, patched = stack.model, []
    model.row_groups = stack.k  # the LiDAR views of a client share its block of rows
    try:
        for name in stack.names:
            module = model.get_module(name)
            if isinstance(module, nn.ModuleDict) and any(isinstance(m, P.LoRA) for m in module.values()):
                continue  # LoRA acts through its attention, below
            patched.append(module)
            module.forward = _per_client(module, module_state(stack.params, name),
                                         module_state(stack.buffers, name), stack.k)
        for attn, loras in _lora_attentions(model, stack):
            patched.append(attn)
            attn.forward = _lora_attention(attn, loras, stack.k)
        yield
    finally:
        for module in patched:
            del module.forward  # back to the class's forward
        model.row_groups = 1


def _per_client(module: nn.Module, params: Stacked, buffers: Stacked, k: int):
    """A forward that applies client k's weights to rows k*B..(k+1)*B-1 of every tensor argument.

    Modules with convolutions loop over the clients (oneDNN runs K plain convolutions faster than
    one grouped convolution, which is what vmap makes of per-client conv weights); the others
    (linear layers) run as one vmap."""
    inner = type(module).forward.__get__(module)
    depth = [0]
    loop = any(isinstance(m, nn.modules.conv._ConvNd) for m in module.modules())

    def call(p, b, *args):
        return functional_call(module, (p, b), args, strict=False)

    def per_client(*args):
        split = [a.unflatten(0, (k, -1)) if isinstance(a, torch.Tensor) else a for a in args]
        if not loop:
            dims = tuple(0 if isinstance(a, torch.Tensor) else None for a in args)
            return _flatten_clients(vmap(call, in_dims=(0, 0, *dims))(params, buffers, *split))
        outs = []
        low = _autocast_dtype(next(iter(params.values())).device)
        weights = params if low is None else {  # in autocast's dtype once, not once per client
            key: v.to(low) if v.dim() >= 3 else v for key, v in params.items()}
        # unbind: one backward node per parameter stacks the K gradients (indexing row by row
        # would scatter each into a zero tensor of the whole stack); buffer rows are views, so
        # BatchNorm's statistics update the stack in place
        p_rows = {key: v.unbind(0) for key, v in weights.items()}
        b_rows = {key: v.unbind(0) for key, v in buffers.items()}
        a_rows = [a.unbind(0) if isinstance(a, torch.Tensor) else None for a in split]
        for i in range(k):
            row = [r[i] if r is not None else a for r, a in zip(a_rows, split, strict=True)]
            outs.append(call({key: v[i] for key, v in p_rows.items()},
                             {key: v[i] for key, v in b_rows.items()}, *row))
        if isinstance(outs[0], dict):
            return {key: torch.cat([o[key] for o in outs]) for key in outs[0]}
        return torch.cat(outs)

    def forward(*args):
        if depth[0]:  # functional_call re-enters through module.__call__: the plain forward
            return inner(*args)
        depth[0] += 1
        try:
            return per_client(*args)
        finally:
            depth[0] -= 1

    return forward


def _autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The dtype autocast casts matrix and convolution weights to here (None: not enabled)."""
    if not torch.is_autocast_enabled(device.type):
        return None
    return torch.get_autocast_dtype(device.type)


def _flatten_clients(out):
    if isinstance(out, dict):
        return {key: v.flatten(0, 1) for key, v in out.items()}
    return out.flatten(0, 1)


def _lora_attentions(model: M3TModel, stack: ClientStack):
    """(attention, {"qkv": (A, B, scaling), "out": ...}) for every LoRA'd attention."""
    by_lora = {}
    for name in stack.names:
        module = model.get_module(name)
        if isinstance(module, nn.ModuleDict):
            for part, lora in module.items():
                if isinstance(lora, P.LoRA):
                    by_lora[id(lora)] = (stack.params[f"{name}.{part}.a"],
                                         stack.params[f"{name}.{part}.b"], lora.scaling)
    for attn in model.modules():
        if isinstance(attn, nn.MultiheadAttention) and parametrize.is_parametrized(attn, "in_proj_weight"):
            # torch's parametrize adds ``parametrizations`` (untyped) to the parametrized modules
            qkv_list: Any = attn.parametrizations
            out_list: Any = attn.out_proj.parametrizations
            qkv = qkv_list.in_proj_weight[0].lora
            out = out_list.weight[0].lora
            if id(qkv) in by_lora and id(out) in by_lora:
                yield attn, {"qkv": by_lora[id(qkv)], "out": by_lora[id(out)]}


def _lora_delta(x: torch.Tensor, lora: tuple[torch.Tensor, torch.Tensor, float], k: int) -> torch.Tensor:
    a, b, scaling = lora
    xk = x.unflatten(0, (k, -1))
    low = torch.einsum("k...i,kri->k...r", xk, a)
    return (scaling * torch.einsum("k...r,kor->k...o", low, b)).flatten(0, 1)


def _lora_attention(attn: nn.MultiheadAttention, loras: dict, k: int):
    """nn.MultiheadAttention's self-attention (q = k = v) with per-client LoRA on its projections."""

    def forward(query, key=None, value=None, need_weights=False, attn_mask=None, **_):
        x = query if attn.batch_first else query.transpose(0, 1)  # (N, T, W)
        n, t, width = x.shape
        heads = attn.num_heads
        weight = attn.parametrizations.in_proj_weight.original
        qkv = F.linear(x, weight, attn.in_proj_bias) + _lora_delta(x, loras["qkv"], k)
        q, kk, v = (z.reshape(n, t, heads, width // heads).transpose(1, 2) for z in qkv.chunk(3, -1))
        o = attend(q, kk, v, attn_mask).transpose(1, 2).reshape(n, t, width)
        out = F.linear(o, attn.out_proj.parametrizations.weight.original, attn.out_proj.bias)
        out = out + _lora_delta(o, loras["out"], k)
        return (out if attn.batch_first else out.transpose(0, 1)), None

    return forward
