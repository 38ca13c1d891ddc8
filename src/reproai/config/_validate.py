"""Validate a whole config tree before any work starts, naming each problem's field path.

Each field is checked as its ``metadata`` says (see :mod:`reproai.config._schema`): a rule on plain
values (applied to a search space's bounds or choices too), the config class it holds, or the kind
of component it names. A conditional ``hp.choice`` is accepted wherever each of its branches is a valid
value for the field, and each branch is checked as that field (the branch is named in the path).
Components are resolved (unknown names get close matches; import paths must import), their keyword
arguments are checked against the target's signature, and every class or function in the tree must be
recordable by name.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any, NamedTuple

from reproai.config._registry import Component, registry, target_and_kwargs
from reproai.config._schema import Experiment, Intensity, Model, Phase
from reproai.config._space import Categorical, Space, _Numeric
from reproai.config._targets import check_arguments
from reproai.config._tree import Choice, _join, _list_keys, is_dataframe, iter_parameters, recorded_name
from reproai.errors import ConfigError

__all__ = ["validate", "problems", "Problem"]


class Problem(NamedTuple):
    """One problem in a config: the field's path, what is wrong, and the config file's line if known."""

    path: str
    message: str
    location: str | None = None


@dataclass(frozen=True)
class _Arguments:
    """How reproai calls a component of one kind: positional arguments it passes first (``skip``),
    and keyword arguments it gives or fills in itself (``given``); ``reserved``: keywords the config
    must not give there (they are fields of their own)."""

    skip: int = 0
    given: tuple[str, ...] = ()
    reserved: tuple[str, ...] = ()


_ARGUMENTS = {
    "dataset": _Arguments(),
    "model": _Arguments(given=("num_classes",)),
    "optimizer": _Arguments(skip=1, given=("lr", "weight_decay", "momentum"), reserved=("lr", "weight_decay")),
    "lr_scheduler": _Arguments(skip=1, given=("T_max", "total_steps", "epochs", "steps_per_epoch", "max_lr")),
    "loss": _Arguments(given=("num_classes", "train_labels")),
    "augmentation": _Arguments(),
    "sampler": _Arguments(given=("seed", "n_trials", "search_space")),
    "pruner": _Arguments(given=("n_inner_folds",)),
}
# A function given as a loss or an augmentation is used as it is, called with the data.
_CALLED_WITH = {"loss": 2, "augmentation": 1}


def _check_value(check: Any, value: Any) -> Iterator[str]:
    """Apply a field rule to a value, or to the extremes or choices of a space in its place."""
    if isinstance(value, _Numeric):
        candidates = [value.low, value.high]
    elif isinstance(value, Categorical):
        candidates = list(value.choices) if isinstance(value.choices, tuple) else []
    else:
        candidates = [value]
    for x in candidates:
        problem = check(x)
        if problem:
            where = "" if not isinstance(value, Space) else f" (in {value!r})"
            yield f"{problem}{where}"
            return


class _Validator:
    def __init__(self) -> None:
        self.found: list[Problem] = []
        self.sites: dict[str, str] = {}  # path of a config node -> the config file's line that made it

    def problem(self, path: str, message: str) -> None:
        self.found.append(Problem(path, message, self.site(path)))

    def site(self, path: str) -> str | None:
        """The line that made the innermost config node on ``path`` (the field's own object, or its owner)."""
        while True:
            if path in self.sites:
                return self.sites[path]
            if not path:
                return None
            path = path.rpartition(".")[0]

    def node(self, obj: Any, path: str) -> None:
        site = getattr(obj, "_site", None)
        if site:
            self.sites[path] = site
        for f in dataclasses.fields(obj):
            if f.init:
                self.value(getattr(obj, f.name), _join(path, f.name), f.metadata, obj)

    def value(self, value: Any, path: str, meta: Mapping[str, Any], owner: Any) -> None:
        if isinstance(value, Choice):
            if isinstance(value.branches, dict):  # each branch must be a valid value of this field
                for key, branch in value.branches.items():
                    self.value(branch, _join(path, key), meta, owner)
            return
        node, kind, many = meta.get("node"), meta.get("component"), meta.get("many", False)
        if node is not None and many:
            if not isinstance(value, (list, tuple)) or not value:
                self.problem(path, f"must be a non-empty list of {node.__name__}(...), but got {value!r}")
                return
            for key, element in zip(_list_keys(value), value, strict=True):
                self.value(element, _join(path, key), {**meta, "many": False}, owner)
            return
        if node is not None:
            if isinstance(value, node):
                self.node(value, path)
            else:
                self.problem(path, f"must be a {node.__name__}(...), but got {value!r}")
            return
        if kind is not None:
            if value is None and meta.get("optional"):
                return
            if many and isinstance(value, (list, tuple)):
                for i, element in enumerate(value):
                    self.value(element, _join(path, str(i)), {**meta, "many": False}, owner)
                return
            if isinstance(value, Categorical) and isinstance(value.choices, tuple):
                for choice in value.choices:
                    self.component(choice, path, kind, owner)
                return
            self.component(value, path, kind, owner)
            return
        check = meta.get("check")
        if check is not None:
            for message in _check_value(check, value):
                self.problem(path, message)

    def component(self, value: Any, path: str, kind: str, owner: Any) -> None:
        target, kwargs = target_and_kwargs(value)
        extra = getattr(owner, "kwargs", None) if kind in ("model", "dataset") else None
        if isinstance(extra, Mapping) and extra:
            both = sorted(set(extra) & set(kwargs))
            if both:
                self.problem(path, f"the keyword(s) {both} are given twice, in the Component and in kwargs; keep one")
            kwargs = {**kwargs, **extra}
        if isinstance(target, Space):
            self.problem(
                path,
                f"the target of a component cannot be a search space ({target!r}); use hp.choice "
                "between whole components instead",
            )
            return
        if not isinstance(target, str):
            try:
                recorded_name(target)
            except ConfigError as e:
                self.problem(path, str(e))
                return
        try:
            entry = registry(kind).entry(target)
        except ConfigError as e:
            self.problem(path, str(e))
            return
        if kind == "metric":
            return
        if entry.meta.get("builtin"):
            if kwargs:
                self.problem(
                    path,
                    f"the built-in kind {target!r} takes no kwargs ({sorted(kwargs)}); set its "
                    "options as fields (e.g. Data.image_folder(root, limit=100))",
                )
            return
        if isinstance(entry.target, str) and not kwargs and not entry.defaults:
            return  # a built-in by name, as it is: nothing to check, and nothing imported for it
        try:
            obj = entry.load()
        except ConfigError as e:
            self.problem(path, str(e))
            return
        rules = _ARGUMENTS[kind]
        for key in rules.reserved:
            if key in kwargs:
                self.problem(
                    path,
                    f"`{key}` is a field of the phase, not an argument of its {kind}: set Phase({key}=...) instead",
                )
        skip, given = rules.skip, rules.given
        if kind in _CALLED_WITH and not inspect.isclass(obj) and not entry.meta.get("factory"):
            skip, given = _CALLED_WITH[kind], ()
        where = (
            f"{path.rsplit('.', 1)[0]}.kwargs" if kind in ("model", "dataset") else "the Component's keyword arguments"
        )
        for message in check_arguments(obj, {**entry.defaults, **kwargs}, given=given, skip=skip, where=where):
            self.problem(path, message)


def _recordable(node: Any, path: str) -> Iterator[Problem]:
    """Classes and functions in the tree must be recordable by name; other objects must be plain values."""
    if isinstance(node, Space) and not isinstance(node, Choice):
        return
    if isinstance(node, Choice):
        if isinstance(node.branches, dict):
            for key, branch in node.branches.items():
                yield from _recordable(branch, _join(path, key))
        return
    if isinstance(node, Component) or dataclasses.is_dataclass(node) and not isinstance(node, type):
        children: Any = (
            node.kwargs.items()
            if isinstance(node, Component)
            else ((f.name, getattr(node, f.name)) for f in dataclasses.fields(node) if f.init)
        )
    elif isinstance(node, Mapping):
        children = ((str(k), v) for k, v in node.items())
    elif isinstance(node, (list, tuple)):
        children = ((str(i), v) for i, v in enumerate(node))
    elif node is None or isinstance(node, (bool, int, float, str, PurePath)) or is_dataframe(node):
        return
    elif callable(node):
        try:
            recorded_name(node)
        except ConfigError as e:
            yield Problem(path, str(e))
        return
    else:
        yield Problem(
            path,
            f"a value of type {type(node).__name__} cannot be recorded in the config; use plain "
            "values, or a class or function with its arguments as Component(...)",
        )
        return
    for key, child in children:
        yield from _recordable(child, _join(path, key))


def problems(experiment: Any) -> list[Problem]:
    """Every problem in ``experiment``, as :class:`Problem` (field path, message, location)."""
    if not isinstance(experiment, Experiment):
        return [Problem("", f"expected an Experiment, got {type(experiment).__name__}")]
    out: list[Problem] = []

    # 1. Search-space objects that were built with invalid arguments.
    for p in iter_parameters(experiment):
        if p.space.error:
            out.append(Problem(p.path, p.space.error, p.space.location))

    # 2. Every field as its metadata says, inside choice branches too; classes and functions recordable.
    checker = _Validator()
    checker.node(experiment, "")
    broken = {p.path for p in out}  # a space built wrong is one problem, not also its field's
    out += [p for p in checker.found if p.path not in broken]
    seen = {p.path for p in out}
    out += [p for p in _recordable(experiment, "") if p.path not in seen]

    # 3. Rules across fields.
    phases = getattr(experiment.training, "phases", None)
    if isinstance(phases, (list, tuple)):
        names = [ph.name for ph in phases if isinstance(ph, Phase)]
        if len(set(names)) != len(names):
            out.append(
                Problem(
                    "training.phases",
                    f"phase names must be unique, but got {names!r}",
                    checker.site("training.phases"),
                )
            )
    intensity = getattr(experiment.data, "intensity", None)
    if isinstance(intensity, Intensity):
        window = intensity.kind == "window"
        given = [k for k in ("center", "width") if getattr(intensity, k) is not None]
        if window and len(given) < 2:
            out.append(
                Problem(
                    "data.intensity",
                    "kind='window' needs a center and a width (in the image's units), e.g. "
                    "Intensity.window(center=40, width=400)",
                    checker.site("data.intensity"),
                )
            )
        elif given and not window and not isinstance(intensity.kind, Space):
            out.append(
                Problem(
                    "data.intensity",
                    f"center and width apply to kind='window' only, but kind={intensity.kind!r}",
                    checker.site("data.intensity"),
                )
            )
    model = experiment.model
    if isinstance(model, Model) and model.factory is None:
        pre = model.pretrained
        if not isinstance(pre, (bool, str)):
            out.append(
                Problem(
                    "model.pretrained",
                    f"must be True, False or a path to a .pth file, but got {pre!r}",
                    checker.site("model.pretrained"),
                )
            )
        elif isinstance(pre, str) and not Path(pre).expanduser().is_file():
            out.append(
                Problem(
                    "model.pretrained",
                    f"the weights file {pre!r} does not exist (looked in {Path(pre).expanduser().resolve()}); give a "
                    "path to a state dict, or True for the library's weights",
                    checker.site("model.pretrained"),
                )
            )
    return out


def validate(experiment: Any, *, source: str | None = None) -> None:
    """Raise :class:`ConfigError` listing every problem in ``experiment``; ``source`` names its file."""
    found = problems(experiment)
    if not found:
        return
    where = f"Invalid config {source}" if source else "Invalid config"
    lines = []
    for path, msg, location in found:
        at = f" (at {location})" if location else ""
        lines.append(f"  - `{path or '<experiment>'}`{at}: {msg}")
    raise ConfigError(
        f"{where}: {len(found)} problem{'s' if len(found) > 1 else ''}:\n"
        + "\n".join(lines)
        + "\nFix the config file, or override a field with --set path=value."
    )
