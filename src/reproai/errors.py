"""Exceptions raised by reproai.

Every error a user can cause derives from :class:`ReproaiError`, so a caller can catch them all
while letting programming errors through.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "ReproaiError",
    "ConfigError",
    "SearchSpaceError",
    "InvalidParamsError",
    "SearchFailedError",
    "DataError",
    "LeakageError",
    "DiskFullError",
    "TrackingError",
    "UntrustedConfigError",
    "causes",
    "is_disk_full",
]


class ReproaiError(Exception):
    """Base class of the errors reproai raises on bad input or a bad environment."""


class ConfigError(ReproaiError):
    """A config file or a config value is invalid."""


class SearchSpaceError(ConfigError):
    """A search-space object was given invalid arguments, or a value outside its space."""


class InvalidParamsError(ConfigError):
    """Parameters sampled for a trial cannot be trained with (e.g. a batch larger than the training set)."""


class SearchFailedError(ReproaiError):
    """No trial of a search completed: a summary of why they failed."""


class DataError(ReproaiError):
    """A dataset is missing, empty, or holds a file that cannot be read."""


class LeakageError(ReproaiError):
    """A split would let test data into training or model selection."""


class TrackingError(ReproaiError):
    """The tracking backend cannot be reached or holds unexpected runs."""


class UntrustedConfigError(ReproaiError):
    """A logged config from another machine would be executed without the user's consent (``--trust``)."""


class DiskFullError(ReproaiError):
    """A cache or an artifact could not be written for lack of space (nothing half-written is kept)."""


def causes(e: BaseException | None) -> Iterator[BaseException]:
    """``e`` and the exceptions it was raised from (``__cause__``, else ``__context__``), in turn."""
    while e is not None:
        yield e
        e = e.__cause__ or e.__context__


def is_disk_full(e: BaseException) -> bool:
    """Whether ``e``, or an exception it was raised from, reports a full disk or an exceeded quota."""
    import errno

    return any(
        (isinstance(x, OSError) and x.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG))
        or any(s in str(x) for s in ("No space left on device", "Disk quota exceeded", "database or disk is full"))
        for x in causes(e)
    )
