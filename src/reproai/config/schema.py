"""The typed config tree: an :class:`Experiment` and the parts it is made of.

Any field may hold a search-space object instead of a value. Rules on fields live in their
``metadata`` and are applied by :func:`reproai.config.validate`, which knows each field's path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reproai.config import checks as c
from reproai.config.tree import register_config_class

__all__ = ["Experiment", "Data", "Model", "Head", "Phase", "Training", "CrossValidation", "Search"]


_REQUIRED = object()


def _f(default: Any = None, *, check: c.Check | None = None, hash: bool = True, factory: Any = None) -> Any:
    meta = {"check": check, "hash": hash}
    if default is _REQUIRED:
        return field(metadata=meta)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@register_config_class
@dataclass
class Data:
    """Where the examples come from. Use the constructors: ``Data.oxford_pets(...)`` and friends."""

    kind: str = _f("digits", check=c.non_empty_str)
    root: str | None = _f(None, check=c.optional_str, hash=False)
    target: str | None = _f(None, check=c.optional_str)
    download: bool = _f(False, check=c.is_bool, hash=False)
    on_error: str = _f("raise", check=c.one_of("raise", "skip"))
    limit: int | None = _f(None, check=c.int_at_least(2, optional=True))
    cache_dir: str | None = _f(None, check=c.optional_str, hash=False)
    unannotated: str = _f("infer", check=c.one_of("infer", "skip"))
    # Identical files: "drop" keeps one of each group (none where their labels disagree), with a warning.
    duplicates: str = _f("drop", check=c.one_of("drop", "error", "keep"))

    @classmethod
    def oxford_pets(cls, root: str = "data", *, target: str = "species", download: bool = True, **kwargs: Any) -> Data:
        """The Oxford-IIIT Pet dataset: ``target="species"`` (cat vs dog) or ``"breed"`` (37 classes).

        Images with no annotation line are labelled from their file names (``unannotated="infer"``,
        the dataset's convention: ``Breed_12.jpg``, a capitalised breed is a cat) or left out (``"skip"``).
        """
        return cls(kind="oxford_pets", root=root, target=target, download=download, **kwargs)

    @classmethod
    def image_folder(cls, root: str, **kwargs: Any) -> Data:
        """Images in one sub-folder per class under ``root``."""
        return cls(kind="image_folder", root=root, **kwargs)

    @classmethod
    def digits(cls, **kwargs: Any) -> Data:
        """The 8x8 handwritten digits that ship with scikit-learn (10 classes, offline)."""
        return cls(kind="digits", **kwargs)


@register_config_class
@dataclass
class Head:
    """The classifier on top of the backbone: an optional hidden layer, then the output layer."""

    hidden: int | None = _f(None, check=c.int_at_least(0, optional=True))
    dropout: float = _f(0.0, check=c.real_in(0.0, 1.0, high_open=True))


@register_config_class
@dataclass
class Model:
    """A backbone by name (timm, or ``small_cnn``) with a new :class:`Head`.

    ``pretrained``: True for the library's weights, a path to a local state dict, or False.
    """

    backbone: str = _f("efficientnet_lite0", check=c.non_empty_str)
    pretrained: bool | str = _f(True)
    head: Head = _f(factory=Head)
    image_size: int | None = _f(None, check=c.int_at_least(8, optional=True))


@register_config_class
@dataclass
class Phase:
    """One stage of training, e.g. a warm-up with a frozen backbone, then full fine-tuning."""

    name: str = _f("train", check=c.non_empty_str)
    epochs: int = _f(10, check=c.int_at_least(1))
    lr: float = _f(1e-3, check=c.real_in(0.0, low_open=True))
    weight_decay: float = _f(0.0, check=c.real_in(0.0))
    freeze_backbone: bool = _f(False, check=c.is_bool)
    early_stopping_patience: int | None = _f(None, check=c.int_at_least(1, optional=True))
    optimizer: str = _f("adamw", check=c.one_of("adamw", "adam", "sgd"))
    momentum: float = _f(0.9, check=c.real_in(0.0, 1.0, high_open=True))
    scheduler: str | None = _f("cosine", check=c.one_of(None, "cosine"))


@register_config_class
@dataclass
class Training:
    """How each fit is trained: batch size, augmentation and the phases in order.

    ``precision="auto"`` trains in bf16 mixed precision on a GPU that supports it (fp16 with loss
    scaling on one that does not) and in fp32 on a CPU; ``channels_last="auto"`` (or True) uses that
    memory layout, faster for convolutions on GPUs and CPUs alike. ``feature_cache`` trains a
    frozen-backbone phase without augmentation on cached backbone features. ``log_every_n_steps`` adds
    an asynchronously logged per-step training loss.
    ``deterministic=True`` makes PyTorch use deterministic algorithms (needed for identical results on
    a GPU; on a CPU they are identical anyway), and says so in the runs' tags.
    """

    batch_size: int = _f(32, check=c.int_at_least(1))
    phases: list[Phase] = _f(factory=lambda: [Phase()])
    augment: str | None = _f(None, check=c.one_of(None, "flip", "autoaugment", "randaugment", "trivialaugment"))
    eval_batch_size: int | None = _f(None, check=c.int_at_least(1, optional=True))
    device: str = _f("auto", check=c.non_empty_str, hash=False)
    precision: str = _f("auto", check=c.one_of("auto", "fp32", "bf16", "fp16"))
    channels_last: bool | str = _f("auto", check=c.one_of("auto", True, False), hash=False)
    compile: bool = _f(False, check=c.is_bool, hash=False)
    feature_cache: bool = _f(True, check=c.is_bool, hash=False)
    log_every_n_steps: int | None = _f(None, check=c.int_at_least(1, optional=True), hash=False)
    deterministic: bool = _f(False, check=c.is_bool, hash=False)


@register_config_class
@dataclass
class CrossValidation:
    """Outer folds hold out test data; inner folds split the rest into train and dev.

    ``outer_folds=1`` holds out ``test_size`` of the data once; ``inner_folds=1`` holds out
    ``dev_size`` of the outer-train data once. ``seed`` defaults to the experiment's seed.
    ``splits_file`` replaces the computed outer split by given test sets: a text file with one test id
    per line (its first word, with or without the extension, as in Oxford-IIIT Pet's ``test.txt``),
    or JSON ``{"outer": [{"test": [ids]}, ...]}``.
    """

    outer_folds: int = _f(1, check=c.int_at_least(1))
    inner_folds: int = _f(1, check=c.int_at_least(1))
    repeats: int = _f(1, check=c.int_at_least(1))
    test_size: float = _f(0.2, check=c.real_in(0.0, 1.0, low_open=True, high_open=True))
    dev_size: float = _f(0.2, check=c.real_in(0.0, 1.0, low_open=True, high_open=True))
    seed: int | None = _f(None, check=c.int_at_least(0, optional=True))
    splits_file: str | None = _f(None, check=c.optional_str)


@register_config_class
@dataclass
class Search:
    """The hyperparameter search run inside each outer fold, and the metric it optimises.

    ``metric`` also drives early stopping; ``direction`` defaults to the metric's own.
    """

    n_trials: int = _f(20, check=c.int_at_least(1))
    timeout: float | None = _f(None, check=c.real_in(0.0, low_open=True, optional=True))
    metric: str = _f("roc_auc", check=c.non_empty_str)
    direction: str | None = _f(None, check=c.one_of(None, "maximize", "minimize"))
    sampler: str = _f("tpe", check=c.one_of("tpe", "random", "grid"))
    pruner: str = _f("median", check=c.one_of("none", "median", "successive_halving", "hyperband"))


@register_config_class
@dataclass
class Experiment:
    """A whole experiment: data, model, training, cross-validation, search and the root seed."""

    name: str = _f(_REQUIRED, check=c.non_empty_str)
    data: Data = _f(factory=Data)
    model: Model = _f(factory=Model)
    training: Training = _f(factory=Training)
    cv: CrossValidation = _f(factory=CrossValidation)
    search: Search = _f(factory=Search)
    seed: int = _f(0, check=c.int_at_least(0))
