"""Parameter-efficient fine-tuning modules and how they attach to a frozen open_clip tower.

Every module lives in the model's ``peft`` ModuleDict under a stable name; the tower holds only
hooks (adapters, MoE adapters, prompts) or a parametrization (LoRA) that *refers* to it. So the
backbone's modules stay intact, and the state-dict subset that a client uploads is exactly the
``peft.*`` (plus task adapter and heads) entries.

- Bottleneck adapter (Houlsby-style, after a block): x + s * up(GELU(down(x))), up zero-initialised.
- Mixture-of-experts adapter: E bottleneck experts, top-k softmax gating per token (top-1 scaled
  by the router probability, as in Switch), with the Switch load-balancing loss in ``aux_loss``.
- LoRA on the attention projections: W + (alpha / r) * B A, B zero-initialised.
- Prompt tuning: n learnable tokens inserted after the class token, removed after the tower.

``METHODS`` maps ``learning.model.peft.method`` to the function that attaches that method's
modules to one tower and returns them by name. A module with an ``aux_loss`` attribute adds it to
the training loss. A method of the user's own is ``module:function`` in the scenario (one file; it
trains clients one after another); a built-in one has its modules and attach function here and its
name in ``cosim.names.PEFT_METHODS``.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from cosim.errors import InputError
from cosim.registry import Registry
from cosim.scenario import PeftConfig

if TYPE_CHECKING:
    from cosim.learning.towers import ClipModule


class BottleneckAdapter(nn.Module):
    """A residual bottleneck; returns the delta to add to the block output."""

    def __init__(self, width: int, bottleneck: int, scale: float):
        super().__init__()
        self.down = nn.Linear(width, bottleneck)
        self.up = nn.Linear(bottleneck, width)
        self.scale = scale
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * self.up(F.gelu(self.down(x)))


class MoEAdapter(nn.Module):
    """Top-k gated bottleneck experts; ``aux_loss`` is the load-balancing loss of the last call.

    k = 1 is Switch routing (Fedus et al., 2021): output p_i(x) E_i(x). k > 1 renormalises the
    top-k probabilities to sum to 1."""

    def __init__(self, width: int, bottleneck: int, scale: float, experts: int, top_k: int):
        super().__init__()
        self.gate = nn.Linear(width, experts)
        self.down = nn.Parameter(torch.empty(experts, width, bottleneck))
        self.down_bias = nn.Parameter(torch.zeros(experts, bottleneck))
        self.up = nn.Parameter(torch.zeros(experts, bottleneck, width))
        self.up_bias = nn.Parameter(torch.zeros(experts, width))
        nn.init.kaiming_uniform_(self.down.view(-1, bottleneck).T, a=math.sqrt(5))
        self.scale, self.top_k, self.experts = scale, top_k, experts
        self.aux_loss = torch.zeros(())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        probs = self.gate(x).softmax(dim=-1)  # (..., E)
        top_p, top_i = probs.topk(self.top_k, dim=-1)
        # Switch (k = 1) scales the expert by its router probability, which is what gives the
        # router a task gradient; renormalising one probability would make it a constant 1.
        gates = top_p if self.top_k == 1 else top_p / top_p.sum(-1, keepdim=True)
        weights = torch.zeros_like(probs).scatter(-1, top_i, gates)
        hidden = F.gelu(torch.einsum("...w,ewb->...eb", x, self.down) + self.down_bias)
        out = torch.einsum("...eb,ebw->...ew", hidden, self.up) + self.up_bias
        # Switch load balancing: E * sum_e (share of tokens routed to e) * (mean gate prob of e)
        routed = F.one_hot(top_i[..., 0], self.experts).float().reshape(-1, self.experts).mean(0)
        self.aux_loss = self.experts * (routed * probs.reshape(-1, self.experts).mean(0)).sum()
        return self.scale * (weights.unsqueeze(-1) * out).sum(dim=-2)


class LoRA(nn.Module):
    """Low-rank update of one weight matrix (out x in)."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float):
        super().__init__()
        self.a = nn.Parameter(torch.empty(rank, in_features))
        self.b = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.a, a=math.sqrt(5))
        self.scaling = alpha / rank

    def delta(self) -> torch.Tensor:
        return self.scaling * self.b @ self.a


class _LoRAParametrization(nn.Module):
    """W -> W + delta, with the LoRA module held by reference (it lives in ``peft``)."""

    lora: LoRA  # set past nn.Module's registry: not a submodule of the weight it parametrizes

    def __init__(self, lora: LoRA):
        super().__init__()
        object.__setattr__(self, "lora", lora)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.lora.delta().to(weight.dtype)


class PromptTokens(nn.Module):
    """Learnable tokens inserted after the class token of a vision tower."""

    def __init__(self, n_tokens: int, width: int):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(n_tokens, width) * 0.02)


class _AddAdapter:
    """A block's forward hook adding ``adapter(output)``; an object rather than a closure, so a
    deep copy of the model (a training replica, ``remote.ThreadTrainer``) calls its own adapter."""

    def __init__(self, adapter: nn.Module):
        self.adapter = adapter

    def __call__(self, _module: nn.Module, _args, out: torch.Tensor) -> torch.Tensor:
        return out + self.adapter(out)


