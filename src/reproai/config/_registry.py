"""Components: what a config picks (datasets, models, losses, optimizers, LR schedulers, augmentations,
Optuna samplers and pruners, metrics), and the registries that name them.

A :class:`Component` in a config is a target and its keyword arguments. One :class:`Registry` type serves
every kind (timm's ``register_model`` / ``create_model`` pattern). A
config names a component by a registered name, by an import path (``"package.module:attr"``, the idea of
Hydra's ``_target_``), or gives the class or function itself. Built-in entries are listed here by import
path and imported on first use, so that config files load (and are validated) without importing PyTorch.

Users register their own with :func:`register`::

    @reproai.register("model", "tiny_net")
    def tiny_net(num_classes: int, width: int = 16) -> nn.Module: ...
"""

from __future__ import annotations

import difflib
import importlib
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from reproai.config._targets import accepts, import_object, import_path
from reproai.errors import ConfigError

__all__ = [
    "Component",
    "target_and_kwargs",
    "create",
    "Entry",
    "Registry",
    "REGISTRIES",
    "register",
    "registry",
    "describe",
]

F = TypeVar("F")


class Component:
    """A class or function to call, and its keyword arguments.

    ``target`` is a registered name (``"SGD"``, ``"cosine"``, ``"cross_entropy"``), an import path
    (``"package.module:attr"``) or the class or function itself. Keyword arguments may hold search
    spaces; their parameters are named by their path in the config (``...optimizer.momentum``)::

        Component("SGD", momentum=hp.float(0.5, 0.99), nesterov=True)

    Which registry resolves ``target`` depends on the field the component stands in (a phase's
    ``optimizer``, the training's ``loss``, ...); see :mod:`reproai.config._validate`.
    """

    def __init__(self, target: Any, /, **kwargs: Any) -> None:
        self.target = target
        self.kwargs: dict[str, Any] = kwargs

    def replace(self, kwargs: Mapping[str, Any]) -> Component:
        """The same target with other keyword arguments."""
        return Component(self.target, **kwargs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Component) and self.target == other.target and self.kwargs == other.kwargs

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        target = self.target if isinstance(self.target, str) else getattr(self.target, "__qualname__", self.target)
        args = "".join(f", {k}={v!r}" for k, v in self.kwargs.items())
        return f"Component({target!r}{args})"


def target_and_kwargs(value: Any) -> tuple[Any, dict[str, Any]]:
    """``(target, kwargs)`` of a component given as a :class:`Component`, or as a bare name or object."""
    if isinstance(value, Component):
        return value.target, dict(value.kwargs)
    return value, {}


@dataclass(frozen=True)
class Entry:
    """A registered (or imported) component: its name, the object or its import path, default keyword
    arguments, and facts about it (``meta``, e.g. a scheduler's ``interval``)."""

    name: str
    target: Any
    defaults: Mapping[str, Any] = field(default_factory=dict)
    meta: Mapping[str, Any] = field(default_factory=dict)

    def load(self) -> Any:
        """The class or function, imported on first use."""
        return import_object(self.target) if isinstance(self.target, str) else self.target


