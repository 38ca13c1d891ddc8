"""Search-space objects: value objects that stand in a config tree where a value will be chosen.

They wrap :mod:`optuna.distributions` rather than re-implement them: each space knows its Optuna
distribution, how to sample itself from a trial, and whether a fixed value lies inside it.
"""

from __future__ import annotations

import contextvars
import math
import traceback
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from reproai.errors import SearchSpaceError

if TYPE_CHECKING:  # Optuna is imported when a space is sampled, so that config files load fast
    import optuna

__all__ = ["Space", "Float", "Int", "Categorical", "deferred_validation", "config_site"]

# While a config file is executed, construction errors are recorded on the object instead of
# raised, so that the loader can report them with the field's path in the tree (which the
# constructor cannot know) and the line of the config file.
_deferred: contextvars.ContextVar[str | None] = contextvars.ContextVar("_deferred", default=None)


class deferred_validation:
    """Record construction errors on search-space objects made inside ``config_file``."""

    def __init__(self, config_file: str) -> None:
        self._file = config_file
        self._token: contextvars.Token | None = None

    def __enter__(self) -> None:
        self._token = _deferred.set(self._file)

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _deferred.reset(self._token)


def config_site() -> str | None:
    """``file:line`` of the config file's line being executed, while a config file is loaded; else None."""
    config_file = _deferred.get()
    if config_file is None:
        return None
    for frame in reversed(traceback.extract_stack()):
        if frame.filename == config_file:
            return f"{frame.filename}:{frame.lineno}"
    return None


_PRIMITIVES = (type(None), bool, int, float, str)
# Every kind of space by its name, for Space.from_dict (filled as subclasses are defined).
_KINDS: dict[str, type[Space]] = {}


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


class Space:
    """Base class of search-space objects. ``name`` defaults to the object's path in the tree."""

    kind: str = ""
    name: str | None

    def _init_checked(self, problems: list[str]) -> None:
        """Raise the first problem, or record all of them while a config file is loaded."""
        self.error: str | None = None
        self.location: str | None = None
        if not problems:
            return
        message = " ".join(problems)
        config_file = _deferred.get()
        if config_file is None:
            raise SearchSpaceError(message)
        self.error = message
        self.location = config_site()

    # -- the contract every space implements ------------------------------------------------
    def to_optuna(self) -> optuna.distributions.BaseDistribution:
        raise NotImplementedError

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        raise NotImplementedError

    def contains(self, value: Any) -> bool:
        raise NotImplementedError

    def _fields(self) -> dict[str, Any]:
        raise NotImplementedError

    # -- value-object behaviour -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible dict; :func:`Space.from_dict` inverts it."""
        return {"space": self.kind, **self._fields(), "name": self.name}

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> Space:
        """The space :meth:`to_dict` describes."""
        d = dict(d)
        kind = d.pop("space")
        cls = _KINDS.get(kind)
        if cls is None:
            raise SearchSpaceError(f"Unknown search-space kind {kind!r} in {d!r}.")
        return cls._from_fields(d)

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> Space:
        return cls(**fields)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind:
            _KINDS[cls.kind] = cls

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._fields().items())
        name = f", name={self.name!r}" if self.name else ""
        return f"hp.{self.kind}({args}{name})"


class _Numeric(Space):
    _type: type = float

    def __init__(self, low: Any, high: Any, *, log: bool = False, step: Any = None, name: str | None = None) -> None:
        self.low, self.high, self.log, self.step, self.name = low, high, log, step, name
        self._init_checked(list(self._problems()))

    def _problems(self) -> Iterator[str]:
        low, high, log, step = self.low, self.high, self.log, self.step
        if self._type is int:
            bad = [n for n, v in (("low", low), ("high", high)) if not isinstance(v, int) or isinstance(v, bool)]
            if bad:
                yield (
                    f"`{'` and `'.join(bad)}` of hp.int must be integers, but got ({low=}, {high=}); "
                    "use hp.float for real numbers."
                )
                return
        elif not (_is_number(low) and _is_number(high)):
            yield f"`low` and `high` must be finite numbers, but got ({low=}, {high=})."
            return
        if not low < high:
            yield f"`low < high` must hold, but got ({low=}, {high=}); swap them, or use a plain value for a constant."
        if not isinstance(log, bool):
            yield f"`log` must be True or False, but got {log=}."
        elif log and low <= 0:
            yield (
                f"`low > 0` must hold when log=True (a log scale has no zero), but got ({low=}, {high=}); "
                "raise `low` (e.g. 1e-8) or set log=False."
            )
        if step is not None:
            if not _is_number(step) or step <= 0 or (self._type is int and not isinstance(step, int)):
                yield f"`step` must be a positive {'integer' if self._type is int else 'number'}, but got {step=}."
            elif log and step != 1:
                yield f"`step` and `log=True` cannot be combined, but got ({step=}, {log=}); drop one of them."

    def _fields(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log, "step": self.step}

    def contains(self, value: Any) -> bool:
        if not _is_number(value) or (self._type is int and not float(value).is_integer()):
            return False
        if not self.low <= value <= self.high:
            return False
        if self.step is not None:
            k = (value - self.low) / self.step
            return math.isclose(k, round(k), abs_tol=1e-8)
        return True


class Float(_Numeric):
    """A real number in ``[low, high]``, optionally on a log scale or on a grid of ``step``."""

    kind = "float"

    def to_optuna(self) -> optuna.distributions.FloatDistribution:
        from optuna.distributions import FloatDistribution

        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log, step=self.step)


class Int(_Numeric):
    """An integer in ``[low, high]``, optionally on a log scale or on a grid of ``step``."""

    kind = "int"
    _type = int

    def to_optuna(self) -> optuna.distributions.IntDistribution:
        from optuna.distributions import IntDistribution

        return IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step or 1)


class Categorical(Space):
    """One of a list of plain values (None, bool, int, float or str)."""

    kind = "categorical"

    def __init__(self, choices: Any, *, name: str | None = None) -> None:
        self.choices = tuple(choices) if isinstance(choices, (list, tuple)) else choices
        self.name = name
        self._init_checked(list(self._problems()))

    def _problems(self) -> Iterator[str]:
        c = self.choices
        if not isinstance(c, tuple):
            yield f"`choices` must be a list, but got {c!r}."
        elif not c:
            yield "`choices` must not be empty, but got []; list at least one value, or use a plain value."
        else:
            bad = [x for x in c if not isinstance(x, _PRIMITIVES)]
            if bad:
                yield (
                    f"`choices` must be None, bool, int, float or str (what Optuna can store), but got {bad!r}; "
                    "use hp.choice({...}) to choose between structured values."
                )
            elif len(set(map(repr, c))) != len(c):
                yield f"`choices` must not repeat a value, but got {list(c)!r}."

    def _fields(self) -> dict[str, Any]:
        return {"choices": list(self.choices) if isinstance(self.choices, tuple) else self.choices}

    def to_optuna(self) -> optuna.distributions.CategoricalDistribution:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(self.choices)

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def contains(self, value: Any) -> bool:
        return any(type(value) is type(c) and value == c for c in self.choices) or (
            _is_number(value) and any(_is_number(c) and not isinstance(c, bool) and value == c for c in self.choices)
        )
