"""One-pass evaluator: the trunk and the tunable part run once per image, the heads T times with
dropout on; per sample and head it keeps what every selection rule needs.

For head h over T passes with softmax outputs p_h^t:
  p̄_h = mean_t p_h^t, pred_h = argmax p̄_h,
  u_h = std_t p_h^t[pred_h] (population std, ddof 0),
  kl_h = KL(p̄_combined ‖ p̄_h) = Σ_c p̄_comb,c (log p̄_comb,c − log p̄_h,c).
Saved per dataset as a compact .npz next to the record, so rules and Fcorrect never re-run a model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Optional

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..device import numpy, tensor
from ..errors import DataError
from ..io import save_npz

EPS = 1e-12
FORMAT = "robustify-onepass-v1"


class SingleHeadModel(nn.Module):
    """A timm-style single-head model (forward_features / forward_head) behind the multi-head interface.

    trunk = forward_features, tunable = identity, one head `single` = forward_head. The MC passes are
    identical unless the model's head has dropout (timm `drop_rate`), which `mc` switches on.
    """

    HEADS = ("single",)

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.dropout_p = float(getattr(model, "drop_rate", 0.0) or 0.0)
        self._drops: Optional[list] = None  # the model's dropout modules, found on the first MC pass

    def forward_trunk(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)

    def forward_tunable(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def forward_heads(self, h: torch.Tensor, mc: bool = False) -> dict[str, torch.Tensor]:
        if not mc:
            return {"single": self.model.forward_head(h)}
        # switch on dropout only: the top module's flag (timm's forward_head reads it for F.dropout) and
        # dropout modules (a ViT's head_drop); normalisation layers keep eval mode. The module walk is
        # done once: per batch and pass it cost Lite0 ~0.5 ms, 10% of a single-head evaluation.
        if self._drops is None:
            self._drops = [m for m in self.model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
        saved = [(m, m.training) for m in [self.model, *self._drops]]
        for m, _ in saved:
            m.training = True
        try:
            return {"single": self.model.forward_head(h)}
        finally:
            for m, was in saved:
                m.training = was

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_head(self.model.forward_features(x), pre_logits=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_heads(self.forward_tunable(self.forward_trunk(x)))["single"]


def head_names(model: nn.Module) -> tuple[str, ...]:
    names = getattr(model, "HEADS", None)
    if names is None:
        from ..models.heads import HEADS as names  # the distilled student's heads
    return tuple(names)


def _split_heads(model: nn.Module) -> Optional[Mapping[str, nn.Module]]:
    """The heads as modules with `pre_logits` + `classifier` (dropout sits between), if the model has them.

    Then the deterministic part of each head runs once and only dropout → classifier runs T times;
    the dropout masks are drawn in the same order as T calls of `forward_heads(h, mc=True)` would.
    """
    heads = getattr(model, "heads", None)
    if not isinstance(heads, (nn.ModuleDict, dict)):
        return None
    if not all(hasattr(m, "pre_logits") and hasattr(m, "classifier") and hasattr(m, "dropout_p") for m in heads.values()):
        return None
    return heads


def after_trunk(model: nn.Module, fast: bool = True) -> Callable[[torch.Tensor], tuple]:
    """z (the trunk's output) → the rest of `deterministic_part`."""
    heads = _split_heads(model) if fast else None
    if heads is None:
        return lambda z: (model.forward_tunable(z),)
    names = head_names(model)

    def pre_logits(z: torch.Tensor) -> tuple:
        h = model.forward_tunable(z)
        return tuple(heads[n].pre_logits(h) for n in names)

    return pre_logits


def deterministic_part(model: nn.Module, fast: bool = True) -> Callable[[torch.Tensor], tuple]:
    """x → everything before the first dropout: (pre-logits of each split head) or (h,) for heads that
    must be called whole. The part `freeze_for_inference` may turn into a frozen graph."""
    rest = after_trunk(model, fast)
    return lambda x: rest(model.forward_trunk(x))


@torch.no_grad()
def mc_probs(model: nn.Module, x: torch.Tensor, passes: int, project: Optional[Callable] = None,
             dropout_p: Optional[float] = None, fast: bool = True,
             pre: Optional[Callable[[torch.Tensor], tuple]] = None) -> dict[str, torch.Tensor]:
    """Softmax outputs of every head over `passes` stochastic passes: {head: (T, B, C)}.

    `project` maps logits to the dataset's label space (class mask / ObjectNet mapping) before softmax.
    `pre` computes `deterministic_part(model, fast)` (e.g. a frozen graph of it); default eager.
    """
    project = project or (lambda t: t)
    heads = _split_heads(model) if fast else None
    det = (pre or deterministic_part(model, fast))(x)
    out: dict[str, list[torch.Tensor]] = {}
    if heads is not None:
        names = head_names(model)
        pre_logits = dict(zip(names, det))
        for _ in range(passes):
            for n in names:
                p = heads[n].dropout_p if dropout_p is None else dropout_p
                logits = heads[n].classifier(F.dropout(pre_logits[n], p, training=True))
                out.setdefault(n, []).append(F.softmax(project(logits).float(), dim=-1))
    else:
        for _ in range(passes):
            for n, logits in model.forward_heads(det[0], mc=True).items():
                out.setdefault(n, []).append(F.softmax(project(logits).float(), dim=-1))
    return {n: torch.stack(v) for n, v in out.items()}


def summarize(probs: Mapping[str, torch.Tensor], reference: str = "combined") -> dict[str, np.ndarray]:
    """Per-sample summary of {head: (T, B, C) probabilities}: probs_h, pred_h, u_h, kl_h, maxp_h.

    kl_h = KL(p̄_reference ‖ p̄_h); zero for every head when there is no reference head.
    """
    mean = {n: p.mean(0) for n, p in probs.items()}
    ref = mean.get(reference)
    out: dict[str, np.ndarray] = {}
    for n, p in probs.items():
        pbar = mean[n]
        pred = pbar.argmax(-1)
        picked = p.gather(-1, pred.view(1, -1, 1).expand(p.shape[0], -1, 1)).squeeze(-1)  # (T, B)
        u = picked.std(0, unbiased=False)
        if ref is None:
            kl = torch.zeros_like(u)
        else:
            kl = (ref * (torch.log(ref + EPS) - torch.log(pbar + EPS))).sum(-1).clamp_min(0)
        out[f"probs_{n}"] = numpy(pbar)
        out[f"pred_{n}"] = numpy(pred).astype(np.int64)
        out[f"u_{n}"] = numpy(u).astype(np.float32)
        out[f"kl_{n}"] = numpy(kl).astype(np.float32)
        out[f"maxp_{n}"] = numpy(pbar.max(-1).values).astype(np.float32)
    return out


@dataclass
class OnePass:
    """Per-sample arrays of one model on one dataset (see module docstring)."""

    heads: tuple
    y: np.ndarray
    arrays: dict
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.y)

    def get(self, kind: str, head: str) -> np.ndarray:
        return self.arrays[f"{kind}_{head}"]

    def correct(self, head: str) -> np.ndarray:
        return self.get("pred", head) == self.y


