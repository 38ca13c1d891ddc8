"""Load an :class:`Experiment` from a Python config file, apply ``--set`` overrides, validate it."""

from __future__ import annotations

import ast
import contextlib
import difflib
import hashlib
import json
import re
import sys
import traceback
import types
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reproai.config._registry import registry
from reproai.config._schema import Experiment
from reproai.config._space import deferred_validation
from reproai.config._targets import CONFIG_MODULE
from reproai.config._tree import SOURCE_DIGEST, get_path, set_path, to_jsonable
from reproai.config._validate import validate
from reproai.errors import ConfigError

__all__ = ["LoadedConfig", "load_config", "load_experiment", "parse_override", "apply_overrides", "config_hash"]


@dataclass(frozen=True)
class LoadedConfig:
    """An experiment together with where it came from: the file, its text and the overrides."""

    experiment: Experiment
    path: Path | None
    source: str
    overrides: tuple[str, ...] = field(default=())

    @property
    def hash(self) -> str:
        return config_hash(self.experiment)


def _config_line(exc: BaseException, filename: str) -> int | None:
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename == filename:
            return frame.lineno
    return None


def _hint_unknown_keyword(message: str) -> str:
    """For ``Phase() got an unexpected keyword argument 'lrr'``, suggest the closest field."""
    m = re.search(r"(\w+)\.__init__\(\) got an unexpected keyword argument '(\w+)'", message)
    if not m:
        return ""
    config_classes = registry("config")
    if m.group(1) not in config_classes:
        return ""
    cls = config_classes.get(m.group(1)).load()
    import dataclasses

    names = [f.name for f in dataclasses.fields(cls)]
    close = difflib.get_close_matches(m.group(2), names, n=1)
    hint = f" Did you mean `{close[0]}`?" if close else ""
    return f" `{m.group(2)}` is not a field of {cls.__name__}.{hint} Its fields are: {', '.join(names)}."


def _exec_config(path: Path, source: str) -> dict[str, Any]:
    filename = str(path)
    try:
        code = compile(source, filename, "exec")
    except SyntaxError as e:
        text = (e.text or "").rstrip("\n")
        pointer = f"\n    {text}" if text else ""
        raise ConfigError(f"{filename}:{e.lineno}: syntax error in the config file: {e.msg}.{pointer}") from e
    module = types.ModuleType(CONFIG_MODULE)
    module.__file__ = filename
    # Like a script, a config imports modules that sit beside it (and a component's import path may name them).
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    try:
        with deferred_validation(filename):
            exec(code, module.__dict__)
    except ConfigError as e:
        line = _config_line(e, filename)
        raise ConfigError(f"{filename}:{line}: {e}") from e
    except Exception as e:
        line = _config_line(e, filename)
        where = f"{filename}:{line}" if line else filename
        raise ConfigError(
            f"{where}: the config file raised {type(e).__name__}: {e}.{_hint_unknown_keyword(str(e))}"
        ) from e
    _mark_sources(module.__dict__, source)
    return module.__dict__


def _mark_sources(namespace: dict[str, Any], source: str) -> None:
    """Give each class and function the config defines the digest of its source, which the config hash
    covers: a changed model function in the config file is a changed experiment."""
    for node in ast.parse(source).body:
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        obj = namespace.get(node.name)
        if getattr(obj, "__module__", None) != CONFIG_MODULE:
            continue
        text = ast.get_source_segment(source, node) or ""
        with contextlib.suppress(AttributeError, TypeError):  # a class with __slots__ on its metaclass, say
            setattr(obj, SOURCE_DIGEST, hashlib.sha256(text.encode()).hexdigest())


def parse_override(text: str) -> tuple[str, Any]:
    """Split ``path=value``; the value is a Python literal where it parses as one, else a string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected `dotted.path=value`, e.g. --set training.batch_size=64.")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    if not key:
        raise ConfigError(f"--set {text!r}: the path before `=` is empty.")
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if raw.lower() in lowered:
        return key, lowered[raw.lower()]
    try:
        return key, ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        return key, raw


def apply_overrides(experiment: Experiment, overrides: Sequence[str]) -> Experiment:
    """Apply ``path=value`` overrides in order; unknown paths raise naming the closest fields."""
    for text in overrides:
        key, value = parse_override(text)
        raw = text.split("=", 1)[1].strip()
        if value is None and raw != "None":
            # `none` is also a value of some string fields (search.pruner='none'): keep it a string there.
            try:
                current = get_path(experiment, key)
            except ConfigError:
                current = None
            if isinstance(current, str):
                value = raw
        try:
            experiment = set_path(experiment, key, value)
        except ConfigError as e:
            raise ConfigError(f"--set {text}: {e}") from e
    return experiment


def load_config(path: str | Path, overrides: Sequence[str] = (), *, source: str | None = None) -> LoadedConfig:
    """Load, override and validate the one :class:`Experiment` that a config file defines.

    ``source`` gives the file's text directly (a logged copy); ``path`` then only names it.
    """
    path = Path(path)
    if source is None:
        if not path.is_file():
            hint = " (it is a folder)" if path.is_dir() else ""
            raise ConfigError(
                f"Config file {str(path)!r} not found{hint}; give the path to a Python file that "
                "defines an Experiment, e.g. configs/quickstart.py."
            )
        source = path.read_text(encoding="utf-8")
    namespace = _exec_config(path, source)
    found: dict[int, tuple[str, Experiment]] = {}
    for name, value in namespace.items():
        if isinstance(value, Experiment) and id(value) not in found:
            found[id(value)] = (name, value)
    if not found:
        raise ConfigError(
            f"{path}: the config file defines no Experiment; assign one at module level, "
            "e.g. `experiment = Experiment(name=..., data=..., ...)`."
        )
    if len(found) > 1:
        names = ", ".join(n for n, _ in found.values())
        raise ConfigError(
            f"{path}: the config file defines {len(found)} Experiments ({names}); it must define "
            "exactly one. Move the others to their own files."
        )
    ((_, experiment),) = found.values()
    try:
        experiment = apply_overrides(experiment, overrides)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from e
    suffix = f" with --set {' '.join(overrides)}" if overrides else ""
    validate(experiment, source=f"{path}{suffix}")
    return LoadedConfig(experiment=experiment, path=path, source=source, overrides=tuple(overrides))


def load_experiment(path: str | Path, overrides: Sequence[str] = ()) -> Experiment:
    """Load the validated :class:`Experiment` of a config file (see :func:`load_config`)."""
    return load_config(path, overrides).experiment


def config_hash(experiment: Experiment) -> str:
    """A stable hash of what defines the experiment, not of where it runs (paths, device)."""
    data = to_jsonable(experiment, for_hash=True)
    pretrained = data["model"].get("pretrained") if isinstance(data.get("model"), dict) else None
    if isinstance(pretrained, str):
        # A local weights file is named by its file name, not by where it lies on this machine.
        data["model"]["pretrained"] = Path(pretrained).name
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]