class Registry:
    """Names of one kind of component, and how to find the others (``fallback_modules``).

    ``fallback_modules``: modules searched by attribute name for a name that is not registered (any
    optimizer in ``torch.optim``, say); ``fallback_base``: the import path of a class such an attribute
    must subclass. ``where``: a hint on where to look, shown with unknown names.
    """

    def __init__(
        self, kind: str, *, fallback_modules: Sequence[str] = (), fallback_base: str | None = None, where: str = ""
    ) -> None:
        self.kind = kind
        self.fallback_modules = tuple(fallback_modules)
        self.fallback_base = fallback_base
        self.where = where
        self._entries: dict[str, Entry] = {}

    def register(
        self, name: str | None = None, target: Any = None, *, defaults: Mapping[str, Any] | None = None, **meta: Any
    ) -> Any:
        """Register ``target`` under ``name`` (default: its ``__name__``); without ``target``, a decorator.

        A later registration of the same name replaces the earlier one (a config re-imported by a rerun
        registers its components again).
        """
        if target is None:

            def decorator(obj: F) -> F:
                self.register(name, obj, defaults=defaults, **meta)
                return obj

            return decorator
        key = name or getattr(target, "__name__", None)
        if not isinstance(key, str) or not key:
            raise ConfigError(f"register({self.kind!r}, ...): give a name for {target!r}.")
        self._entries[key] = Entry(key, target, dict(defaults or {}), meta)
        return target

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def get(self, name: str) -> Entry:
        """The entry registered as ``name``; raises :class:`ConfigError` with close matches."""
        entry = self._entries.get(name)
        if entry is None:
            raise ConfigError(self._unknown(name, fallback=False))
        return entry

    def fallback_names(self) -> list[str]:
        """Names the fallback modules offer (imports them)."""
        names: list[str] = []
        base = import_object(self.fallback_base) if self.fallback_base else None
        for module_name in self.fallback_modules:
            module = importlib.import_module(module_name)
            for attr in dir(module):
                obj = getattr(module, attr)
                if attr.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
                    continue
                if base is not None and not (inspect.isclass(obj) and issubclass(obj, base) and obj is not base):
                    continue
                names.append(attr)
        return names

    def _fallback(self, name: str) -> Entry | None:
        if not name.isidentifier():
            return None
        base = import_object(self.fallback_base) if self.fallback_base else None
        for module_name in self.fallback_modules:
            obj = getattr(importlib.import_module(module_name), name, None)
            if obj is None:
                continue
            if base is not None and not (inspect.isclass(obj) and issubclass(obj, base)):
                continue
            return Entry(f"{module_name}:{name}", obj)
        return None

    def _unknown(self, name: str, *, fallback: bool = True) -> str:
        known = self.names() + (self.fallback_names() if fallback else [])
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        close += [k for k in known if k.lower() == name.lower() and k not in close]
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        where = f" or {self.where}" if self.where else ""
        return (
            f"unknown {self.kind} {name!r}.{hint} Use a registered name ({', '.join(self.names())}){where}, an import "
            f"path 'package.module:attr', or register your own with reproai.register({self.kind!r}, name)."
        )

    def entry(self, target: Any) -> Entry:
        """The entry a config value names: a registered name, a fallback module's attribute, an import path,
        or the class or function itself.

        Raises:
            ConfigError: an unknown name (with close matches), or an import path that does not import.
        """
        if not isinstance(target, str):
            if not callable(target):
                raise ConfigError(
                    f"a {self.kind} must be a name, an import path or a class or function, but got {target!r}."
                )
            return Entry(getattr(target, "__qualname__", repr(target)), target)
        if target in self._entries:
            return self._entries[target]
        if ":" in target:
            return Entry(target, import_object(target))
        found = self._fallback(target)
        if found is not None:
            return found
        if "." in target:
            return Entry(target, import_object(target))
        raise ConfigError(self._unknown(target))


REGISTRIES: dict[str, Registry] = {}


def registry(kind: str) -> Registry:
    """The registry of one kind of component: ``"dataset"``, ``"model"``, ``"backbone"``, ``"loss"``,
    ``"optimizer"``, ``"lr_scheduler"``, ``"augmentation"``, ``"sampler"``, ``"pruner"``, ``"metric"``, or
    ``"config"`` (the config classes by name). Raises :class:`ConfigError` for another kind."""
    try:
        return REGISTRIES[kind]
    except KeyError:
        raise ConfigError(f"unknown kind of component {kind!r}; the kinds are {sorted(REGISTRIES)}.") from None


def register(kind: str, name: str | None = None, target: Any = None, **meta: Any) -> Any:
    """Register a component of ``kind`` under ``name``; used as a decorator when ``target`` is omitted.

    ``kind`` is one of :data:`REGISTRIES`' keys. Registered names can then be used in config files; a
    module that registers components must be imported by the config file (so that a rerun registers
    them again).
    """
    return registry(kind).register(name, target, **meta)


# -- the built-in components, by import path (imported on first use) -------------------------------------

# kind: where a name that is not registered is looked up (modules searched by attribute name, the class such
# an attribute must subclass) and the hint shown with an unknown name.
_FALLBACKS: dict[str, tuple[tuple[str, ...], str | None, str]] = {
    "config": ((), None, ""),  # the config dataclasses by class name, for rebuilding a tree from its JSON form
    "dataset": ((), None, ""),
    "model": ((), None, "a function or class of your own, given itself or as 'package.module:attr'"),
    "backbone": ((), None, "a timm model name (timm.list_models())"),
    "loss": (("torch.nn",), "torch.nn:Module", "a loss class in torch.nn"),
    "optimizer": (
        ("torch.optim",),
        "torch.optim:Optimizer",
        "any optimizer class in torch.optim (e.g. 'SGD', 'AdamW', 'RMSprop')",
    ),
    "lr_scheduler": (
        ("torch.optim.lr_scheduler",),
        "torch.optim.lr_scheduler:LRScheduler",
        "any scheduler class in torch.optim.lr_scheduler (e.g. 'OneCycleLR', 'StepLR')",
    ),
    "augmentation": (
        ("torchvision.transforms.v2",),
        None,
        "a transform class in torchvision.transforms.v2 (e.g. 'RandAugment', 'ColorJitter')",
    ),
    "sampler": (
        ("optuna.samplers",),
        "optuna.samplers:BaseSampler",
        "any sampler class in optuna.samplers (e.g. 'CmaEsSampler')",
    ),
    "pruner": (
        ("optuna.pruners",),
        "optuna.pruners:BasePruner",
        "any pruner class in optuna.pruners (e.g. 'PercentilePruner')",
    ),
    "metric": ((), None, ""),
}
for _kind, (_modules, _base, _where) in _FALLBACKS.items():
    REGISTRIES[_kind] = Registry(_kind, fallback_modules=_modules, fallback_base=_base, where=_where)

