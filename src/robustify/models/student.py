"""The three-head student of DESIGN.md §1: frozen trunk → shared tunable blocks → clean/combined/robust heads.

A registered model is cut into a stem, a flat list of blocks and a neck (last-block output →
pre-logit features: pooling, plus EfficientNet's conv_head/bn2, a ViT's final norm, CLIP's
ln_post/proj/normalisation). With N blocks, `n_tunable_blocks` = k and `head_depth` = d (k ≥ d):

    trunk    = stem + blocks[:N-k]                  frozen, eval mode, no grad (its output is cacheable)
    tunable  = blocks[N-k:N-d] (+ the neck if d=0)  shared by the heads
    head[h]  = copies of blocks[N-d:] + neck (if d>0) → dropout p → copy of the classifier

The classifier is the pretrained one, a linear-probe head (`init_head`) or, for CLIP, the zero-shot
prompt classifier.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import ConfigError
from .heads import HEADS, Head, copy_linear

__all__ = ["HEADS", "FrozenTrunkModel", "MultiHeadStudent", "SplitSingleHead", "create_student", "split_model"]


# ---------------------------------------------------------------------------------------------
# family splits: model -> (stem, blocks, neck, classifier)


class _AvgPoolNHWCGrad(torch.autograd.Function):
    """Global average pool whose gradient keeps the input's channels_last layout.

    Autograd's own backward hands an expanded NCHW-strided gradient to the head's last activation and
    BatchNorm backward, which then run on mixed layouts several times slower (measured: the
    EfficientNet-Lite0 neck's training step 71 → 43 ms for 256 images at 3×3, one thread). Same
    values as autograd's: g / (H·W) broadcast."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.shape, ctx.nhwc = x.shape, x.is_contiguous(memory_format=torch.channels_last)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    @staticmethod
    def backward(ctx, g: torch.Tensor) -> torch.Tensor:
        n, c, h, w = ctx.shape
        fmt = torch.channels_last if ctx.nhwc else torch.contiguous_format
        return (g / (h * w))[:, :, None, None].expand(n, c, h, w).contiguous(memory_format=fmt)


class GlobalAvgPool(nn.Module):
    """CNN neck's pooling (CIFAR ResNet, EfficientNet): adaptive_avg_pool2d(x, 1).flatten(1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and not torch.jit.is_tracing():  # frozen inference graphs trace the plain op
            return _AvgPoolNHWCGrad.apply(x)
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class _TimmViTStem(nn.Module):
    def __init__(self, vit: nn.Module):
        super().__init__()
        self.vit = vit  # stripped: no blocks, norm or head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = self.vit
        return v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(x))))


class _TimmViTNeck(nn.Module):
    def __init__(self, vit: nn.Module):
        super().__init__()
        if getattr(vit, "attn_pool", None) is not None:
            raise ConfigError("ViTs with attention pooling are not supported as students; pick a token/avg-pool ViT")
        self.norm = vit.norm
        self.fc_norm = vit.fc_norm
        self.pool_type = vit.global_pool
        self.num_prefix_tokens = vit.num_prefix_tokens
        self.include_prefix = getattr(vit, "pool_include_prefix", False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from timm.layers import global_pool_nlc

        x = self.norm(x)
        x = global_pool_nlc(x, pool_type=self.pool_type, num_prefix_tokens=self.num_prefix_tokens,
                            reduce_include_prefix=self.include_prefix)
        return self.fc_norm(x)


class _ClipStem(nn.Module):
    def __init__(self, visual: nn.Module):
        super().__init__()
        self.visual = visual  # stripped: no resblocks, ln_post or proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual._embeds(x)


class _ClipNeck(nn.Module):
    """open_clip VisionTransformer._pool (no attention pooling) → proj → L2 normalisation."""

    def __init__(self, visual: nn.Module):
        super().__init__()
        if visual.attn_pool is not None:
            raise ConfigError("open_clip towers with attention pooling are not supported as students")
        self.ln_post = visual.ln_post
        self.proj = visual.proj
        self.pool_type = visual.pool_type
        self.final_ln_after_pool = visual.final_ln_after_pool

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 1:].mean(dim=1) if self.pool_type == "avg" else x[:, 0] if self.pool_type == "tok" else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.final_ln_after_pool:
            x = self.ln_post(self._pool(x))
        else:
            x = self._pool(self.ln_post(x))
        if self.proj is not None:
            x = x @ self.proj
        return F.normalize(x, dim=-1)


class _ClipBlock(nn.Module):
    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


def split_model(model: nn.Module, family: str) -> tuple[nn.Module, list[nn.Module], nn.Module, nn.Linear]:
    """Cut a registered model into (stem, blocks, neck, classifier); the model is consumed."""
    if family == "cifar_resnet":
        stem = nn.Sequential(model.conv1, model.bn1, nn.ReLU())
        blocks = [*model.layer1, *model.layer2, *model.layer3]
        return stem, blocks, GlobalAvgPool(), model.linear
    if family == "efficientnet":
        stem = nn.Sequential(model.conv_stem, model.bn1)
        blocks = [b for stage in model.blocks for b in stage]
        neck = nn.Sequential(model.conv_head, model.bn2, GlobalAvgPool())  # = timm's avg pool + flatten
        return stem, blocks, neck, model.classifier
    if family == "timm":
        if not hasattr(model, "blocks") or not hasattr(model, "_pos_embed"):
            raise ConfigError(f"{type(model).__name__} cannot be split into trunk/heads; students from timm must be ViTs")
        blocks = list(model.blocks)
        neck = _TimmViTNeck(model)
        classifier = model.head
        model.blocks, model.norm, model.fc_norm, model.head = nn.Sequential(), nn.Identity(), nn.Identity(), nn.Identity()
        return _TimmViTStem(model), blocks, neck, classifier
    if family == "open_clip":
        visual = model.visual
        if not getattr(visual.transformer, "batch_first", True):
            raise ConfigError("open_clip tower is not batch-first; use open_clip_torch>=2.24")
        blocks = [_ClipBlock(b) for b in visual.transformer.resblocks]
        neck = _ClipNeck(visual)
        visual.transformer.resblocks = nn.ModuleList()
        visual.ln_post, visual.proj = nn.Identity(), None
        return _ClipStem(visual), blocks, neck, model.head
    raise ConfigError(f"model family '{family}' cannot be a student")


# ---------------------------------------------------------------------------------------------


class FrozenTrunkModel(nn.Module):
    """A model cut into a frozen `trunk` (eval mode, no grad: its output can be cached and shared)
    and the `tunable` part after it; subclasses add the heads."""

    trunk: nn.Module
    tunable: nn.Module

    def _freeze_trunk(self) -> None:
        for p in self.trunk.parameters():
            p.requires_grad_(False)
        self.trunk.eval()

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen part: always eval mode, never records gradients (its output can be cached)."""
        self.trunk.eval()
        with torch.no_grad():
            return self.trunk(x)

    def forward_tunable(self, z: torch.Tensor) -> torch.Tensor:
        return self.tunable(z)

    def train(self, mode: bool = True) -> "FrozenTrunkModel":
        super().train(mode)
        self.trunk.eval()  # frozen BN statistics and no dropout in the trunk, always
        return self

    def trunk_fingerprint(self) -> str:
        """sha256 over the trunk's parameters and buffers: proves the trunk never changed, and two
        models with the same fingerprint compute the same trunk outputs (evaluate.share_trunk)."""
        h = hashlib.sha256()
        for k, v in sorted(self.trunk.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


class MultiHeadStudent(FrozenTrunkModel):
    """Frozen trunk + shared tunable part + heads clean/combined/robust (logits dict)."""

    def __init__(self, stem: nn.Module, blocks: list[nn.Module], neck: nn.Module, classifier: nn.Linear,
                 n_tunable_blocks: int, head_depth: int = 0, dropout_p: float = 0.1):
        super().__init__()
        n = len(blocks)
        if not 0 <= head_depth <= n_tunable_blocks <= n:
            raise ConfigError(f"need 0 ≤ head_depth ({head_depth}) ≤ n_tunable_blocks ({n_tunable_blocks}) ≤ {n} blocks; "
                              "fix distill.head_depth / distill.n_tunable_blocks")
        self.n_tunable_blocks = int(n_tunable_blocks)
        self.head_depth = int(head_depth)
        self.dropout_p = float(dropout_p)
        self.num_features = int(classifier.in_features)
        self.num_classes = int(classifier.out_features)
        cut, own = n - n_tunable_blocks, n - head_depth
        self.trunk = nn.Sequential(stem, *blocks[:cut])
        shared = list(blocks[cut:own]) + ([neck] if head_depth == 0 else [])
        self.tunable = nn.Sequential(*shared)
        private = blocks[own:]
        self.heads = nn.ModuleDict({
            h: Head([copy.deepcopy(b) for b in private], copy.deepcopy(neck) if head_depth else nn.Identity(),
                    copy_linear(classifier), dropout_p)
            for h in HEADS
        })
        self._freeze_trunk()

    # -- the interface evaluation uses ---------------------------------------------------------

    def forward_head(self, name: str, h: torch.Tensor, mc: bool = False) -> torch.Tensor:
        return self.heads[name](h, mc=mc)

    def forward_heads(self, h: torch.Tensor, mc: bool = False) -> dict[str, torch.Tensor]:
        """Logits per head; dropout before each classifier if training or `mc` (MC-dropout passes)."""
        return {name: self.heads[name](h, mc=mc) for name in HEADS}

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_heads(self.forward_tunable(self.forward_trunk(x)))

    def features(self, x: torch.Tensor, head: str = "combined") -> torch.Tensor:
        """Penultimate (pre-classifier) features of one head, for transfer probes."""
        return self.heads[head].pre_logits(self.forward_tunable(self.forward_trunk(x)))

    # -- training helpers ----------------------------------------------------------------------

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """State of everything but the trunk (what a distillation checkpoint stores)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("trunk.")}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.startswith("trunk.")]
        if missing or unexpected:
            raise KeyError(f"missing {missing[:3]} unexpected {unexpected[:3]}")

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for n, p in self.named_parameters() if not n.startswith("trunk.")]


class SplitSingleHead(FrozenTrunkModel):
    """A plain single-head model (the pretrained original, a linear probe on it) cut where its distilled
    students cut theirs: trunk = stem + blocks[:N-k], the same modules and so the same
    `trunk_fingerprint` as theirs; tunable = the other blocks; one head `single` = neck → dropout (the
    model's own `drop_rate`, as timm's forward_head) → classifier. Its evaluation then reads the trunk
    outputs the students share (evaluate.share_trunk) instead of running the whole model per image.
    Same outputs as the uncut model up to float rounding of the pooling (tests/test_trunk_share.py)."""

    HEADS = ("single",)

    def __init__(self, model: nn.Module, family: str, n_tunable_blocks: int):
        super().__init__()
        self.dropout_p = float(getattr(model, "drop_rate", 0.0) or 0.0)
        stem, blocks, neck, classifier = split_model(model, family)
        if not 0 <= n_tunable_blocks <= len(blocks):
            raise ConfigError(f"n_tunable_blocks {n_tunable_blocks} is outside 0..{len(blocks)}; fix distill.n_tunable_blocks")
        cut = len(blocks) - n_tunable_blocks
        self.trunk = nn.Sequential(stem, *blocks[:cut])
        self.tunable = nn.Sequential(*blocks[cut:])
        self.heads = nn.ModuleDict({"single": Head([], neck, classifier, self.dropout_p)})
        self.num_classes = int(classifier.out_features)
        self._freeze_trunk()

    def forward_heads(self, h: torch.Tensor, mc: bool = False) -> dict[str, torch.Tensor]:
        return {"single": self.heads["single"](h, mc=mc)}

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.heads["single"].pre_logits(self.forward_tunable(self.forward_trunk(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_heads(self.forward_tunable(self.forward_trunk(x)))["single"]


def create_student(name: str, *, n_tunable_blocks: int, head_depth: int = 0, dropout_p: float = 0.1,
                   pretrained: bool = True, weights: Optional[str] = None, init_head: Optional[str] = None,
                   zero_shot: bool = False, num_classes: int = 10, classnames=None, templates=None,
                   placeholder_heads: bool = False) -> MultiHeadStudent:
    """Build `name` from the registry and split it.

    The heads start from the model's own classifier when it already has `num_classes` outputs, from a
    linear-probe file (`init_head`), or — for open_clip students with `zero_shot` — from prompt
    embeddings of the class names. Otherwise it is an error (a 1000-way ImageNet head cannot be used).
    `placeholder_heads` skips all that (fresh `num_classes` classifiers; a checkpoint's state follows).
    """
    from .registry import create_model, get_spec

    spec = get_spec(name)
    model = create_model(name, pretrained=pretrained, weights=weights)
    classifier_override = None
    if placeholder_heads:
        pretrained_head = False
    elif zero_shot:
        if spec.family != "open_clip":
            raise ConfigError(f"zero-shot heads need an open_clip student; {name} is {spec.family}")
        from .heads import CIFAR10_CLASSNAMES, CIFAR10_TEMPLATES, zero_shot_classifier

        classifier_override = zero_shot_classifier(model.clip, clip_tokenizer(model),
                                                   classnames or CIFAR10_CLASSNAMES, templates or CIFAR10_TEMPLATES)
    elif init_head:
        from .heads import load_linear_probe

        classifier_override, _ = load_linear_probe(init_head, int(model.num_features), name)
    if not placeholder_heads:
        pretrained_head = pretrained or classifier_override is not None
    stem, blocks, neck, classifier = split_model(model, spec.family)
    if classifier_override is not None:
        classifier = classifier_override
    if classifier.out_features != num_classes:
        if pretrained_head:
            raise ConfigError(f"{name}'s classifier has {classifier.out_features} classes, not {num_classes}; "
                              "pass its linear-probe head (--init-head) or use zero-shot heads")
        classifier = nn.Linear(classifier.in_features, num_classes)
    return MultiHeadStudent(stem, blocks, neck, classifier, n_tunable_blocks, head_depth, dropout_p)


def clip_tokenizer(model: nn.Module):
    """open_clip tokenizer for a ClipClassifier (tiny test model: context length of its text tower)."""
    import open_clip

    ctx = int(model.clip.context_length)
    if model.arch == "tiny":
        return lambda texts: open_clip.tokenize(texts, context_length=ctx)
    return open_clip.get_tokenizer(model.arch)


def count_blocks(name: str) -> int:
    """Number of splittable blocks of a registered model (random init; for validation and docs)."""
    from .registry import create_model, get_spec

    return len(split_model(create_model(name, pretrained=False), get_spec(name).family)[1])
