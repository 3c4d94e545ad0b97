"""Registered model names, importable without torch (the config schema enumerates them).

`robustify.models.registry` must register exactly these; a test keeps the two in sync.
"""

MODEL_NAMES: tuple[str, ...] = (
    # embedded profile (weights in the data mirror / PyPI packages)
    "resnet20_cifar",
    "resnet56_cifar",
    "efficientnet_lite0",
    "efficientnet_lite2",
    # paper profile (weights from params `models.weights` paths or the hubs)
    "resnet50",
    "resnet101",
    "vit_b16",
    "vit_l14_clip",
    "vit_b16_clip",
    # tiny random-init models for tests
    "resnet8_cifar",
    "tiny_vit",
    "tiny_clip",
)
