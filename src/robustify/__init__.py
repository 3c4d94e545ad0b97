"""robustify: a reproducibility workflow for *Efficiently Robustify Pre-trained Models* (ICCV 2023)."""

__version__ = "0.1.0"
