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

from reproai.errors import ConfigError

__all__ = [
    "Component",
    "target_and_kwargs",
    "create",
    "Entry",
    "Registry",
    "REGISTRIES",
    "CONFIG_MODULE",
    "register",
    "registry",
    "import_object",
    "import_path",
    "check_arguments",
    "accepts",
    "describe",
]

# The module name under which the loader executes a config file: what a config defines has it as __module__.
CONFIG_MODULE = "reproai_config"
# How a class or function defined in the config file itself is recorded (the logged copy defines it again).
CONFIG_PREFIX = "<config>"

F = TypeVar("F")


class Component:
    """A class or function to call, and its keyword arguments.

    ``target`` is a registered name (``"SGD"``, ``"cosine"``, ``"cross_entropy"``), an import path
    (``"package.module:attr"``) or the class or function itself. Keyword arguments may hold search
    spaces; their parameters are named by their path in the config (``...optimizer.momentum``)::

        Component("SGD", momentum=hp.float(0.5, 0.99), nesterov=True)

    Which registry resolves ``target`` depends on the field the component stands in (a phase's
    ``optimizer``, the training's ``loss``, ...); see :mod:`reproai.registry`.
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


def _registry(kind: str, **kwargs: Any) -> Registry:
    REGISTRIES[kind] = Registry(kind, **kwargs)
    return REGISTRIES[kind]


def registry(kind: str) -> Registry:
    """The registry of one kind of component: ``"dataset"``, ``"model"``, ``"loss"``, ``"optimizer"``,
    ``"lr_scheduler"``, ``"augmentation"``, ``"sampler"``, ``"pruner"``, ``"metric"``."""
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

# The config dataclasses, by class name, for rebuilding a config tree from its JSON form.
CONFIG_CLASSES = _registry("config")

DATASETS = _registry("dataset")
DATASETS.register("digits", "reproai.data._datasets:digits", builtin=True)
DATASETS.register("image_folder", "reproai.data._datasets:image_folder", builtin=True)
DATASETS.register("oxford_pets", "reproai.data._datasets:oxford_pets", builtin=True)
DATASETS.register("table", "reproai.data._table:table", builtin=True)

# Model factories: called with num_classes=... and their keyword arguments, they return an nn.Module.
MODELS = _registry("model", where="a function or class of your own, given itself or as 'package.module:attr'")

# Backbones of the built-in classifier (Model(backbone=...)); any other name is a timm model.
BACKBONES = _registry("backbone", where="a timm model name (timm.list_models())")
BACKBONES.register(
    "small_cnn", "reproai.models._backbones:SmallCNN", image_size=None, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)
)

LOSSES = _registry(
    "loss", fallback_modules=("torch.nn",), fallback_base="torch.nn:Module", where="a loss class in torch.nn"
)
LOSSES.register("cross_entropy", "reproai.training._losses:CrossEntropy")

OPTIMIZERS = _registry(
    "optimizer",
    fallback_modules=("torch.optim",),
    fallback_base="torch.optim:Optimizer",
    where="any optimizer class in torch.optim (e.g. 'SGD', 'AdamW', 'RMSprop')",
)
OPTIMIZERS.register("adamw", "torch.optim:AdamW")
OPTIMIZERS.register("adam", "torch.optim:Adam")
OPTIMIZERS.register("sgd", "torch.optim:SGD", defaults={"momentum": 0.9})

LR_SCHEDULERS = _registry(
    "lr_scheduler",
    fallback_modules=("torch.optim.lr_scheduler",),
    fallback_base="torch.optim.lr_scheduler:LRScheduler",
    where="any scheduler class in torch.optim.lr_scheduler (e.g. 'OneCycleLR', 'StepLR')",
)
LR_SCHEDULERS.register("cosine", "reproai.training._optim:cosine", interval="epoch")
LR_SCHEDULERS.register("linear_warmup", "reproai.training._optim:linear_warmup", interval="step")
LR_SCHEDULERS.register("warmup_cosine", "reproai.training._optim:warmup_cosine", interval="step")

AUGMENTATIONS = _registry(
    "augmentation",
    fallback_modules=("torchvision.transforms.v2",),
    where="a transform class in torchvision.transforms.v2 (e.g. 'RandAugment', 'ColorJitter')",
)
for _name in ("flip", "autoaugment", "randaugment", "trivialaugment"):
    AUGMENTATIONS.register(_name, f"reproai.training._augment:{_name}", factory=True)

SAMPLERS = _registry(
    "sampler",
    fallback_modules=("optuna.samplers",),
    fallback_base="optuna.samplers:BaseSampler",
    where="any sampler class in optuna.samplers (e.g. 'CmaEsSampler')",
)
SAMPLERS.register("tpe", "reproai.runtime._storage:tpe_sampler")
SAMPLERS.register("random", "optuna.samplers:RandomSampler")
SAMPLERS.register("grid", "reproai.runtime._storage:grid_sampler")

PRUNERS = _registry(
    "pruner",
    fallback_modules=("optuna.pruners",),
    fallback_base="optuna.pruners:BasePruner",
    where="any pruner class in optuna.pruners (e.g. 'PercentilePruner')",
)
PRUNERS.register("none", "optuna.pruners:NopPruner")
PRUNERS.register("median", "optuna.pruners:MedianPruner", defaults={"n_startup_trials": 2, "n_warmup_steps": 1})
PRUNERS.register("successive_halving", "optuna.pruners:SuccessiveHalvingPruner", defaults={"min_resource": 1})
PRUNERS.register("hyperband", "reproai.runtime._storage:hyperband_pruner")

METRICS = _registry("metric")
# name, whether greater is better, the range of its values (confidence intervals stay inside it)
for _name, _greater, _bounds in [
    ("roc_auc", True, (0.0, 1.0)),
    ("average_precision", True, (0.0, 1.0)),
    ("accuracy", True, (0.0, 1.0)),
    ("balanced_accuracy", True, (0.0, 1.0)),
    ("f1", True, (0.0, 1.0)),
    ("precision", True, (0.0, 1.0)),
    ("recall", True, (0.0, 1.0)),
    ("log_loss", False, (0.0, float("inf"))),
    ("brier", False, (0.0, 1.0)),
]:
    METRICS.register(_name, f"reproai.evaluation._metrics:{_name}", greater_is_better=_greater, bounds=_bounds)


# -- arguments ---------------------------------------------------------------------------------------------


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
