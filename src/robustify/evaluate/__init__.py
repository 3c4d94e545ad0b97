"""Evaluation: one MC-dropout pass per model and dataset, head-selection rules, Fcorrect, shift suites,
transfer probes and cost (DESIGN.md §1, issue 8)."""

from .onepass import OnePass, SingleHeadModel, load_onepass, run_onepass, save_onepass, summarize  # noqa: F401
from .selection import RULES, dataset_metrics, fcorrect, select  # noqa: F401
