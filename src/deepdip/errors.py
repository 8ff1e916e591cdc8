"""User-facing errors: the CLI prints their message on one line and exits non-zero."""

from __future__ import annotations

import math


class DeepdipError(Exception):
    """A problem with the user's input (bad file, bad option) rather than a bug in deepdip."""


class StoreError(DeepdipError):
    """A cutout store is missing, unreadable or does not follow the format."""


class DeepdipValueError(DeepdipError, ValueError):
    """A bad value (an option out of range, a NaN where a number belongs).

    Also a ``ValueError``, so library callers that catch the standard exception catch it too.
    """


class StoreValueError(StoreError, DeepdipValueError):
    """A store holds values deepdip refuses to use (NaN pixels, NaN E(B-V), folds out of range)."""


def check_number(option: str, value, *, minimum=None, above=None, maximum=None, integer: bool = False,
                 allow_none: bool = True):
    """Return ``value`` if it is a finite number in range, else raise :class:`DeepdipValueError`.

    ``minimum``/``maximum`` are inclusive bounds, ``above`` an exclusive lower bound; ``option`` names
    the value in the message (``--lr``), so the user knows which flag to fix.
    """
    if value is None:
        if allow_none:
            return None
        raise DeepdipValueError(f"{option} is required")
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "__float__"):
        raise DeepdipValueError(f"{option} must be a number, got {value!r}")
    if integer and float(value) != int(value):
        raise DeepdipValueError(f"{option} must be an integer, got {value!r}")
    if not math.isfinite(float(value)):
        raise DeepdipValueError(f"{option} must be a finite number, got {value}")
    if minimum is not None and value < minimum:
        raise DeepdipValueError(f"{option} must be at least {minimum}, got {value}")
    if above is not None and value <= above:
        raise DeepdipValueError(f"{option} must be greater than {above}, got {value}")
    if maximum is not None and value > maximum:
        raise DeepdipValueError(f"{option} must be at most {maximum}, got {value}")
    return value
