"""One exception type for bad input, so callers can catch data problems without catching bugs."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data. The message names the file, study or line and what was expected."""
