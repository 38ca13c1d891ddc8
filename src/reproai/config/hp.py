"""Factories for search-space objects, meant to be used as ``hp.float(...)`` in config files."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any

from reproai.config._space import Categorical, Float, Int
from reproai.config._tree import Choice

__all__ = ["float", "int", "categorical", "choice"]


def float(
    low: builtins.float,
    high: builtins.float,
    *,
    log: bool = False,
    step: builtins.float | None = None,
    name: str | None = None,
) -> Float:  # noqa: A001
    """A real number in ``[low, high]``; ``log=True`` samples on a log scale."""
    return Float(low, high, log=log, step=step, name=name)


def int(
    low: builtins.int,
    high: builtins.int,
    *,
    log: bool = False,
    step: builtins.int | None = None,
    name: str | None = None,
) -> Int:  # noqa: A001
    """An integer in ``[low, high]``; ``log=True`` samples on a log scale."""
    return Int(low, high, log=log, step=step, name=name)


def categorical(choices: Sequence[Any], *, name: str | None = None) -> Categorical:
    """One of ``choices`` (plain values: None, bool, int, float or str)."""
    return Categorical(choices, name=name)


def choice(branches: Mapping[str, Any], *, name: str | None = None) -> Choice:
    """One of several named branches, each of which may hold further search spaces."""
    return Choice(branches, name=name)
