"""Visual prompt tuning (VPT) baseline: a frozen pretrained trunk, learnable prompts and classifier.

- ViT students (timm `VisionTransformer`): VPT-deep (Jia et al. 2022) — `tokens` learnable prompt
  tokens per block, inserted after the class/prefix tokens; each block's prompts replace the previous
  block's outputs at those positions; they are dropped before the final norm and pooling.
- CNN students: padding prompts (visual prompting, Bahng et al. 2022) — a learnable border of width
  `pad` px added to the normalised input image, zero at the start (the untrained prompt is the
  original model).

`PromptedModel` keeps the timm interface (forward_features / forward_head / get_classifier), so the
evaluator runs it as a single-head model; training uses the teacher loop (`train.e2e.finetune`).
Only the prompt and the classifier receive gradients; the trunk stays in eval mode (BatchNorm
statistics frozen) and bit-identical.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import CheckpointError, ConfigError

KIND = "vpt"


class PaddingPrompt(nn.Module):
    """Learnable border of width `pad` around a `size`×`size` input, added to the image."""

    def __init__(self, size: int, pad: int):
        super().__init__()
        if not 0 < 2 * pad < size:
            raise ConfigError(f"padding prompt of {pad} px does not fit a {size}-px input; lower baselines.vpt_pad")
        self.size, self.pad = int(size), int(pad)
        self.top = nn.Parameter(torch.zeros(1, 3, pad, size))
        self.bottom = nn.Parameter(torch.zeros(1, 3, pad, size))
        self.left = nn.Parameter(torch.zeros(1, 3, size - 2 * pad, pad))
        self.right = nn.Parameter(torch.zeros(1, 3, size - 2 * pad, pad))

    def prompt(self) -> torch.Tensor:
        inner = torch.zeros(1, 3, self.size - 2 * self.pad, self.size - 2 * self.pad, device=self.top.device, dtype=self.top.dtype)
        middle = torch.cat([self.left, inner, self.right], dim=3)
        return torch.cat([self.top, middle, self.bottom], dim=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.size or x.shape[-2] != self.size:
            raise ValueError(f"padding prompt made for {self.size}-px inputs, got {tuple(x.shape[-2:])}")
        return x + self.prompt()


class DeepPrompt(nn.Module):
    """VPT-deep prompt tokens: one [tokens, dim] set per transformer block (VPT's uniform init)."""

    def __init__(self, depth: int, tokens: int, dim: int, patch_dim: int):
        super().__init__()
        bound = math.sqrt(6.0 / float(patch_dim + dim))
        self.tokens = int(tokens)
        self.prompts = nn.Parameter(torch.empty(depth, tokens, dim).uniform_(-bound, bound))


class PromptedModel(nn.Module):
    """A registered (timm-interface) model with a frozen trunk and a learnable prompt; classifier trainable."""

    def __init__(self, base: nn.Module, prompt_type: str, size: int, image_size: int):
        super().__init__()
        self.base = base
        self.prompt_type = prompt_type
        self.prompt_size = int(size)
        self.image_size = int(image_size)
        if prompt_type == "deep":
            if not hasattr(base, "blocks") or not hasattr(base, "_pos_embed"):
                raise ConfigError(f"VPT-deep needs a timm VisionTransformer; {type(base).__name__} is not one")
            patch = base.patch_embed.patch_size
            self.prompt = DeepPrompt(len(base.blocks), size, int(base.embed_dim), 3 * int(patch[0]) * int(patch[1]))
        elif prompt_type == "padding":
            self.prompt = PaddingPrompt(image_size, size)
        else:
            raise ConfigError(f"unknown prompt type '{prompt_type}' (deep or padding)")
        clf = base.get_classifier()
        keep = {id(p) for p in clf.parameters()}
        for p in base.parameters():
            p.requires_grad_(id(p) in keep)
        self.num_features = int(getattr(base, "num_features"))
        self.drop_rate = float(getattr(base, "drop_rate", 0.0) or 0.0)
        self.base.eval()

    # timm interface ---------------------------------------------------------------------------

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        if self.prompt_type == "padding":
            return self.base.forward_features(self.prompt(x))
        v, k = self.base, self.prompt.tokens
        x = v.norm_pre(v.patch_drop(v._pos_embed(v.patch_embed(x))))
        n = int(v.num_prefix_tokens)
        for i, blk in enumerate(v.blocks):
            p = self.prompt.prompts[i].unsqueeze(0).expand(x.shape[0], -1, -1).to(x.dtype)
            rest = x[:, n:] if i == 0 else x[:, n + k:]
            x = blk(torch.cat([x[:, :n], p, rest], dim=1))
        x = torch.cat([x[:, :n], x[:, n + k:]], dim=1)
        return v.norm(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.base.forward_head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.base.get_classifier()

    def reset_classifier(self, num_classes: int) -> None:
        self.base.reset_classifier(num_classes)

    def train(self, mode: bool = True) -> "PromptedModel":
        super().train(mode)
        self.base.eval()  # frozen trunk: BatchNorm statistics and dropout of the trunk never change
        return self

    # helpers ----------------------------------------------------------------------------------

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    def trunk_state(self) -> dict[str, torch.Tensor]:
        """Every tensor of the base model but the classifier (what must never change)."""
        clf = {id(t) for t in self.get_classifier().state_dict(keep_vars=True).values()}
        return {k: v for k, v in self.base.state_dict(keep_vars=True).items() if id(v) not in clf}


def prompt_type_for(family: str) -> str:
    if family == "timm":
        return "deep"
    if family in ("cifar_resnet", "efficientnet"):
        return "padding"
    raise ConfigError(f"VPT is implemented for timm ViTs (deep prompts) and CNNs (padding prompts), not {family} students")


def build(base: nn.Module, family: str, image_size: int, tokens: int, pad: int) -> PromptedModel:
    kind = prompt_type_for(family)
    return PromptedModel(base, kind, tokens if kind == "deep" else pad, image_size)


def save(path: str | Path, model: PromptedModel, student: str, meta: dict) -> str:
    """{'kind': 'vpt', 'student', 'prompt_type', 'prompt_size', 'image_size', 'num_classes', 'state_dict', 'meta'} (atomic)."""
    from ..io import save_torch

    return save_torch(path, {"kind": KIND, "student": student, "prompt_type": model.prompt_type,
                             "prompt_size": model.prompt_size, "image_size": model.image_size,
                             "num_classes": int(model.get_classifier().out_features), "state_dict": model.state_dict(),
                             "meta": dict(meta, student=student, image_size=model.image_size)})


def load(path: str | Path, obj: dict | None = None) -> tuple[PromptedModel, dict]:
    """(prompted model in eval mode, checkpoint dict) of a file written by `save`."""
    from ..models.registry import create_model, load_state_checked, read_checkpoint

    obj = obj if obj is not None else read_checkpoint(path, "vpt")
    if obj.get("kind") != KIND or "state_dict" not in obj:
        raise CheckpointError(f"{path}: not a VPT checkpoint; pass a file written by `robustify baseline --method vpt`")
    student = obj["student"]
    base = create_model(student, pretrained=False, num_classes=int(obj["num_classes"]))
    model = PromptedModel(base, obj["prompt_type"], int(obj["prompt_size"]), int(obj["image_size"]))
    load_state_checked(model, obj["state_dict"], str(path), student)
    return model.eval(), obj
