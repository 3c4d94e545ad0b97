"""robustify tables: rebuild results/tables/*.csv from the records (or from MLflow)."""

from __future__ import annotations

from .common import add_params_args, load

NAME = "tables"
HELP = "build the paper's tables as CSV from records (default) or from MLflow"


def add_arguments(p) -> None:
    add_params_args(p)
    p.add_argument("--from", dest="source", choices=("records", "mlflow"), default="records")
    p.add_argument("--metrics-dir", default="results/metrics")
    p.add_argument("--out-dir", default="results/tables")


def run(args) -> None:
    params = load(args)
    from ..errors import DataError
    from ..report import runs as R
    from ..report.tables import write_tables

    if args.source == "records":
        runs = R.from_records(args.metrics_dir)
    else:
        runs = R.from_mlflow(params.tracking.uri, params.tracking.experiment)
    if runs.empty:
        raise DataError(f"no runs found in {args.source} ({args.metrics_dir if args.source == 'records' else 'MLflow'}); run the pipeline first")
    for name, table in write_tables(runs, args.out_dir).items():
        print(f"{args.out_dir}/{name}: {len(table)} rows")
