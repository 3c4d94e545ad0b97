"""Transfer probes on the frozen penultimate features of an evaluated model.

- `pacs7_probe`: multinomial logistic regression (L-BFGS, the linear-probe fit) on PACS-7 features of
  one domain (photo), stratified train/test split from params; accuracy on the test part.
- `imagenet_retention`: top-1 on the 1000 ImageNet sample images through the student's original
  1000-way ImageNet classifier on top of the (possibly tuned) features — does tuning keep the
  original task? Only for students whose registry entry is ImageNet-pretrained with a linear
  classifier on the pooled features (EfficientNet-Lite, timm ViT/ResNet).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch
import torch.nn as nn


def pacs7_probe(model: nn.Module, preprocess: Callable, domain: str = "photo", test_fraction: float = 0.3,
                weight_decay: float = 1e-4, max_iter: int = 200, seed: int = 0, batch_size: int = 256) -> dict:
    """Linear probe on PACS-7 `domain` features → {accuracy, n_train, n_test, train_accuracy}."""
    from ..data.datasets import pacs_split
    from ..train.features import extract
    from ..train.linear_probe import accuracy, fit

    train, test = pacs_split(domain, test_fraction, seed)
    model.eval()
    ftr = extract(model.features, preprocess, train.x, batch_size, f"transfer {train.name}")
    fte = extract(model.features, preprocess, test.x, batch_size, f"transfer {test.name}")
    mu, sd = ftr.mean(0), ftr.std(0) + 1e-6  # standardise: feature scales differ across models
    res = fit((ftr - mu) / sd, train.y, len(train.classes), weight_decay, max_iter, seed)
    return {"accuracy": accuracy(res.classifier, (fte - mu) / sd, test.y),
            "train_accuracy": accuracy(res.classifier, (ftr - mu) / sd, train.y),
            "n_train": len(train), "n_test": len(test), "domain": domain}


def original_classifier(student: str, weights: Optional[str] = None) -> Optional[nn.Linear]:
    """The pretrained 1000-way ImageNet classifier of a registered student, or None if it has none."""
    from ..models.registry import create_model, get_spec

    spec = get_spec(student)
    if spec.num_classes != 1000 or spec.load_pretrained is None or spec.family not in ("efficientnet", "timm"):
        return None
    clf = create_model(student, pretrained=True, weights=weights).get_classifier()
    return clf if isinstance(clf, nn.Linear) else None


@torch.no_grad()
def imagenet_retention(model: nn.Module, preprocess: Callable, classifier: nn.Linear, batch_size: int = 256) -> dict:
    """Top-1 (%) of `classifier`(model.features(x)) on the 1000 ImageNet sample images."""
    from ..data.datasets import imagenet_samples
    from ..train.features import extract

    ds = imagenet_samples()
    model.eval()
    feats = extract(model.features, preprocess, ds.x, batch_size, "retention imagenet_samples")
    if feats.shape[1] != classifier.in_features:
        from ..errors import CheckpointError

        raise CheckpointError(f"features are {feats.shape[1]}-d but the ImageNet classifier expects {classifier.in_features}; "
                              "retention needs the student's own pooled features")
    pred = classifier(torch.from_numpy(feats)).argmax(1).numpy()
    return {"top1": float((pred == ds.y).mean() * 100), "n": len(ds)}
