"""The prediction part of a student, copied into the clean / combined / robust heads.

A head = private copies of the last `head_depth` blocks (optional) → the model's neck (final
norm/conv + pooling: last-block output → pre-logit features) → dropout → classifier. The zero-shot
CLIP classifier is built here too: prompt embeddings of the class names, templates averaged.
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

HEADS = ("clean", "combined", "robust")

CIFAR10_CLASSNAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")

# CLIP's CIFAR-10 prompt set (Radford et al. 2021, "Prompt_Engineering_for_ImageNet" notebook, cifar10 entry)
CIFAR10_TEMPLATES: tuple[Callable[[str], str], ...] = (
    lambda c: f"a photo of a {c}.",
    lambda c: f"a blurry photo of a {c}.",
    lambda c: f"a black and white photo of a {c}.",
    lambda c: f"a low contrast photo of a {c}.",
    lambda c: f"a high contrast photo of a {c}.",
    lambda c: f"a bad photo of a {c}.",
    lambda c: f"a good photo of a {c}.",
    lambda c: f"a photo of a small {c}.",
    lambda c: f"a photo of a big {c}.",
    lambda c: f"a photo of the {c}.",
    lambda c: f"a blurry photo of the {c}.",
    lambda c: f"a black and white photo of the {c}.",
    lambda c: f"a low contrast photo of the {c}.",
    lambda c: f"a high contrast photo of the {c}.",
    lambda c: f"a bad photo of the {c}.",
    lambda c: f"a good photo of the {c}.",
    lambda c: f"a photo of the small {c}.",
    lambda c: f"a photo of the big {c}.",
)


class Head(nn.Module):
    """Private blocks → neck → dropout(p) → classifier. Dropout is on when training or `mc`."""

    def __init__(self, blocks: Sequence[nn.Module], neck: nn.Module, classifier: nn.Linear, dropout_p: float):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.neck = neck
        self.classifier = classifier
        self.dropout_p = float(dropout_p)

    def pre_logits(self, h: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            h = blk(h)
        return self.neck(h)

    def forward(self, h: torch.Tensor, mc: bool = False) -> torch.Tensor:
        f = self.pre_logits(h)
        f = F.dropout(f, self.dropout_p, training=self.training or mc)
        return self.classifier(f)


@torch.no_grad()
def zero_shot_classifier(clip: nn.Module, tokenizer: Callable, classnames: Sequence[str] = CIFAR10_CLASSNAMES,
                         templates: Sequence[Callable[[str], str]] = CIFAR10_TEMPLATES) -> nn.Linear:
    """Linear layer whose row c = logit_scale · normalise(mean_t normalise(text(template_t(class_c)))).

    Applied to the normalised image embedding it gives CLIP's zero-shot logits. The text tower is only
    read (no gradients, not kept).
    """
    rows = []
    for name in classnames:
        tokens = tokenizer([t(name) for t in templates])
        emb = F.normalize(clip.encode_text(tokens).float(), dim=-1)
        rows.append(F.normalize(emb.mean(0), dim=-1))
    weight = torch.stack(rows) * clip.logit_scale.exp().float()
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    layer.weight.copy_(weight)
    layer.bias.zero_()
    return layer


def copy_linear(src: nn.Linear) -> nn.Linear:
    out = nn.Linear(src.in_features, src.out_features, bias=src.bias is not None)
    out.load_state_dict(src.state_dict())
    return out


def load_linear_probe(path: str, num_features: int, student: Optional[str] = None) -> tuple[nn.Linear, int]:
    """Read a `robustify linear-probe` file → (classifier, image_size); one clear line when it does not fit."""
    from ..errors import CheckpointError
    from .registry import read_checkpoint

    obj = read_checkpoint(path, student or "student")
    state = obj.get("classifier")
    if not isinstance(state, dict) or "weight" not in state:
        raise CheckpointError(f"{path}: no 'classifier' state dict; pass a file written by `robustify linear-probe`")
    if student and obj.get("student") not in (None, student):
        raise CheckpointError(f"{path}: linear probe of '{obj.get('student')}', not '{student}'; pass the probe of {student}")
    weight = state["weight"]
    if weight.ndim != 2 or weight.shape[1] != num_features:
        raise CheckpointError(f"{path}: classifier expects {weight.shape[-1]} features, {student} has {num_features}; "
                              "rerun `robustify linear-probe` for this student")
    layer = nn.Linear(num_features, weight.shape[0], bias="bias" in state)
    layer.load_state_dict(state)
    return layer, int(obj.get("image_size", 0))
