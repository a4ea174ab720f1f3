"""Errors a user can act on: each message names the file or value and says what to do."""

from __future__ import annotations


class LandmarkLabError(Exception):
    """Base class of errors caused by input or configuration rather than by a bug."""


class DataError(LandmarkLabError):
    """A data file, folder or split is missing or malformed."""


class ConfigError(LandmarkLabError):
    """A configuration value cannot be honoured."""


class TrainingDiverged(LandmarkLabError):
    """Training produced a non-finite loss or metric: the run has no result (``failed.json``, not ``metrics.json``)."""

    def __init__(self, message: str, stage: str | None = None) -> None:
        super().__init__(message)
        self.stage = stage