def attach_block_adapter(block: nn.Module, adapter: nn.Module) -> torch.utils.hooks.RemovableHandle:
    """Add ``adapter(output)`` to a transformer block's output."""
    return block.register_forward_hook(_AddAdapter(adapter))


def attach_lora(attn: nn.MultiheadAttention, rank: int, alpha: float) -> dict[str, LoRA]:
    """LoRA on the fused q/k/v input projection and the output projection of an attention."""
    width = attn.embed_dim
    loras = {"qkv": LoRA(3 * width, width, rank, alpha), "out": LoRA(width, width, rank, alpha)}
    parametrize.register_parametrization(attn, "in_proj_weight", _LoRAParametrization(loras["qkv"]))
    parametrize.register_parametrization(attn.out_proj, "weight", _LoRAParametrization(loras["out"]))
    return loras


def attach_prompts(transformer: ClipModule, prompts: PromptTokens) -> list:
    """Insert prompt tokens after the class token on the way in, drop them on the way out."""
    n = prompts.tokens.shape[0]

    def before(_m, args, kwargs):
        x = args[0]
        p = prompts.tokens.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        return (torch.cat([x[:, :1], p, x[:, 1:]], dim=1), *args[1:]), kwargs

    def after(_m, _args, out):
        return torch.cat([out[:, :1], out[:, 1 + n:]], dim=1)

    return [transformer.register_forward_pre_hook(before, with_kwargs=True),
            transformer.register_forward_hook(after)]


def upper_blocks(transformer: ClipModule, last_blocks: int) -> list[int]:
    """Indices of the tower's last ``last_blocks`` blocks (where PEFT goes, the authors' choice)."""
    n = len(transformer.resblocks)
    return list(range(n - min(last_blocks, n), n))


def adapters(transformer: ClipModule, branch: str, cfg: PeftConfig) -> dict[str, nn.Module]:
    out: dict[str, nn.Module] = {}
    for i in upper_blocks(transformer, cfg.last_blocks):
        out[f"block{i}"] = module = BottleneckAdapter(transformer.width, cfg.bottleneck, cfg.scale)
        attach_block_adapter(transformer.resblocks[i], module)
    return out


def moe_adapters(transformer: ClipModule, branch: str, cfg: PeftConfig) -> dict[str, nn.Module]:
    out: dict[str, nn.Module] = {}
    for i in upper_blocks(transformer, cfg.last_blocks):
        out[f"block{i}"] = module = MoEAdapter(transformer.width, cfg.bottleneck, cfg.scale,
                                               cfg.experts, cfg.top_k)
        attach_block_adapter(transformer.resblocks[i], module)
    return out


def loras(transformer: ClipModule, branch: str, cfg: PeftConfig) -> dict[str, nn.Module]:
    return {f"block{i}": nn.ModuleDict(attach_lora(transformer.resblocks[i].attn, cfg.lora_rank,
                                                   cfg.lora_alpha))
            for i in upper_blocks(transformer, cfg.last_blocks)}


def prompts(transformer: ClipModule, branch: str, cfg: PeftConfig) -> dict[str, nn.Module]:
    if branch == "text":
        return {}  # prompts would break the causal mask and the EOT pooling
    tokens = PromptTokens(cfg.prompt_tokens, transformer.width)
    attach_prompts(transformer, tokens)
    return {"prompt": tokens}


def _attach_function_problem(found: object) -> str | None:
    """What keeps a user's object from being an attach function ``(transformer, branch, cfg)``
    (a class is not one: calling it makes an instance, not the modules by name)."""
    try:
        if isinstance(found, type):
            raise TypeError
        inspect.signature(found).bind(None, None, None)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "expected a function (transformer, branch, cfg) -> {name: module}"
    return None


def attach(method: str, transformer: ClipModule, branch: str, cfg: PeftConfig
           ) -> dict[str, nn.Module]:
    """The modules ``method`` attaches to one tower, by name. A user's method that fails, or
    returns anything but ``{name: module}``, is an InputError naming the scenario field: the
    model is built on the meta device before a run's folder, so this is said before it."""
    attach_fn = METHODS.resolve(method)
    if method in METHODS:  # built-in: its own failures are cosim's
        return attach_fn(transformer, branch, cfg)
    field = METHODS.field
    try:
        modules = attach_fn(transformer, branch, cfg)
    except Exception as exc:  # the user's code, reported as their input
        raise InputError(None, field, f"{method!r} failed on the {branch} tower: "
                         f"{type(exc).__name__}: {exc}") from None
    if not isinstance(modules, Mapping):
        raise InputError(None, field, f"{method!r} returned {type(modules).__name__}, not a "
                         "dict {name: module}")
    for name, module in modules.items():
        if not isinstance(name, str) or not name or "." in name:
            raise InputError(None, field, f"{method!r} returned the module name {name!r}: give "
                             "names without dots")
        if not isinstance(module, nn.Module):
            raise InputError(None, field, f"{method!r} returned {type(module).__name__} as "
                             f"{name!r}, not a torch module")
    return dict(modules)


# keyed by cosim.names.PEFT_METHODS, the names the scenario accepts (or a user's module:function)
METHODS: Registry[Callable[..., dict[str, nn.Module]]] = Registry(
    "PEFT method", "learning.model.peft.method",
    {"adapter": adapters, "lora": loras, "prompt": prompts, "moe_adapter": moe_adapters},
    check=_attach_function_problem)