_AUGMENTATIONS = ("flip", "autoaugment", "randaugment", "trivialaugment")
_METRIC_FACTS = [  # name, whether greater is better, the range of its values
    ("roc_auc", True, (0.0, 1.0)),
    ("average_precision", True, (0.0, 1.0)),
    ("accuracy", True, (0.0, 1.0)),
    ("balanced_accuracy", True, (0.0, 1.0)),
    ("f1", True, (0.0, 1.0)),
    ("precision", True, (0.0, 1.0)),
    ("recall", True, (0.0, 1.0)),
    ("log_loss", False, (0.0, float("inf"))),
    ("brier", False, (0.0, 1.0)),
]
# kind, name, import path, default keyword arguments, facts (meta)
_BUILTINS: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
    ("dataset", "digits", "reproai.data._datasets:digits", {}, {"builtin": True}),
    ("dataset", "image_folder", "reproai.data._datasets:image_folder", {}, {"builtin": True}),
    ("dataset", "oxford_pets", "reproai.data._datasets:oxford_pets", {}, {"builtin": True}),
    ("dataset", "table", "reproai.data._table:table", {}, {"builtin": True}),
    (
        "backbone",
        "small_cnn",
        "reproai.models._backbones:SmallCNN",
        {},
        {"image_size": None, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
    ),
    ("loss", "cross_entropy", "reproai.training._losses:CrossEntropy", {}, {}),
    ("optimizer", "adamw", "torch.optim:AdamW", {}, {}),
    ("optimizer", "adam", "torch.optim:Adam", {}, {}),
    ("optimizer", "sgd", "torch.optim:SGD", {"momentum": 0.9}, {}),
    ("lr_scheduler", "cosine", "reproai.training._optim:cosine", {}, {"interval": "epoch"}),
    ("lr_scheduler", "linear_warmup", "reproai.training._optim:linear_warmup", {}, {"interval": "step"}),
    ("lr_scheduler", "warmup_cosine", "reproai.training._optim:warmup_cosine", {}, {"interval": "step"}),
    *[("augmentation", n, f"reproai.training._augment:{n}", {}, {"factory": True}) for n in _AUGMENTATIONS],
    ("sampler", "tpe", "reproai.nested._sampling:tpe_sampler", {}, {}),
    ("sampler", "random", "optuna.samplers:RandomSampler", {}, {}),
    ("sampler", "grid", "reproai.nested._sampling:grid_sampler", {}, {}),
    ("pruner", "none", "optuna.pruners:NopPruner", {}, {}),
    ("pruner", "median", "optuna.pruners:MedianPruner", {"n_startup_trials": 2, "n_warmup_steps": 1}, {}),
    ("pruner", "successive_halving", "optuna.pruners:SuccessiveHalvingPruner", {"min_resource": 1}, {}),
    ("pruner", "hyperband", "reproai.nested._sampling:hyperband_pruner", {}, {}),
    # a metric's facts: whether greater is better, the range of its values (confidence intervals stay inside it)
    *[
        ("metric", n, f"reproai.evaluation._metrics:{n}", {}, {"greater_is_better": g, "bounds": b})
        for n, g, b in _METRIC_FACTS
    ],
]
for _kind, _name, _path, _defaults, _meta in _BUILTINS:
    REGISTRIES[_kind].register(_name, _path, defaults=_defaults, **_meta)


def create(
    kind: str,
    spec: Any,
    *args: Any,
    fill: Mapping[str, Callable[[], Any]] | None = None,
    **given: Any,
) -> Any:
    """Build the component ``spec`` of ``kind`` (a name, an import path, an object, or a Component):
    ``target(*args, **defaults, **kwargs, **given)``, plus each ``fill`` value its signature names and
    the config did not give (computed only then: e.g. a scheduler's ``total_steps``)."""
    target, kwargs = target_and_kwargs(spec)
    entry = registry(kind).entry(target)
    obj = entry.load()
    call = {**entry.defaults, **kwargs, **given}
    for name, value in (fill or {}).items():
        if name not in call and accepts(obj, name):
            call[name] = value()
    return obj(*args, **call)


def describe(value: Any) -> str:
    """A short label of a component for run parameters: its name, or its recorded name and arguments."""
    if value is None or isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(describe(v) for v in value) + "]"
    target, kwargs = target_and_kwargs(value)
    try:
        name = target if isinstance(target, str) else import_path(target)
    except ConfigError:
        name = repr(target)
    args = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
    return f"{name}({args})" if isinstance(value, Component) else name
