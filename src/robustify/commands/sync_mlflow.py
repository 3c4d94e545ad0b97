"""robustify sync-mlflow: log every record that MLflow lacks (after MLflow was down), no duplicates."""

from __future__ import annotations

from .common import add_params_args, load

NAME = "sync-mlflow"
HELP = "back-fill MLflow with records it is missing (matched by record path and content)"


def add_arguments(p) -> None:
    add_params_args(p)
    p.add_argument("--metrics-dir", default="results/metrics")


def run(args) -> None:
    params = load(args)
    from ..track import sync

    added, present = sync(args.metrics_dir, params.tracking.uri, params.tracking.experiment)
    print(f"MLflow sync: {added} runs added, {present} already present")
