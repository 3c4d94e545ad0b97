"""Model registry (students and teachers), preprocessing, checkpoints."""

from .registry import ModelSpec, create_model, get_spec, list_models, read_checkpoint, register_model  # noqa: F401
from .preprocess import Preprocess  # noqa: F401