def run_onepass(model: nn.Module, preprocess: Callable, batches: Iterable[tuple[np.ndarray, np.ndarray]],
                passes: int, num_classes: int, project: Optional[Callable] = None, dropout_p: Optional[float] = None,
                seed: int = 0, total: Optional[int] = None, desc: str = "evaluate", fast: bool = True,
                pre: Optional[Callable[[torch.Tensor], tuple]] = None) -> OnePass:
    """Evaluate `model` on uint8 NHWC batches (x, y); returns the per-sample OnePass arrays.

    The dropout masks come from torch's RNG seeded with `seed` here, so reruns are identical.
    `pre`: what computes `deterministic_part(model, fast)`, e.g. one `InferenceGraph` shared by every
    dataset of a model (default: eager).
    """
    from tqdm.auto import tqdm

    model.eval()
    pre = pre or deterministic_part(model, fast)
    torch.manual_seed(seed)
    parts: dict[str, list[np.ndarray]] = {}
    ys = []
    with tqdm(total=total, desc=desc, unit="img", leave=False, disable=None) as bar:  # silent off a terminal
        for xb, yb in batches:
            yb = np.asarray(yb, dtype=np.int64)
            if len(yb) and (yb.min() < 0 or yb.max() >= num_classes):
                bad = int(yb.max()) if yb.max() >= num_classes else int(yb.min())
                raise DataError(f"{desc}: label {bad} outside 0..{num_classes - 1}; fix the labels or the --classes mapping")
            probs = mc_probs(model, preprocess(tensor(xb)), passes, project, dropout_p, fast, pre)
            width = next(iter(probs.values())).shape[-1]
            if width != num_classes:
                raise DataError(f"{desc}: the model predicts {width} classes but the dataset has {num_classes}; "
                                "pass the matching --classes (or a linear-probe head for an ImageNet model)")
            for k, v in summarize(probs).items():
                parts.setdefault(k, []).append(v)
            ys.append(yb)
            bar.update(len(yb))
    if not ys:
        raise DataError(f"{desc}: the dataset is empty; check the file or the subset settings")
    arrays = {k: np.concatenate(v) for k, v in parts.items()}
    heads = tuple(k.removeprefix("pred_") for k in arrays if k.startswith("pred_"))
    return OnePass(heads, np.concatenate(ys), arrays, {"passes": passes, "seed": seed})


def save_onepass(path: str | Path, op: OnePass, store_probs: bool = True) -> str:
    """Atomic .npz: y, heads, per head pred/u/kl/maxp (float32) and mean probs (float16). Returns sha256."""
    arrays = {k: (v.astype(np.float16) if k.startswith("probs_") else v) for k, v in op.arrays.items()
              if store_probs or not k.startswith("probs_")}
    meta = {f"meta_{k}": np.asarray(v) for k, v in op.meta.items()}
    return save_npz(path, format=np.asarray(FORMAT), y=op.y, heads=np.asarray(op.heads), **arrays, **meta)


def load_onepass(path: str | Path) -> OnePass:
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            if "format" not in f.files or str(f["format"]) != FORMAT:
                raise DataError(f"{path}: not a one-pass file ({FORMAT}); rerun `robustify evaluate`")
            data = {k: f[k] for k in f.files}
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{path}: unreadable one-pass file ({type(e).__name__}); delete it and rerun `robustify evaluate`") from None
    heads = tuple(str(h) for h in data.pop("heads"))
    y = data.pop("y")
    data.pop("format")
    meta = {k.removeprefix("meta_"): data.pop(k).item() for k in list(data) if k.startswith("meta_")}
    return OnePass(heads, y, data, meta)


def iterate_arrays(x: np.ndarray, y: np.ndarray, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    for i in range(0, len(y), batch_size):
        yield x[i:i + batch_size], y[i:i + batch_size]
