"""Validate a whole config tree before any work starts, naming each problem's field path."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from reproai.config.schema import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training
from reproai.config.space import Categorical, Choice, Space, _Numeric
from reproai.config.tree import _join, child_items, iter_parameters
from reproai.errors import ConfigError

__all__ = ["validate", "problems"]

_EXPECTED_TYPES = {
    "data": Data,
    "model": Model,
    "training": Training,
    "cv": CrossValidation,
    "search": Search,
    "model.head": Head,
}


def _check_value(check: Any, value: Any) -> Iterator[str]:
    """Apply a field rule to a value, or to the extremes or choices of a space in its place."""
    if isinstance(value, Choice):
        return  # the branches are walked (and checked) as part of the tree
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


def problems(experiment: Any) -> list[tuple[str, str, str | None]]:
    """Every problem in ``experiment`` as (field path, message, config-file location or None)."""
    out: list[tuple[str, str, str | None]] = []
    if not isinstance(experiment, Experiment):
        return [("", f"expected an Experiment, got {type(experiment).__name__}", None)]

    # 1. Search-space objects that were built with invalid arguments.
    for p in iter_parameters(experiment):
        if p.space.error:
            out.append((p.path, p.space.error, p.space.location))

    # 2. Field rules, everywhere in the tree (inside choice branches too).
    def walk(node: Any, path: str) -> None:
        if isinstance(node, Choice):
            if isinstance(node.branches, dict):
                for key, branch in node.branches.items():
                    walk(branch, _join(path, key))
            return
        if dataclasses.is_dataclass(node) and not isinstance(node, type):
            for f in dataclasses.fields(node):
                value = getattr(node, f.name)
                check = f.metadata.get("check")
                if check is not None:
                    for msg in _check_value(check, value):
                        out.append((_join(path, f.name), msg, None))
        for key, child in child_items(node):
            walk(child, _join(path, key))

    walk(experiment, "")

    # 3. Structure: the parts are of the right type, phases are sound, names are known.
    for path, cls in _EXPECTED_TYPES.items():
        node: Any = experiment
        for key in path.split("."):
            node = getattr(node, key, None)
        if not isinstance(node, cls) and not isinstance(node, Choice):
            out.append((path, f"must be a {cls.__name__}(...), but got {node!r}", None))
    training = experiment.training
    if isinstance(training, Training):
        phases = training.phases
        if not isinstance(phases, (list, tuple)) or not phases:
            out.append(("training.phases", f"must be a non-empty list of Phase(...), but got {phases!r}", None))
        else:
            for i, ph in enumerate(phases):
                if not isinstance(ph, Phase):
                    out.append((f"training.phases.{i}", f"must be a Phase(...), but got {ph!r}", None))
            names = [getattr(ph, "name", None) for ph in phases]
            if len(set(names)) != len(names):
                out.append(("training.phases", f"phase names must be unique, but got {names!r}", None))
    if isinstance(experiment.model, Model):
        pre = experiment.model.pretrained
        if not isinstance(pre, (bool, str)):
            out.append(("model.pretrained", f"must be True, False or a path to a .pth file, but got {pre!r}", None))
        elif isinstance(pre, str) and not Path(pre).expanduser().is_file():
            out.append(
                (
                    "model.pretrained",
                    f"the weights file {pre!r} does not exist (looked in "
                    f"{Path(pre).expanduser().resolve()}); give a path to a state dict, "
                    "or True for the library's weights",
                    None,
                )
            )
    if isinstance(experiment.search, Search) and isinstance(experiment.search.metric, str):
        from reproai.metrics import METRICS

        if experiment.search.metric not in METRICS:
            import difflib

            close = difflib.get_close_matches(experiment.search.metric, list(METRICS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(
                ("search.metric", f"unknown metric {experiment.search.metric!r}{hint} Known: {sorted(METRICS)}", None)
            )
    if isinstance(experiment.data, Data) and isinstance(experiment.data.kind, str):
        from reproai.data.datasets import DATASETS

        if experiment.data.kind not in DATASETS:
            import difflib

            close = difflib.get_close_matches(experiment.data.kind, list(DATASETS), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            out.append(
                ("data.kind", f"unknown dataset kind {experiment.data.kind!r}{hint} Known: {sorted(DATASETS)}", None)
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
