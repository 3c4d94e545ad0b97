"""robustify report: every table (CSV), every figure (PNG/PDF) and summary.json, from the records."""

from __future__ import annotations

import logging

from .common import add_params_args, load

NAME = "report"
HELP = "write the paper's tables, figures and results/tables/summary.json from records (or MLflow)"
log = logging.getLogger("robustify.report")


def add_arguments(p) -> None:
    add_params_args(p)
    p.add_argument("--from", dest="source", choices=("records", "mlflow"), default="records")
    p.add_argument("--metrics-dir", default="results/metrics")
    p.add_argument("--tables-dir", default="results/tables")
    p.add_argument("--figures-dir", default="results/figures")
    p.add_argument("--exclude-table", action="append", default=[], metavar="NAME.csv",
                   help="build but do not write this table (repeatable; the workflow's `tables` rule writes main.csv)")


def run(args) -> None:
    params = load(args)
    from ..io import write_json
    from ..report.figures import write_figures
    from ..report.summary import summary
    from ..report.tables import write_tables
    from .tables import runs_from

    cfg = params.report
    runs = runs_from(args.source, args.metrics_dir, params)
    tables = write_tables(runs, args.tables_dir, cfg, exclude=args.exclude_table)
    for name, table in tables.items():
        if name not in args.exclude_table:
            log.info("%s/%s: %d rows", args.tables_dir, name, len(table))
    figures = write_figures(tables, args.figures_dir, cfg.figure_formats, cfg.dpi, cfg.main_scheme)
    log.info("%d figure files under %s", len(figures), args.figures_dir)
    head = summary(tables)
    write_json(f"{args.tables_dir}/summary.json", head)
    c = head["claims"]
    log.info("claims: %d hold, %d fail, %d not measured (results/tables/claims.csv)", c["held"], c["failed"], c["not_measured"])
