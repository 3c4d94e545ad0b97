"""Typed mirror of params.yaml. `extra="forbid"` everywhere: a typo is an error, never a silent default.

params.yaml is the one parameter file (Snakemake configfile, DVC params); presets under
workflow/presets/ are merged over it the way Snakemake merges `--configfile` (recursive dict update).
The JSON schema in workflow/schemas/params.schema.json is exported from `Params` (test keeps it in sync).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError
from .models.names import MODEL_NAMES

ModelName = Literal[MODEL_NAMES]  # type: ignore[valid-type]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


class DataConfig(Strict):
    """Where raw data comes from and where prepared data goes."""

    mirror: Optional[str] = Field(None, description="directory with MANIFEST.json; env ROBUSTIFY_DATA_MIRROR overrides")
    cache: str = Field("~/.cache/robustify", description="download cache used when there is no mirror")
    root: str = Field("data", description="prepared datasets and caches (DVC outputs)")
    val_per_class: int = Field(100, ge=0, le=900, description="CIFAR-10 train images per class held out for validation")


class ModelsConfig(Strict):
    students: list[ModelName] = Field(min_length=1)
    teachers: list[ModelName] = Field(min_length=1)
    image_size: dict[ModelName, int] = Field(default_factory=dict, description="input size per model (px); default: the model's own")
    weights: dict[ModelName, str] = Field(default_factory=dict, description="local weight files for models without shipped weights (paper preset)")

    @field_validator("image_size")
    @classmethod
    def _sizes(cls, v: dict[str, int]) -> dict[str, int]:
        for name, size in v.items():
            if not 16 <= size <= 1024:
                raise ValueError(f"image_size of {name} must be within 16..1024 px, got {size}")
        return v


class LinearProbeConfig(Strict):
    """Multinomial logistic regression on frozen pooled features (the LP baseline and the LP head of ImageNet students)."""

    students: list[ModelName] = Field(default_factory=list, description="students that need a linear-probe head")
    weight_decay: float = Field(1e-4, ge=0.0)
    max_iter: int = Field(100, ge=1, le=10_000, description="L-BFGS iterations")
    batch_size: int = Field(128, ge=1, description="feature extraction batch size")


class TrackingConfig(Strict):
    uri: Optional[str] = Field(None, description="MLflow tracking URI; default sqlite:///mlflow.db at the repo root; env MLFLOW_TRACKING_URI overrides")
    experiment: str = Field("robustify", min_length=1)


class Params(Strict):
    seeds: list[int] = Field(min_length=1, description="seed grid axis of every training stage")
    threads: int = Field(0, ge=0, le=256, description="torch intra-op threads per job; 0 = cores / concurrent jobs")
    data: DataConfig = Field(default_factory=DataConfig)
    models: ModelsConfig
    linear_probe: LinearProbeConfig = Field(default_factory=LinearProbeConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @model_validator(mode="after")
    def _lp_students_are_students(self) -> "Params":
        extra = [s for s in self.linear_probe.students if s not in self.models.students]
        if extra:
            raise ValueError(f"linear_probe.students {extra} are not in models.students {self.models.students}")
        return self


# ---------------------------------------------------------------------------------------------
# loading, merging, hashing


def deep_update(base: dict, update: dict) -> dict:
    """Recursive dict update, as Snakemake applies --configfile over configfile."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_update(out[k], v)
        else:
            out[k] = v
    return out


def read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such parameter file; pass an existing --params/--configfile path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} is not valid YAML ({getattr(e, 'problem', e)}); fix the syntax") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of sections, got {type(data).__name__}")
    return data


def load_params(params: str | os.PathLike = "params.yaml", presets: list[str | os.PathLike] | tuple = ()) -> Params:
    """Read params.yaml, merge presets over it in order, validate."""
    raw = read_yaml(params)
    sources = [str(params)]
    for p in presets:
        raw = deep_update(raw, read_yaml(p))
        sources.append(str(p))
    return validate(raw, source=" + ".join(sources))


def validate(raw: dict, source: str = "config") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"{source}: {describe_validation_error(e, raw)}") from None


def describe_validation_error(e: ValidationError, raw: dict) -> str:
    """First error as one line: where, what, and a fix (a close key name where we can guess one)."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent = err["loc"][:-1]
        key = str(err["loc"][-1])
        allowed = _fields_at(parent)
        guess = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"valid keys: {', '.join(allowed)}"
        more = f" (+{len(e.errors()) - 1} more problems)" if len(e.errors()) > 1 else ""
        return f"unknown key '{loc}'; {hint}{more}"
    if kind == "literal_error":
        value = err.get("input")
        guess = difflib.get_close_matches(str(value), MODEL_NAMES, n=1)
        hint = f"did you mean '{guess[0]}'?" if guess else f"registered models: {', '.join(MODEL_NAMES)}"
        return f"{loc}: unknown name '{value}'; {hint}"
    if kind == "missing":
        return f"{loc}: required key is missing; add it (see params.yaml for the default)"
    value = err.get("input")
    return f"{loc}: {err['msg']} (got {value!r}); fix the value"


def _fields_at(loc: tuple) -> list[str]:
    model: Any = Params
    for part in loc:
        field = model.model_fields.get(str(part)) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        model = field.annotation
    return sorted(getattr(model, "model_fields", {}).keys())


def params_hash(obj: Any) -> str:
    """Short stable hash of a (sub)config, stored in every record."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def json_schema() -> dict:
    schema = Params.model_json_schema()
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    schema["title"] = "robustify params.yaml"
    return schema
