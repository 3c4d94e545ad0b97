"""Augmentation scheme names, importable without torch (the config schema validates against them).

The paper's Table 4 compares these teacher robustification schemes; `augmix_deepaugment` is its default.
"""

SCHEMES: tuple[str, ...] = ("augmix", "deepaugment", "pixmix", "augmix_deepaugment", "pixmix_augmix")

# schemes trained with the AugMix Jensen-Shannon consistency loss (clean, view 1, view 2)
JSD_SCHEMES: tuple[str, ...] = ("augmix", "augmix_deepaugment", "pixmix_augmix")

# schemes whose views draw on DeepAugment images (a pre-generated pool, or made on the fly)
DEEPAUGMENT_SCHEMES: tuple[str, ...] = ("deepaugment", "augmix_deepaugment")

DEFAULT_SCHEME = "augmix_deepaugment"


def check_scheme(scheme: str) -> str:
    """Return `scheme` or raise ConfigError naming the valid schemes (and a close match)."""
    if scheme in SCHEMES:
        return scheme
    import difflib

    from ..errors import ConfigError

    guess = difflib.get_close_matches(str(scheme), SCHEMES, n=1)
    hint = f"did you mean '{guess[0]}'? " if guess else ""
    raise ConfigError(f"unknown augmentation scheme '{scheme}'; {hint}valid schemes: {', '.join(SCHEMES)}")
