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
    p.add_argument("--only", action="append", default=None, metavar="NAME.csv",
                   help="write only this table (repeatable); default every table")


def runs_from(source: str, metrics_dir: str, params):
    """The flat run frame from the records or MLflow; a clear error when there is none."""
    from ..errors import DataError
    from ..report import runs as R

    if source == "records":
        runs = R.from_records(metrics_dir)
    else:
        runs = R.from_mlflow(params.tracking.uri, params.tracking.experiment)
    if runs.empty:
        where = metrics_dir if source == "records" else "MLflow experiment " + params.tracking.experiment
        raise DataError(f"no runs found in {where}; run the pipeline first (or `robustify sync-mlflow` for MLflow)")
    return runs


def run(args) -> None:
    params = load(args)
    from ..report.tables import write_tables

    runs = runs_from(args.source, args.metrics_dir, params)
    for name, table in write_tables(runs, args.out_dir, params.report, only=args.only).items():
        if not args.only or name in args.only:
            print(f"{args.out_dir}/{name}: {len(table)} rows")
