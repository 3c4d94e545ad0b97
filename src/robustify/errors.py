"""Typed errors a user can cause. `cli.main` turns each into one line and a non-zero exit."""


class RobustifyError(Exception):
    """Base class: the message names the problem and the fix."""

    exit_code = 2


class ConfigError(RobustifyError):
    """A params/preset file is malformed, mistyped or names something unknown."""


class DataError(RobustifyError):
    """A data file is missing, truncated, empty or has out-of-range labels."""


class ChecksumError(DataError):
    """A file's sha256 differs from the one recorded for it."""


class CheckpointError(RobustifyError):
    """A checkpoint is corrupt or belongs to another architecture."""


class TrainingError(RobustifyError):
    """Training diverged (NaN/inf loss); the last good checkpoint is kept."""


class OutputError(RobustifyError):
    """An output location cannot be written."""
