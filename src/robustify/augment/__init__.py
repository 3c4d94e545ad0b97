"""Teacher robustification schemes: AugMix (+JSD), DeepAugment, PixMix and their combinations.

Public API (the distillation stage relies on it):
  SCHEMES                      the scheme names (paper Table 4)
  make_views(images, scheme, seed, deepaugment_pool=None) -> uint8 NHWC, one view per image
  TripletViews                 training dataset of (clean, view 1, view 2) with crop/flip, per epoch
"""

from .names import DEFAULT_SCHEME, DEEPAUGMENT_SCHEMES, JSD_SCHEMES, SCHEMES, check_scheme  # noqa: F401


def __getattr__(name: str):  # torch-heavy parts load lazily, so `robustify.augment.names` stays light
    if name in ("make_views", "ViewMaker", "AugmentSettings"):
        from . import views

        return getattr(views, name)
    if name == "TripletViews":
        from .dataset import TripletViews

        return TripletViews
    if name == "deepaugment_images":
        from .deepaugment import deepaugment_images

        return deepaugment_images
    raise AttributeError(f"module 'robustify.augment' has no attribute '{name}'")
