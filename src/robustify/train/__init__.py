"""Training stages: linear probe, teacher robustification, distillation, baselines."""
