"""Errors a user can act on: each prints as one line naming the bad value and the fix."""


class SicsError(Exception):
    """Base of the project's user-facing errors."""


class DataError(SicsError):
    """Missing, unreadable or corrupt data."""


class CheckpointError(SicsError):
    """A checkpoint or weights file that cannot be loaded."""


class ParameterError(SicsError, ValueError):
    """A bad parameter (unknown scorer, sparsity outside [0, 1), empty list ...)."""
