"""Shared fixtures. Tests read the data mirror (ROBUSTIFY_DATA_MIRROR, default ../shared/data)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("ROBUSTIFY_DATA_MIRROR", str(ROOT.parent / "shared" / "data"))
os.environ.setdefault("MPLBACKEND", "Agg")
MIRROR = Path(os.environ["ROBUSTIFY_DATA_MIRROR"])
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def one_thread():
    """Training tests run with 1 torch thread: deterministic and fair to a loaded 2-core machine."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def cli(capsys):
    """Run `robustify …` in-process; returns (exit code, stdout, stderr)."""
    from robustify.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def one_error_line(err: str) -> str:
    """The single user-facing error line, asserting there is no traceback around it."""
    assert "Traceback" not in err, err
    lines = [l for l in err.strip().splitlines() if "error:" in l]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the workflow (Snakefile, params, rules, presets, schema, profiles, dvc.yaml) in tmp."""
    for name in ("Snakefile", "params.yaml", "dvc.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("workflow", "profiles"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def run_cmd(args: list[str], cwd: Path, env: dict | None = None, timeout: int = 900) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env["PATH"] = f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}"
    full_env.update(env or {})
    return subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout)
