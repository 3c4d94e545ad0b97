"""Uncertainty-based distillation losses, exactly DESIGN.md §1.

    L_clean = α·CE(y, f_c(x)) + (1-α)·KD_τ(T_orig(x) ‖ f_c(x)) + γ·[same for f_m]
    L_aug   = α·CE(y, f_r(x̃)) + (1-α)·KD_τ(T_small(x̃) ‖ f_r(x̃)) + γ·[same for f_m]
    L       = L_clean + λ·L_aug,     KD_τ(a‖b) = τ²·KL(softmax(a/τ) ‖ softmax(b/τ))

Variant `no_kd` (the paper's "w/o KD" and the APT baseline) keeps only the CE terms (α = 1, no
teacher). `kd_weighting="teacher_confidence"` weights each sample's KD term by the teacher's max
probability (a guess at "uncertainty-based"; off by default); `teacher_correct` keeps the KD term
only where the teacher predicts the label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F

VARIANTS = ("full", "no_kd")
KD_WEIGHTINGS = ("none", "teacher_confidence", "teacher_correct")


@dataclass(frozen=True)
class LossWeights:
    alpha: float = 0.5
    tau: float = 1.0
    gamma: float = 1.0
    lam: float = 1.0
    variant: str = "full"
    kd_weighting: str = "none"

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.kd_weighting not in KD_WEIGHTINGS:
            raise ValueError(f"kd_weighting must be one of {KD_WEIGHTINGS}, got {self.kd_weighting!r}")

    @property
    def uses_teacher(self) -> bool:
        return self.variant == "full" and self.alpha < 1.0


def kd_per_sample(teacher_logits: torch.Tensor, student_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """τ²·KL(softmax(t/τ) ‖ softmax(s/τ)) for each sample (teacher is a constant)."""
    t = F.log_softmax(teacher_logits.detach().float() / tau, dim=-1)
    s = F.log_softmax(student_logits / tau, dim=-1)
    return (tau * tau) * (t.exp() * (t - s)).sum(-1)


def head_loss(logits: torch.Tensor, y: torch.Tensor, teacher_logits: Optional[torch.Tensor], w: LossWeights) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """α·CE + (1-α)·KD for one head → (loss, ce, kd)."""
    ce = F.cross_entropy(logits, y)
    if not w.uses_teacher:
        return ce, ce.detach(), torch.zeros(())
    kd = kd_per_sample(teacher_logits, logits, w.tau)
    if w.kd_weighting == "teacher_confidence":
        kd = kd * F.softmax(teacher_logits.detach().float(), dim=-1).amax(-1)
    elif w.kd_weighting == "teacher_correct":
        kd = kd * (teacher_logits.detach().argmax(-1) == y).float()
    kd = kd.mean()
    return w.alpha * ce + (1 - w.alpha) * kd, ce.detach(), kd.detach()


def distill_loss(clean: dict[str, torch.Tensor], aug: dict[str, torch.Tensor], y_clean: torch.Tensor, y_aug: torch.Tensor,
                 t_orig: Optional[torch.Tensor], t_small: Optional[torch.Tensor], w: LossWeights) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss L and its parts.

    `clean` holds the logits of heads `clean` and `combined` on clean images (T_orig = frozen
    original student's logits on them); `aug` those of `robust` and `combined` on augmented views
    (T_small = the robust teacher's logits). Either side may be empty (no images of that kind).
    """
    total = torch.zeros(())
    parts: dict[str, float] = {}
    if clean:
        lc, ce_c, kd_c = head_loss(clean["clean"], y_clean, t_orig, w)
        lm, ce_m, kd_m = head_loss(clean["combined"], y_clean, t_orig, w)
        l_clean = lc + w.gamma * lm
        total = total + l_clean
        parts.update(loss_clean=float(l_clean.detach()), ce_clean_head=float(ce_c), kd_clean_head=float(kd_c),
                     ce_combined_clean=float(ce_m), kd_combined_clean=float(kd_m))
    if aug:
        lr, ce_r, kd_r = head_loss(aug["robust"], y_aug, t_small, w)
        lm, ce_m, kd_m = head_loss(aug["combined"], y_aug, t_small, w)
        l_aug = lr + w.gamma * lm
        total = total + w.lam * l_aug
        parts.update(loss_aug=float(l_aug.detach()), ce_robust_head=float(ce_r), kd_robust_head=float(kd_r),
                     ce_combined_aug=float(ce_m), kd_combined_aug=float(kd_m))
    parts["loss"] = float(total.detach())
    return total, parts
