"""The 15 ImageNet-C corruption names in the canonical order; importable without torch (config schema)."""

CORRUPTIONS: tuple[str, ...] = (
    "gaussian_noise",
    "shot_noise",
    "impulse_noise",
    "defocus_blur",
    "glass_blur",
    "motion_blur",
    "zoom_blur",
    "snow",
    "frost",
    "fog",
    "brightness",
    "contrast",
    "elastic_transform",
    "pixelate",
    "jpeg_compression",
)

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)
TABLES: tuple[str, ...] = ("cifar", "imagenet")
ENGINES: tuple[str, ...] = ("ours", "reference")
