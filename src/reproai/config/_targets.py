"""The objects a config names: import paths (``"package.module:attr"``) both ways, and what a call signature
accepts. A component's recorded name must import back to the same object in another process (a rerun)."""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reproai.errors import ConfigError

__all__ = ["CONFIG_MODULE", "CONFIG_PREFIX", "import_object", "import_path", "check_arguments", "accepts"]

# The module name under which the loader executes a config file: what a config defines has it as __module__.
CONFIG_MODULE = "reproai_config"
# How a class or function defined in the config file itself is recorded (the logged copy defines it again).
CONFIG_PREFIX = "<config>"


def import_object(path: str) -> Any:
    """The object at an import path, ``"package.module:attr"`` (or ``"package.module.attr"``).

    Raises:
        ConfigError: the module does not import, or has no such attribute; the message says which.
    """
    if path.startswith(f"{CONFIG_PREFIX}:"):
        raise ConfigError(
            f"{path!r} names an object defined in a config file; it exists only while that config is loaded."
        )
    if ":" in path:
        module_name, _, attr = path.partition(":")
    elif "." in path:
        module_name, _, attr = path.rpartition(".")
    else:
        raise ConfigError(f"{path!r} is not an import path; write it as 'package.module:attr'.")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ConfigError(
            f"cannot import {path!r}: {type(e).__name__}: {e}. Check the spelling, and that the module is "
            "importable here (installed, or in the config file's folder, or on PYTHONPATH)."
        ) from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(part, names, n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"cannot import {path!r}: {module_name!r} has no attribute {attr!r}.{hint}") from e
    return obj


def import_path(obj: Any) -> str:
    """The name under which ``obj`` (a class or function) is recorded, so that another process finds it.

    An object defined in the config file is recorded as ``"<config>:name"`` (the logged config defines it
    again); any other as ``"module:qualname"``, checked to import back to the same object.

    Raises:
        ConfigError: ``obj`` is a lambda, a closure, an instance, or lives where no other process can
            import it (``__main__``); the message says what to write instead.
    """
    qualname = getattr(obj, "__qualname__", None)
    module = getattr(obj, "__module__", None)
    if not isinstance(qualname, str) or not isinstance(module, str) or isinstance(obj, functools_partial()):
        raise ConfigError(
            f"{obj!r} (an object of type {type(obj).__name__}) cannot be recorded by name, so the logged config "
            "could not re-create it. Give its class and keyword arguments instead, as Component(cls, **kwargs), "
            "or a function defined with `def` at module level."
        )
    if "<lambda>" in qualname:
        raise ConfigError(
            f"a lambda ({module}:{qualname}) cannot be recorded by name, so the logged config could not re-run "
            "it. Define it with `def` at module level, in the config file or in a module it imports."
        )
    if "<locals>" in qualname:
        raise ConfigError(
            f"{qualname} is defined inside a function (a closure), so it cannot be recorded by name and the logged "
            "config could not re-run it. Define it at module level, in the config file or in a module it imports."
        )
    if module == CONFIG_MODULE:
        return f"{CONFIG_PREFIX}:{qualname}"
    if module == "__main__":
        raise ConfigError(
            f"{qualname} is defined in the script being run (__main__), which other processes cannot import. "
            "Move it into the config file or into a module."
        )
    path = f"{module}:{qualname}"
    try:
        found = import_object(path)
    except ConfigError:
        found = None
    if found is not obj:
        raise ConfigError(
            f"{obj!r} is not importable as {path!r}, so it cannot be recorded by name; define it at module level."
        )
    return path


def functools_partial() -> type:
    import functools

    return functools.partial


def check_arguments(
    obj: Callable[..., Any],
    kwargs: Mapping[str, Any],
    *,
    given: Sequence[str] = (),
    skip: int = 0,
    where: str = "the Component's keyword arguments",
) -> list[str]:
    """Problems with calling ``obj(<skip positional>, **given, **kwargs)``: keywords it does not accept
    (with close matches) and required arguments that nothing gives (to be added to ``where``). ``[]``
    when its signature is unknown."""
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return []
    params = list(signature.parameters.values())
    if inspect.isclass(obj) and params and params[0].name == "self":
        params = params[1:]
    var_keyword = any(p.kind is p.VAR_KEYWORD for p in params)
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    names = [p.name for p in named]
    what = getattr(obj, "__qualname__", repr(obj))
    problems = []
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)][:skip]
    accepted = [n for n in names if n not in {p.name for p in positional}]  # reproai passes the others
    unknown = [k for k in kwargs if k not in names and not var_keyword]
    for k in unknown:
        close = difflib.get_close_matches(k, accepted, n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        problems.append(
            f"{what}() does not accept the keyword `{k}`.{hint} It accepts: {', '.join(accepted) or 'none'}."
        )
    missing = [
        p.name
        for p in params
        if p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY, p.POSITIONAL_ONLY)
        and p not in positional
        and p.name not in kwargs
        and p.name not in given
    ]
    for name in missing:
        problems.append(f"{what}() needs the argument `{name}`, which is not given; add it to {where}.")
    return problems


def accepts(obj: Callable[..., Any], name: str, *, var_keyword: bool = False) -> bool:
    """Whether ``obj`` takes a parameter ``name`` (or any keyword, with ``var_keyword=True``)."""
    try:
        params = inspect.signature(obj).parameters
    except (TypeError, ValueError):
        return False
    if name in params and params[name].kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    ):
        return True
    return var_keyword and any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
