"""The multi-modal multi-task model every client fine-tunes (paper, section VI-B).

- Image tower: open_clip's vision transformer. LiDAR tower: a second vision transformer with the
  image tower's architecture, initialised from its weights, fed two pseudo-images of the sweep
  (``data/samples.py``), each through its own 3x3 conv + BatchNorm stem that starts as the
  identity: the range view and a bird's-eye view (BEV) over the det3d grid. Text tower:
  open_clip's text transformer, fed "augmented text" built from the scene. All three towers are
  frozen.
- PEFT modules on the upper blocks of each tower (``peft``), the shared task adapter between the
  fused features and the heads (``task_adapter``), and one head per task (``heads``): these are
  the only trainable parameters, and each is a named *module* that a client uploads and the
  server averages.
- Fusion per task, from the modalities the paper gives it. A task's token grid is the view its
  output lives in: det3d the LiDAR BEV grid, seg3d the range-view grid, the 2D tasks the image
  grid. The task's other modalities add a global context vector to every token (the mean of the
  other view's tokens, the text embedding): a camera token and a LiDAR token at the same grid
  position see different places, so averaging the grids, as before, mixed unrelated features.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from cosim.learning import peft as P
from cosim.learning import towers as T
from cosim.learning.attention import batch_first_attention
from cosim.learning.backbone import load_clip
from cosim.learning.heads import DenseHead
from cosim.learning.openclip import open_clip_module, tokenizer
from cosim.learning.patches import patch_embedding
from cosim.learning.precision import FP32, autocast
from cosim.learning.tasks import SPECS, task_names
from cosim.scenario import ModelConfig

if TYPE_CHECKING:
    from cosim.learning.towers import ClipModule

# The input view whose token grid a task's head decodes (its output's geometry).
# the built-in PEFT methods that attach in the towers' last ``last_blocks`` blocks only
UPPER_BLOCK_PEFT = ("adapter", "lora", "moe_adapter")


class LidarStem(nn.Module):
    """3x3 conv + BatchNorm on the range pseudo-image, initialised close to the identity."""

    def __init__(self, channels: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        with torch.no_grad():
            self.conv.weight.zero_()
            for c in range(channels):
                self.conv.weight[c, c, 1, 1] = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.conv(x))


class M3TModel(nn.Module):
    """CLIP towers (frozen) + PEFT modules + shared task adapter + task heads."""

    def __init__(self, cfg: ModelConfig, clip: ClipModule | None = None):
        super().__init__()
        self.cfg = cfg
        self.tasks = task_names(cfg.tasks)  # a user's module:NAME as its spec's name
        clip = clip if clip is not None else load_clip(cfg.name, cfg.checkpoint)
        batch_first_attention(clip)  # the towers' training-time attention (``attention.py``)
        patch_embedding(clip.visual)  # and patch embedding (``patches.py``)
        self.image_tower: ClipModule = clip.visual
        self.lidar_tower: ClipModule = copy.deepcopy(clip.visual)
        self.text_tower = _TextTower(clip)
        for tower in (self.image_tower, self.lidar_tower):
            tower.output_tokens = True
        for p in self.backbone_parameters():
            p.requires_grad_(False)
        self.tokenize = tokenizer(cfg.name)
        self.embed_dim = int(clip.visual.output_dim)
        self.grid = self.image_tower.grid_size[0]
        self.image_size = self.image_tower.image_size[0]
        class_embeddings = self._class_embeddings() if cfg.classifier == "text" else {}
        self.peft = nn.ModuleDict({"lidar": nn.ModuleDict({"stem": LidarStem(),
                                                           "bev_stem": LidarStem()})})
        self._aux_modules: list[Any] = []  # the modules with an ``aux_loss`` tensor (MoE adapters)
        self.row_groups = 1  # K while K clients' rows are stacked client-major (``stacking.py``)
        self.precision = FP32  # what the forward computes in (``set_precision``)
        self._attach_peft()
        self.task_adapter = (P.BottleneckAdapter(self.embed_dim, cfg.task_adapter_bottleneck, 1.0)
                             if cfg.task_adapter else None)
        self.heads = nn.ModuleDict({
            t: DenseHead(SPECS[t], self.embed_dim, self.grid, cfg.head_channels, cfg.classifier,
                         class_embeddings.get(t), skip_channels=3 if cfg.input_skip else 0)
            for t in self.tasks
        })

    # ---- structure ------------------------------------------------------------------------
    def backbone_parameters(self):
        for tower in (self.image_tower, self.lidar_tower, self.text_tower):
            for name, p in tower.named_parameters():
                if "parametrizations" in name and not name.endswith(".original"):
                    continue
                yield p

    def train(self, mode: bool = True) -> M3TModel:
        super().train(mode)
        for tower in (self.image_tower, self.lidar_tower, self.text_tower):
            tower.eval()  # frozen: no dropout, no statistics updates
        return self

    def _attach_peft(self) -> None:
        cfg = self.cfg.peft
        towers = {"image": self.image_tower.transformer, "lidar": self.lidar_tower.transformer,
                  "text": self.text_tower.transformer}
        for branch in cfg.branches:
            group = cast(nn.ModuleDict, self.peft[branch]) if branch in self.peft else nn.ModuleDict()
            self.peft[branch] = group
            for name, module in P.attach(cfg.method, towers[branch], branch, cfg).items():
                group[name] = module
                if hasattr(module, "aux_loss"):
                    self._aux_modules.append(module)

    @torch.no_grad()
    def _class_embeddings(self) -> dict[str, torch.Tensor]:
        """Frozen text embeddings of "a photo of a {class}" (before any PEFT is attached)."""
        out = {}
        for task in self.tasks:
            tokens = self.tokenize([f"a photo of a {c}" for c in SPECS[task].classes])
            out[task] = self.text_tower(tokens)
        return out

    def set_precision(self, precision: str) -> None:
        """Compute the forward in ``precision`` (``precision.py``): for bf16 the frozen towers'
        matrix weights are held in bfloat16 (their norms, and every trainable module, stay
        float32) and the forward runs under autocast."""
        if precision == self.precision:
            return
        if self.precision != FP32:
            raise ValueError(f"the towers are already in {self.precision}; build a new model for {precision}")
        if precision != FP32:
            _lower_precision_weights([self.image_tower, self.lidar_tower, self.text_tower], torch.bfloat16)
        self.precision = precision

    def _autocast(self):
        if self.precision == FP32:
            return autocast(FP32, torch.device("cpu"))
        return autocast(self.precision, next(self.parameters()).device)

    # ---- forward ---------------------------------------------------------------------------
    def encode(self, batch: dict) -> dict[str, torch.Tensor]:
        """Token grids (B, P, E) per available modality and the text embedding (B, E).

        ``text`` is a list of strings or their tokens; ``image_prefix`` / ``text_prefix`` (from
        ``encode_prefix``) stand in for the frozen lower blocks of those towers."""
        feats: dict[str, torch.Tensor] = {}
        blocks = self.prefix_blocks()
        if "image_prefix" in batch:
            feats["image"] = T.vision_suffix(self.image_tower, batch["image_prefix"], blocks["image"])
        elif "image" in batch:
            feats["image"] = self._tokens(self.image_tower, batch["image"])
        views = [(k, stem) for k, stem in (("lidar", "stem"), ("lidar_bev", "bev_stem")) if k in batch]
        if views:  # both views in one pass through the tower, each group's rows together
            g = self.row_groups  # clients stacked: client k's rows of both views stay its block
            stems = cast(nn.ModuleDict, self.peft["lidar"])
            x = torch.stack([stems[stem](batch[k]).unflatten(0, (g, -1)) for k, stem in views],
                            dim=1)  # (groups, views, rows, ...)
            tokens = self._tokens(self.lidar_tower, x.flatten(0, 2)).unflatten(0, (g, len(views), -1))
            for i, (k, _) in enumerate(views):
                feats[k] = tokens[:, i].flatten(0, 1)
        if "text" in batch:
            tokens = self.text_tokens(batch["text"])
            feats["text"] = (T.text_suffix(self.text_tower, batch["text_prefix"], tokens, blocks["text"])
                             if "text_prefix" in batch else self.text_tower(tokens))
        return feats

    def text_tokens(self, text) -> torch.Tensor:
        if isinstance(text, torch.Tensor):
            return text
        return self.tokenize(list(text)).to(next(self.parameters()).device)

    def prefix_blocks(self) -> dict[str, int]:
        """Per tower whose lower blocks no PEFT module reaches: how many (their output depends on
        the input alone). Absent: the tower's input is changed from the start (prompts, stems), or
        a user's PEFT method may attach anywhere."""
        out = {}
        for branch, transformer in (("image", self.image_tower.transformer),
                                    ("text", self.text_tower.transformer)):
            n = len(transformer.resblocks)
            if branch not in self.cfg.peft.branches:
                out[branch] = n
            elif self.cfg.peft.method in UPPER_BLOCK_PEFT:
                out[branch] = P.upper_blocks(transformer, self.cfg.peft.last_blocks)[0]
        if self.text_tower.pool_type != "argmax":
            out.pop("text", None)
        return out

    @torch.no_grad()
    def encode_prefix(self, batch: dict) -> dict[str, torch.Tensor]:
        """The frozen lower blocks' output for the image and text in ``batch`` (cacheable; in
        bf16, bfloat16 tensors: half the memory of float32)."""
        with self._autocast():
            return self._encode_prefix(batch)

    def _encode_prefix(self, batch: dict) -> dict[str, torch.Tensor]:
        blocks, out = self.prefix_blocks(), {}
        if "image" in batch and "image" in blocks:
            out["image_prefix"] = T.vision_prefix(self.image_tower, batch["image"], blocks["image"])
        if "text" in batch and "text" in blocks:
            out["text_prefix"] = T.text_prefix(self.text_tower, self.text_tokens(batch["text"]),
                                               blocks["text"])
        return out

    def _tokens(self, tower: ClipModule, x: torch.Tensor) -> torch.Tensor:
        _, tokens = tower(x)
        return tokens @ tower.proj if tower.proj is not None else tokens

    def fuse(self, feats: dict[str, torch.Tensor], task: str,
             present: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """``present`` (per modality, (B,) of 0/1) masks the context of a modality some rows lack
        (clients trained together, ``batched.py``); without it, what is in ``feats`` counts."""
        grid = SPECS[task].view
        if grid not in feats:
            raise ValueError(f"task {task} needs its {grid} input")
        fused = feats[grid]
        for m in SPECS[task].modalities:
            if m == "text" and "text" in feats:
                context = feats["text"].unsqueeze(1)
            elif m in ("image", "lidar") and m != grid and m in feats:
                context = feats[m].mean(1, keepdim=True)
            else:
                continue
            if present is not None and m in present:
                context = context * present[m].to(context.dtype).view(-1, 1, 1)
            fused = fused + context
        if self.task_adapter is not None:
            fused = fused + self.task_adapter(fused)
        return fused

    def forward(self, batch: dict, tasks: list[str] | None = None,
                present: dict[str, torch.Tensor] | None = None) -> dict[str, dict]:
        """Each task's head output (``scores``, ``reg``), float32 whatever the precision: the
        losses and metrics computed from them are float32."""
        for module in self._aux_modules:  # a tower this batch does not run adds no aux loss
            module.aux_loss = torch.zeros(())
        with self._autocast():
            feats = self.encode(batch)
            skip = batch if self.cfg.input_skip else {}
            out = {t: self.heads[t](self.fuse(feats, t, present), skip.get(SPECS[t].view))
                   for t in (tasks or list(self.heads))}
        if self.precision == FP32:
            return out
        return {t: {k: v.float() for k, v in o.items()} for t, o in out.items()}

    @property
    def has_aux_loss(self) -> bool:
        return bool(self._aux_modules)

    def aux_loss(self) -> torch.Tensor:
        """Load-balancing loss of the MoE adapters in the last forward (0 otherwise)."""
        if not self._aux_modules:
            return torch.zeros(())
        return self.cfg.peft.balance_weight * sum(m.aux_loss.float() for m in self._aux_modules)

    # ---- modules: what a client trains, uploads, and the server averages --------------------
    def module_names(self) -> list[str]:
        names = [f"peft.{branch}.{key}" for branch, group in self.peft.items()
                 for key in cast(nn.ModuleDict, group)]
        if self.task_adapter is not None:
            names.append("task_adapter")
        return names + [f"heads.{t}" for t in self.heads]

    def modules_for(self, tasks: list[str], modalities: list[str]) -> list[str]:
        """The modules a client with these tasks and modalities trains (others get no gradient)."""
        used = {m for t in tasks for m in SPECS[t].modalities if m in modalities}
        names = [n for n in self.module_names()
                 if (n.startswith("peft.") and n.split(".")[1] in used)
                 or (n == "task_adapter")
                 or (n.startswith("heads.") and n.split(".")[1] in tasks)]
        return names

    def get_module(self, name: str) -> nn.Module:
        return self.get_submodule(name)

    def export_modules(self, names: list[str]) -> dict[str, torch.Tensor]:
        """State-dict subset of the named modules (what is uploaded), detached copies."""
        out = {}
        for name in names:
            for key, value in self.get_module(name).state_dict().items():
                out[f"{name}.{key}"] = value.detach().clone()
        return out

    def import_modules(self, state: Mapping[str, torch.Tensor]) -> None:
        """Load a state-dict subset produced by ``export_modules``."""
        grouped: dict[str, dict[str, torch.Tensor]] = {}
        names = sorted(self.module_names(), key=len, reverse=True)
        for key, value in state.items():
            name = next((n for n in names if key.startswith(n + ".")), None)
            if name is None:
                raise KeyError(f"{key} belongs to no trainable module")
            grouped.setdefault(name, {})[key[len(name) + 1:]] = value
        for name, sub in grouped.items():
            self.get_module(name).load_state_dict(sub)

    def trainable_parameters(self, names: list[str]) -> list[nn.Parameter]:
        return [p for n in names for p in self.get_module(n).parameters()]


def _lower_precision_weights(towers: list[nn.Module], dtype: torch.dtype) -> None:
    """open_clip's ``convert_weights_to_lp`` on each tower, plus the text tower's projection (a
    plain parameter here, outside open_clip's ``TextTransformer``)."""
    convert = open_clip_module().model.convert_weights_to_lp
    for tower in towers:
        convert(tower, dtype)
        projection = getattr(tower, "text_projection", None)
        if isinstance(projection, nn.Parameter):
            projection.data = projection.data.to(dtype)


def state_bytes(state: Mapping[str, torch.Tensor]) -> int:
    """Bytes a state-dict subset takes on the air (raw tensor data)."""
    return sum(v.numel() * v.element_size() for v in state.values())


class _TextTower(nn.Module):
    """open_clip's text path as one module: tokens -> projected, pooled embedding."""

    def __init__(self, clip: ClipModule):
        super().__init__()
        self.token_embedding: ClipModule = clip.token_embedding
        self.positional_embedding: torch.Tensor = clip.positional_embedding
        self.transformer: ClipModule = clip.transformer
        self.ln_final: ClipModule = clip.ln_final
        self.text_projection: ClipModule = clip.text_projection
        self.register_buffer("attn_mask", clip.attn_mask, persistent=False)
        self._encode = clip.encode_text
        self.pool_type = getattr(clip, "text_pool_type", "argmax")

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self._encode(tokens)


def replicate(model: M3TModel) -> M3TModel:
    """A copy of the model for another thread (a training worker, the background evaluation):
    its own PEFT modules, heads and module state (a stacked pass patches them), the frozen
    backbone's tensors and the tokenizer shared."""
    memo: dict[int, Any] = {id(p): p for p in model.backbone_parameters()}
    memo[id(model.tokenize)] = model.tokenize
    return copy.deepcopy(model, memo)
