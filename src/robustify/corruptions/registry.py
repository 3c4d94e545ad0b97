"""Registry of corruption implementations: `@register_corruption("name")` adds one to the engine."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigError

CorruptionFn = Callable[..., "object"]


@dataclass(frozen=True)
class CorruptionSpec:
    name: str
    fn: CorruptionFn
    """fn(x_uint8_nhwc: torch.Tensor, c, rng: ImageRng, options: dict) -> float NHWC in 0..255 (truncated to
    uint8 by the engine, as the reference does) or a uint8 NHWC tensor."""


_REGISTRY: dict[str, CorruptionSpec] = {}


def register_corruption(name: str) -> Callable[[CorruptionFn], CorruptionFn]:
    """Decorator: register `fn` under `name` (its constants go in every severity table it supports)."""

    def deco(fn: CorruptionFn) -> CorruptionFn:
        if name in _REGISTRY:
            raise ValueError(f"corruption '{name}' is already registered")
        _REGISTRY[name] = CorruptionSpec(name, fn)
        return fn

    return deco


def _load_builtins() -> None:
    """Import the built-in implementations (torch) on first use, so names/config stay torch-free."""
    from . import blur, digital, noise, weather  # noqa: F401


def registered() -> tuple[str, ...]:
    _load_builtins()
    return tuple(_REGISTRY)


def get_corruption(name: str) -> CorruptionSpec:
    _load_builtins()
    spec = _REGISTRY.get(name)
    if spec is None:
        raise ConfigError(unknown_name_message(name, tuple(_REGISTRY)))
    return spec


def unknown_name_message(name: str, known: tuple[str, ...]) -> str:
    guess = difflib.get_close_matches(str(name), known, n=1)
    hint = f"did you mean '{guess[0]}'?" if guess else f"known: {', '.join(known)}"
    return f"unknown corruption '{name}'; {hint}"
