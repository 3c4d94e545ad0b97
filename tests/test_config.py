"""params.yaml ↔ pydantic ↔ JSON schema, presets, and one-line errors for bad configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, one_error_line
from robustify.config import Params, json_schema, load_params, validate
from robustify.errors import ConfigError
from robustify.models.names import MODEL_NAMES
from robustify.models.registry import list_models


def test_params_yaml_is_valid_and_complete():
    params = load_params(ROOT / "params.yaml")
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    # every section of the model appears in params.yaml, so the file documents every knob
    assert set(raw) == set(Params.model_fields), "params.yaml and config.Params have different sections"
    assert "resnet56_cifar" in params.models.students


@pytest.mark.parametrize("preset", sorted((ROOT / "workflow/presets").glob("*.yaml")), ids=lambda p: p.stem)
def test_presets_validate(preset):
    load_params(ROOT / "params.yaml", [preset])


def test_committed_schema_matches_pydantic():
    committed = json.loads((ROOT / "workflow/schemas/params.schema.json").read_text())
    assert committed == json.loads(json.dumps(json_schema())), "run `robustify export-schema` and commit the result"


def test_schema_enumerates_registered_models():
    assert sorted(MODEL_NAMES) == list_models()


def _raw():
    return yaml.safe_load((ROOT / "params.yaml").read_text())


def test_typo_gets_did_you_mean():
    raw = _raw()
    raw["linear_probe"]["max_itr"] = raw["linear_probe"].pop("max_iter")
    with pytest.raises(ConfigError, match=r"unknown key 'linear_probe.max_itr'; did you mean 'max_iter'"):
        validate(raw)


def test_unknown_top_level_section():
    raw = _raw()
    raw["modles"] = {}
    with pytest.raises(ConfigError, match="did you mean 'models'"):
        validate(raw)


@pytest.mark.parametrize("path, value, match", [
    (("linear_probe", "max_iter"), "many", "max_iter.*integer"),
    (("data", "val_per_class"), -3, "val_per_class.*greater than or equal"),
    (("models", "image_size"), {"efficientnet_lite0": 4}, "within 16..1024"),
    (("seeds",), [], "seeds.*at least 1"),
])
def test_wrong_types_and_ranges(path, value, match):
    raw = _raw()
    node = raw
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value
    with pytest.raises(ConfigError, match=match):
        validate(raw)


def test_teacher_epochs_per_teacher():
    raw = _raw()
    raw["teachers"]["epochs"] = {"resnet20_cifar": 5, "resnet56_cifar": 2}
    t = validate(raw).teachers
    assert (t.for_teacher("resnet20_cifar").epochs, t.for_teacher("resnet56_cifar").epochs) == (5, 2)
    with pytest.raises(ConfigError, match="teachers.epochs has no entry for resnet8_cifar"):
        t.for_teacher("resnet8_cifar")
    raw["teachers"]["epochs"] = {"resnet20_cifr": 5}
    with pytest.raises(ConfigError, match="unknown teacher 'resnet20_cifr'; did you mean 'resnet20_cifar'"):
        validate(raw)
    raw["teachers"]["epochs"] = {"resnet20_cifar": 0}
    with pytest.raises(ConfigError, match="resnet20_cifar: 0 epochs"):
        validate(raw)


def test_teacher_and_baseline_seeds():
    raw = _raw()
    raw["seeds"], raw["teachers"]["seeds"], raw["baselines"]["seeds"] = [0, 1, 2], [0], None
    p = validate(raw)
    assert p.teacher_seeds == [0] and p.baseline_seeds == [0, 1, 2]
    assert [p.teacher_seed(s) for s in (0, 1, 2)] == [0, 0, 0]  # one teacher serves every distillation seed
    raw["teachers"]["seeds"] = [1, 2]
    assert [validate(raw).teacher_seed(s) for s in (0, 1, 2)] == [1, 1, 2]  # same seed where one was trained
    raw["teachers"]["seeds"] = None
    assert [validate(raw).teacher_seed(s) for s in (0, 1, 2)] == [0, 1, 2]
    raw["teachers"]["seeds"] = []
    with pytest.raises(ConfigError, match="teachers.seeds"):
        validate(raw)


def test_unknown_model_name_suggests_registered_one():
    raw = _raw()
    raw["models"]["students"] = ["resnet65_cifar"]
    with pytest.raises(ConfigError, match="unknown name 'resnet65_cifar'; did you mean 'resnet56_cifar'"):
        validate(raw)


def test_preset_merges_recursively(tmp_path):
    preset = tmp_path / "p.yaml"
    preset.write_text("linear_probe:\n  max_iter: 7\n")
    params = load_params(ROOT / "params.yaml", [preset])
    assert params.linear_probe.max_iter == 7
    assert params.linear_probe.students == load_params(ROOT / "params.yaml").linear_probe.students


def test_check_config_cli_prints_resolved(cli):
    code, out, _ = cli("check-config", "--params", ROOT / "params.yaml", "--configfile", ROOT / "workflow/presets/smoke.yaml")
    assert code == 0
    assert yaml.safe_load(out)["data"]["train_per_class"] == 20


@pytest.mark.parametrize("content, match", [
    ("linear_probe:\n  max_itr: 3\n", "did you mean 'max_iter'"),
    ("seeds: [0\n", "not valid YAML"),
    ("- a\n- b\n", "top level must be a mapping"),
    ("models:\n  students: resnet56_cifar\n", "students.*valid list"),
])
def test_check_config_cli_bad_preset_is_one_line(cli, tmp_path, content, match):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    code, _, err = cli("check-config", "--params", ROOT / "params.yaml", "--configfile", bad)
    assert code == 2
    assert __import__("re").search(match, one_error_line(err))


def test_missing_params_file(cli, tmp_path):
    code, _, err = cli("check-config", "--params", tmp_path / "nope.yaml")
    assert code == 2 and "no such parameter file" in one_error_line(err)
