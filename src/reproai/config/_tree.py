"""Walk a config tree: find its search spaces, resolve them, read and set fields by dotted path.

A tree is any nesting of dataclasses, components, dicts, lists and tuples whose leaves are plain values,
classes or functions, or search-space objects. A list element that is a dataclass with a unique ``name``
is addressed by that name (``training.phases.finetune.lr``), anything else by its index or key; a
component's keyword arguments by their names (``training.phases.train.optimizer.momentum``).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
from collections.abc import Iterator, Mapping
from pathlib import PurePath
from typing import TYPE_CHECKING, Any, NamedTuple

from reproai.config._registry import Component, registry
from reproai.config._space import Space
from reproai.config._targets import CONFIG_PREFIX, import_path
from reproai.errors import ConfigError, SearchSpaceError

if TYPE_CHECKING:
    import optuna

__all__ = [
    "Parameter",
    "iter_parameters",
    "has_search_space",
    "resolve",
    "get_path",
    "set_path",
    "to_jsonable",
    "from_jsonable",
    "child_items",
    "recorded_name",
    "first_values",
    "Choice",
]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_dataclass_instance(node: Any) -> bool:
    return dataclasses.is_dataclass(node) and not isinstance(node, type)


def _list_keys(items: list | tuple) -> list[str]:
    names = [getattr(x, "name", None) if _is_dataclass_instance(x) else None for x in items]
    if all(isinstance(n, str) and n.isidentifier() for n in names) and len(set(names)) == len(names):
        return names  # type: ignore[return-value]
    return [str(i) for i in range(len(items))]


def child_items(node: Any) -> list[tuple[str, Any]]:
    """The (key, child) pairs of a container node; empty for a leaf."""
    if isinstance(node, Space):
        return []
    if isinstance(node, Component):
        return list(node.kwargs.items())
    if _is_dataclass_instance(node):
        return [(f.name, getattr(node, f.name)) for f in dataclasses.fields(node) if f.init]
    if isinstance(node, Mapping):
        return [(str(k), v) for k, v in node.items()]
    if isinstance(node, (list, tuple)):
        return list(zip(_list_keys(node), node, strict=True))
    return []


class Parameter(NamedTuple):
    """One search space in a tree: its parameter name, the space, where it sits, and its condition."""

    name: str
    space: Space
    path: str
    condition: str | None


def iter_parameters(tree: Any, path: str = "", condition: str | None = None) -> Iterator[Parameter]:
    """Yield every search space in ``tree``, including those inside conditional branches."""
    if isinstance(tree, Space):
        name = tree.name or path
        yield Parameter(name, tree, path, condition)
        if isinstance(tree, Choice) and isinstance(tree.branches, dict):
            for key, branch in tree.branches.items():
                yield from iter_parameters(branch, _join(name, key), f"{name} == {key!r}")
        return
    for key, child in child_items(tree):
        yield from iter_parameters(child, _join(path, key), condition)


def has_search_space(tree: Any) -> bool:
    """Whether ``tree`` holds at least one search space."""
    return next(iter_parameters(tree), None) is not None


def resolve(tree: Any, source: optuna.trial.BaseTrial | Mapping[str, Any]) -> Any:
    """Replace every search space in ``tree`` by a value.

    ``source`` is an Optuna trial (the values are sampled) or a mapping of parameter name to value
    (the values are fixed, and must lie inside their spaces). A tree without search spaces is
    returned unchanged (the same object); otherwise the result shares the unchanged subtrees.
    """
    if isinstance(source, Mapping):

        def pick(space: Space, name: str) -> Any:
            if name not in source:
                raise SearchSpaceError(
                    f"No value for parameter `{name}` ({space!r}); the given parameters are "
                    f"{sorted(source)}. Pass a value for it, e.g. --set {name}=..."
                )
            value = source[name]
            if not space.contains(value):
                raise SearchSpaceError(f"Parameter `{name}` = {value!r} lies outside its space {space!r}.")
            if type(space).__name__ == "Int" and isinstance(value, float):
                value = int(value)
            return value
    else:
        trial = source

        def pick(space: Space, name: str) -> Any:
            return space.suggest(trial, name)

    return _resolve(tree, "", pick)


def first_values(tree: Any) -> Any:
    """``tree`` with each search space replaced by its first value (a range's low end, the first choice
    or branch): one concrete config, to check what only a built object can show."""

    def pick(space: Space, name: str) -> Any:
        if isinstance(space, Choice):
            return next(iter(space.branches))
        choices = getattr(space, "choices", None)
        return choices[0] if choices is not None else space.low  # type: ignore[attr-defined]

    return _resolve(tree, "", pick)


def _resolve(node: Any, path: str, pick: Any) -> Any:
    if isinstance(node, Space):
        name = node.name or path
        value = pick(node, name)
        if isinstance(node, Choice):
            return _resolve(node.branches[value], _join(name, value), pick)
        return value
    items = child_items(node)
    if not items:
        return node
    new = [(k, _resolve(v, _join(path, k), pick)) for k, v in items]
    if all(a[1] is b[1] for a, b in zip(items, new, strict=True)):
        return node
    if _is_dataclass_instance(node):
        return dataclasses.replace(node, **dict(new))
    if isinstance(node, Component):
        return node.replace(dict(new))
    container = type(node)  # taken before the isinstance below narrows ``node`` to the abstract Mapping
    if isinstance(node, Mapping):
        return container(zip(node.keys(), (v for _, v in new), strict=True))
    return container(v for _, v in new)


def _describe(node: Any) -> str:
    return type(node).__name__ if _is_dataclass_instance(node) else type(node).__name__


def _step(node: Any, key: str, done: str) -> tuple[Any, Any]:
    """Return (the child at key, the key to use when rebuilding ``node``)."""
    items = child_items(node)
    keys = [k for k, _ in items]
    if isinstance(node, (list, tuple)) and key.lstrip("-").isdigit() and -len(node) <= int(key) < len(node):
        return node[int(key)], int(key) % len(node)
    for i, (k, v) in enumerate(items):
        if k == key:
            return v, (i if isinstance(node, (list, tuple)) else key)
    where = f"`{done}`" if done else "the experiment"
    if not items:
        raise ConfigError(f"`{_join(done, key)}`: {where} is a plain value ({node!r}), it has no field `{key}`.")
    close = difflib.get_close_matches(key, keys, n=3)
    hint = f" Did you mean {', '.join(f'`{c}`' for c in close)}?" if close else ""
    raise ConfigError(
        f"`{_join(done, key)}`: {where} ({_describe(node)}) has no field `{key}`.{hint} "
        f"Its fields are: {', '.join(keys)}."
    )


def get_path(tree: Any, dotted: str) -> Any:
    """The value at a dotted path such as ``training.phases.warmup.lr``."""
    node, done = tree, ""
    for key in dotted.split("."):
        node, _ = _step(node, key, done)
        done = _join(done, key)
    return node


def set_path(tree: Any, dotted: str, value: Any) -> Any:
    """A copy of ``tree`` with the value at ``dotted`` replaced (the original is not changed)."""
    keys = dotted.split(".")

    def rebuild(node: Any, i: int, done: str) -> Any:
        child, where = _step(node, keys[i], done)
        new_child = value if i == len(keys) - 1 else rebuild(child, i + 1, _join(done, keys[i]))
        if _is_dataclass_instance(node):
            return dataclasses.replace(node, **{where: new_child})
        if isinstance(node, Component):
            return node.replace({**node.kwargs, where: new_child})
        container = type(node)  # taken before the isinstance below narrows ``node`` to the abstract Mapping
        if isinstance(node, Mapping):
            mapping = dict(node)
            mapping[where] = new_child
            return container(mapping) if not isinstance(node, dict) else mapping
        sequence = list(node)
        sequence[where] = new_child
        return container(sequence)

    return rebuild(tree, 0, "")


# Set by the loader on the classes and functions a config file defines: the sha256 of their source, so
# that the config hash changes when their code does.
SOURCE_DIGEST = "__reproai_source_sha256__"


def recorded_name(obj: Any, *, for_hash: bool = False) -> str:
    """How a class or function in a config is recorded: its import path (``"module:qualname"``), or
    ``"<config>:name"`` for one defined in the config file (with ``for_hash``, plus its source's digest).

    Raises:
        ConfigError: it cannot be named (a lambda, a closure, an instance; see :func:`import_path`).
    """
    name = import_path(obj)
    digest = getattr(obj, SOURCE_DIGEST, None)
    if for_hash and name.startswith(CONFIG_PREFIX) and digest:
        return f"{name}#{digest[:16]}"
    return name


def is_dataframe(value: Any) -> bool:
    """Whether ``value`` is a pandas DataFrame (without importing pandas)."""
    return type(value).__name__ == "DataFrame" and hasattr(value, "to_csv")


def to_jsonable(node: Any, *, for_hash: bool = False) -> Any:
    """A JSON-compatible form of a config tree; :func:`from_jsonable` inverts it.

    Classes and functions are recorded by name (:func:`recorded_name`), never by ``repr`` (which holds
    a memory address), so the form is the same in every process. With ``for_hash=True`` the fields that
    say where an experiment runs rather than what it is (marked ``metadata={"hash": False}``) are left
    out.

    Raises:
        ConfigError: the tree holds an object that cannot be recorded (a lambda, a closure, an instance).
    """
    if isinstance(node, Choice) and for_hash and isinstance(node.branches, dict):
        branches = {k: to_jsonable(v, for_hash=True) for k, v in node.branches.items()}
        return {"space": node.kind, "branches": branches, "name": node.name}
    if isinstance(node, Space):
        return node.to_dict()
    if isinstance(node, Component):
        target = node.target if isinstance(node.target, str) else recorded_name(node.target, for_hash=for_hash)
        return {"__component__": target, "kwargs": to_jsonable(node.kwargs, for_hash=for_hash)}
    if _is_dataclass_instance(node):
        out: dict[str, Any] = {"__type__": type(node).__name__}
        for f in dataclasses.fields(node):
            if f.init and not (for_hash and f.metadata.get("hash") is False):
                out[f.name] = to_jsonable(getattr(node, f.name), for_hash=for_hash)
        return out
    if isinstance(node, Mapping):
        return {str(k): to_jsonable(v, for_hash=for_hash) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [to_jsonable(v, for_hash=for_hash) for v in node]
    if node is None or isinstance(node, (bool, int, float, str)):
        return node
    if isinstance(node, PurePath):
        return str(node)
    if is_dataframe(node):  # a table given in the config: recorded by its content (the config file makes it)
        digest = hashlib.sha256(node.to_csv(index=True).encode()).hexdigest()
        return {"__dataframe__": digest[:16], "shape": list(node.shape)}
    if callable(node):
        return recorded_name(node, for_hash=for_hash)
    raise ConfigError(
        f"a value of type {type(node).__name__} ({node!r:.80}) cannot be recorded in the config; use plain "
        "values (numbers, strings, lists, dicts), or a class or function with its arguments as Component(...)."
    )


def from_jsonable(data: Any) -> Any:
    """Rebuild a config tree from :func:`to_jsonable`'s output."""
    if isinstance(data, list):
        return [from_jsonable(v) for v in data]
    if not isinstance(data, dict):
        return data
    if "space" in data and "name" in data:
        return Space.from_dict(data)
    if "__component__" in data:
        return Component(data["__component__"], **from_jsonable(data.get("kwargs", {})))
    if "__type__" in data:
        cls = registry("config").get(data["__type__"]).load()
        return cls(**{k: from_jsonable(v) for k, v in data.items() if k != "__type__"})
    return {k: from_jsonable(v) for k, v in data.items()}


class Choice(Space):
    """A conditional choice between named branches, each of which may hold more search spaces.

    The branch is sampled as a categorical parameter; search spaces inside a branch are named
    ``<name>.<branch>.<field>``, so that branches never share a parameter by accident.
    """

    kind = "choice"

    def __init__(self, branches: Mapping[str, Any], *, name: str | None = None) -> None:
        self.branches = dict(branches) if isinstance(branches, Mapping) else branches
        self.name = name
        self._init_checked(list(self._problems()))

    def _problems(self) -> Iterator[str]:
        b = self.branches
        if not isinstance(b, dict):
            yield f"`branches` must be a dict of branch name -> value, but got {b!r}."
        elif not b:
            yield "`branches` must not be empty, but got {}; name at least one branch."
        elif not all(isinstance(k, str) and k for k in b):
            yield f"branch names must be non-empty strings, but got {list(b)!r}."

    def _fields(self) -> dict[str, Any]:
        return {"branches": {k: to_jsonable(v) for k, v in self.branches.items()}}

    @classmethod
    def _from_fields(cls, fields: dict[str, Any]) -> Choice:
        return cls({k: from_jsonable(v) for k, v in fields["branches"].items()}, name=fields.get("name"))

    def to_optuna(self) -> optuna.distributions.CategoricalDistribution:
        from optuna.distributions import CategoricalDistribution

        return CategoricalDistribution(list(self.branches))

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> str:
        return trial.suggest_categorical(name, list(self.branches))

    def contains(self, value: Any) -> bool:
        return value in self.branches

    def __repr__(self) -> str:
        name = f", name={self.name!r}" if self.name else ""
        return f"hp.choice({self.branches!r}{name})"
