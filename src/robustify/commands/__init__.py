"""Subcommands of `robustify`. Each module defines NAME, HELP, add_arguments(parser) and run(args).

To add one, write the module and list it here; rules call it as `robustify <NAME> …`.
"""

COMMAND_MODULES: tuple[str, ...] = (
    "check_config",
    "export_schema",
    "corrupt",
    "distill",
    "fetch_data",
    "linear_probe",
    "baseline",
    "tables",
    "report",
    "sync_mlflow",
    "deepaugment",
    "robustify_teacher",
    "evaluate",
)
