"""Exceptions raised by reproai.

Every error a user can cause derives from :class:`ReproaiError`, so a caller can catch them all
while letting programming errors through.
"""

from __future__ import annotations

__all__ = ["ReproaiError", "ConfigError", "SearchSpaceError", "DataError", "TrackingError", "UntrustedConfigError"]


class ReproaiError(Exception):
    """Base class of the errors reproai raises on bad input or a bad environment."""


class ConfigError(ReproaiError):
    """A config file or a config value is invalid."""


class SearchSpaceError(ConfigError):
    """A search-space object was given invalid arguments, or a value outside its space."""


class DataError(ReproaiError):
    """A dataset is missing, empty, or holds a file that cannot be read."""


class TrackingError(ReproaiError):
    """The tracking backend cannot be reached or holds unexpected runs."""


class UntrustedConfigError(ReproaiError):
    """A logged config from another machine would be executed without the user's consent (``--trust``)."""
