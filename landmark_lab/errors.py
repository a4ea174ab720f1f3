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


class Interrupted(Exception):
    """A signal (SIGTERM from a scheduler, say) ended the run: it exits with 128 + the signal's number, not 0.

    Not a :class:`LandmarkLabError`: nothing about the input was wrong, and the exit status says which signal.
    """

    def __init__(self, message: str, signum: int, stage: str | None = None, step: int | None = None) -> None:
        super().__init__(message)
        self.signum, self.stage, self.step = signum, stage, step
