"""open_clip visual tower + a linear classifier, exposing the timm interface the rest of the code uses.

The classifier starts as zeros (linear-probe fits it); the zero-shot variant (distillation issue)
fills it from prompt embeddings. Real CLIP weights: an open_clip pretrained tag or a local file.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

# a CLIP small enough for unit tests: 32 px images, 2 vision and 2 text layers
TINY_CLIP_CFG = dict(
    embed_dim=32,
    vision_cfg=dict(image_size=32, layers=2, width=64, head_width=32, patch_size=8),
    text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=2),
)


class ClipClassifier(nn.Module):
    def __init__(self, clip: nn.Module, arch: str, num_classes: int):
        super().__init__()
        self.clip = clip
        self.arch = arch
        self.visual = clip.visual
        self.num_features = int(clip.visual.output_dim)
        self.head = nn.Linear(self.num_features, num_classes)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        # the text tower only builds zero-shot classifiers: it is never trained
        for name, p in clip.named_parameters():
            if not name.startswith("visual."):
                p.requires_grad_(False)

    @classmethod
    def create(cls, arch: str, num_classes: int) -> "ClipClassifier":
        import open_clip

        if arch == "tiny":
            clip = open_clip.CLIP(**TINY_CLIP_CFG)
        else:
            clip = open_clip.create_model(arch, pretrained=None)
        return cls(clip, arch, num_classes)

    def load_clip_weights(self, source: Optional[str]) -> None:
        """`source` is an open_clip pretrained tag ('openai', 'laion2b_…') or a local checkpoint path."""
        import open_clip

        fresh = open_clip.create_model(self.arch, pretrained=source)
        self.clip.load_state_dict(fresh.state_dict())

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.visual(x)

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = F.normalize(x, dim=-1)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Linear:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.head = nn.Linear(self.num_features, num_classes)
