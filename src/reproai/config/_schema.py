"""The typed config tree: an :class:`Experiment` and the parts it is made of.

Any field may hold a search-space object instead of a value, and a conditional ``hp.choice`` wherever
each of its branches is a valid value for the field. Rules on fields live in their ``metadata`` and are
applied by :func:`reproai.config.validate`, which knows each field's path: ``check`` (a rule on plain
values), ``node`` (the config class the field holds; ``many=True``: a non-empty list of them),
``component`` (the registry that names the field's component; see :mod:`reproai.config._registry`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from reproai.config import _checks as c
from reproai.config._registry import register
from reproai.config._space import config_site

__all__ = ["Experiment", "Data", "Intensity", "Model", "Head", "Phase", "Training", "CrossValidation", "Search"]


_REQUIRED = object()


class _Located:
    """A config class whose instances remember the config file's line that made them (for errors)."""

    def __post_init__(self) -> None:
        self._site = config_site()


def _f(
    default: Any = None,
    *,
    check: c.Check | None = None,
    hash: bool = True,
    factory: Any = None,
    node: type | None = None,
    component: str | None = None,
    many: bool = False,
    optional: bool = False,
) -> Any:
    meta = {"check": check, "hash": hash, "node": node, "component": component, "many": many, "optional": optional}
    if default is _REQUIRED:
        return field(metadata=meta)
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


@register("config")
@dataclass
class Intensity(_Located):
    """How an image with more than 8 bits per sample (a 16-bit PNG or TIFF, a DICOM file) becomes the
    8-bit grayscale image the network sees: a window ``[low, high]`` of its values is mapped linearly onto
    0-255, values outside it are clipped. 8-bit and colour images are used as they are.

    ``kind``:

    - ``"auto"`` (default): a DICOM file's own window (its VOI LUT, else its first Window Center and
      Width, as a viewer shows it), else the ``"percentile"`` window;
    - ``"window"``: the fixed window ``center`` +/- ``width`` / 2, in the image's units (for DICOM, after
      the Modality LUT: Hounsfield units in CT), where absolute values mean something;
    - ``"percentile"``: per image, from its ``percentiles[0]``-th to its ``percentiles[1]``-th percentile
      (0.5 and 99.5: a few hot pixels do not set the scale);
    - ``"max"``: per image, from 0 to its maximum (what reproai did before; one hot pixel crushes the
      image's signal into a few grey levels). Kept to rerun older studies.

    MONOCHROME1 DICOM images (bright means low values) are inverted after the window, as viewers show them.
    Any field can be a search space: the window is a hyperparameter that matters.
    """

    kind: str = _f("auto", check=c.one_of("auto", "window", "percentile", "max"))
    center: float | None = _f(None, check=c.real_in(-math.inf, optional=True))
    width: float | None = _f(None, check=c.real_in(0.0, low_open=True, optional=True))
    percentiles: tuple[float, float] = _f((0.5, 99.5), check=c.percentile_pair)

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.percentiles, list):  # as JSON gives it back
            self.percentiles = tuple(self.percentiles)

    @classmethod
    def window(
        cls,
        center: float | None = None,
        width: float | None = None,
        *,
        low: float | None = None,
        high: float | None = None,
    ) -> Intensity:
        """A fixed window, by ``center`` and ``width`` or by ``low`` and ``high``, in the image's units
        (e.g. ``Intensity.window(40, 400)``: a CT soft-tissue window, -160 to 240 HU)."""
        if low is not None or high is not None:
            if center is not None or width is not None:
                raise TypeError("Intensity.window takes center and width, or low and high, not both")
            if not all(isinstance(v, (int, float)) for v in (low, high)):
                raise TypeError(
                    "Intensity.window(low=, high=) takes two numbers; to search a window, give "
                    "center= and width= as search spaces"
                )
            assert low is not None and high is not None
            center, width = (low + high) / 2.0, high - low
        return cls(kind="window", center=center, width=width)

    @classmethod
    def percentile(cls, low: float = 0.5, high: float = 99.5) -> Intensity:
        """Per image, the window from its ``low``-th to its ``high``-th percentile."""
        return cls(kind="percentile", percentiles=(low, high))


@register("config")
@dataclass
class Data(_Located):
    """Where the examples come from. Use the constructors: ``Data.oxford_pets(...)`` and friends.

    ``kind``: a built-in kind (``"digits"``, ``"image_folder"``, ``"oxford_pets"``), or your own dataset:
    a function or class (given itself, by import path ``"package.module:attr"``, by a name registered
    with ``reproai.register("dataset", name)``, or as a :class:`~reproai.Component`) called with
    ``kwargs``, that returns a :class:`reproai.data.Source` or a map-style torch ``Dataset`` of
    ``(image, label)`` pairs (see :func:`Data.from_factory`).

    ``group``: a table's group column, or ``"dicom:<keyword>"`` (``"dicom:PatientID"``) for each file's
    DICOM attribute, in a table or an image folder. ``intensity``: how images with more than 8 bits per
    sample (16-bit PNG or TIFF, DICOM) become 8 bits (:class:`Intensity`).
    """

    kind: Any = _f("digits", component="dataset")
    kwargs: dict[str, Any] = _f(factory=dict)
    # A table manifest (kind="table"): the file (or a DataFrame) and the names of its columns.
    manifest: Any = _f(None, hash=False)
    image: str = _f("path", check=c.non_empty_str)
    label: str = _f("label", check=c.non_empty_str)
    group: str | None = _f(None, check=c.optional_str)
    # Groups from file names (image_folder, oxford_pets): the first capture group of this regular expression.
    group_pattern: str | None = _f(None, check=c.optional_str)
    root: str | None = _f(None, check=c.optional_str, hash=False)
    target: str | None = _f(None, check=c.optional_str)
    download: bool = _f(False, check=c.is_bool, hash=False)
    on_error: str = _f("raise", check=c.one_of("raise", "skip"))
    limit: int | None = _f(None, check=c.int_at_least(2, optional=True))
    cache_dir: str | None = _f(None, check=c.optional_str, hash=False)
    unannotated: str = _f("infer", check=c.one_of("infer", "skip"))
    # Identical files: "drop" keeps one of each group (none where their labels disagree), with a warning.
    duplicates: str = _f("drop", check=c.one_of("drop", "error", "keep"))
    intensity: Intensity = _f(factory=Intensity, node=Intensity)

    @classmethod
    def oxford_pets(cls, root: str = "data", *, target: str = "species", download: bool = True, **kwargs: Any) -> Data:
        """The Oxford-IIIT Pet dataset: ``target="species"`` (cat vs dog) or ``"breed"`` (37 classes).

        Images with no annotation line are labelled from their file names (``unannotated="infer"``,
        the dataset's convention: ``Breed_12.jpg``, a capitalised breed is a cat) or left out (``"skip"``).
        """
        return cls(kind="oxford_pets", root=root, target=target, download=download, **kwargs)

    @classmethod
    def image_folder(cls, root: str, **kwargs: Any) -> Data:
        r"""Images in one sub-folder per class under ``root``; ``group_pattern=r"^(patient\d+)_"`` takes
        each image's group from its file name."""
        return cls(kind="image_folder", root=root, **kwargs)

    @classmethod
    def table(
        cls,
        path: Any,
        *,
        image: str = "path",
        label: str = "label",
        group: str | None = None,
        root: str | None = None,
        **kwargs: Any,
    ) -> Data:
        """A table with one row per image: a CSV, TSV or Parquet file (read by its extension), or a pandas
        DataFrame. ``image``, ``label`` and ``group`` name its columns; relative image paths resolve
        against ``root`` (default: the table's folder). Labels may be text or integers (classes are the
        sorted values); each example's id is its path as written. With a ``group`` column (a patient,
        subject, lesion or site), every split keeps each group on one side; ``group="dicom:PatientID"``
        reads each file's DICOM attribute instead."""
        return cls(kind="table", manifest=path, image=image, label=label, group=group, root=root, **kwargs)

    @classmethod
    def from_factory(cls, factory: Any, /, *, kwargs: dict[str, Any] | None = None, **fields: Any) -> Data:
        """Your own dataset: ``factory(**kwargs)`` returns a :class:`reproai.data.Source`, or a map-style
        torch ``Dataset`` whose items are ``(image, label)`` (the image a PIL image, an HWC uint8 array or
        a CHW tensor; the label a class index), with optional ``classes`` and ``ids`` attributes. Either
        goes through the same decoding cache, splits, leakage check and fingerprint as the built-in kinds.
        """
        return cls(kind=factory, kwargs=dict(kwargs or {}), **fields)

    @classmethod
    def digits(cls, **kwargs: Any) -> Data:
        """The 8x8 handwritten digits that ship with scikit-learn (10 classes, offline)."""
        return cls(kind="digits", **kwargs)


@register("config")
@dataclass
class Head(_Located):
    """The classifier on top of the backbone: an optional hidden layer, then the output layer."""

    hidden: int | None = _f(None, check=c.int_at_least(0, optional=True))
    dropout: float = _f(0.0, check=c.real_in(0.0, 1.0, high_open=True))


@register("config")
@dataclass
class Model(_Located):
    """The network: reproai's classifier (a backbone by name, timm's or ``small_cnn``, with a new
    :class:`Head`), or your own.

    ``pretrained``: True for the library's weights, a path to a local state dict, or False.
    ``factory``: your own model instead, a function or class (given itself, by import path, by a name
    registered with ``reproai.register("model", name)``, or as a :class:`~reproai.Component`) called as
    ``factory(num_classes=k, **kwargs)``; it returns an ``nn.Module`` mapping images ``(n, 3, h, w)`` to
    logits ``(n, k)``, or ``(n, 1)`` (or ``(n, 2)``) for two classes. ``backbone``, ``pretrained`` and
    ``head`` then do not apply. For phases with ``freeze_backbone=True`` the model declares its backbone
    by having ``backbone`` and ``head`` sub-modules with ``forward(x) == head(backbone(x))`` (a timm
    model's ``forward_features`` / ``forward_head`` work too). ``image_size``: the input size (default:
    the backbone's, or the data's own size); inputs are normalised with ImageNet's mean and std unless
    the backbone says otherwise.
    """

    backbone: str = _f("efficientnet_lite0", check=c.non_empty_str)
    pretrained: bool | str = _f(True)
    head: Head = _f(factory=Head, node=Head)
    image_size: int | None = _f(None, check=c.int_at_least(8, optional=True))
    factory: Any = _f(None, component="model", optional=True)
    kwargs: dict[str, Any] = _f(factory=dict)


@register("config")
@dataclass
class Phase(_Located):
    """One stage of training, e.g. a warm-up with a frozen backbone, then full fine-tuning.

    ``optimizer``: ``"adamw"``, ``"adam"``, ``"sgd"`` (momentum 0.9), any ``torch.optim`` optimizer by
    class name, or a :class:`~reproai.Component` with its keyword arguments
    (``Component("SGD", momentum=0.9, nesterov=True)``); it always gets the phase's ``lr`` and
    ``weight_decay`` (and ``momentum``, when set). ``scheduler``: ``"cosine"`` (per epoch, to 0 at the
    phase's end), ``"linear_warmup"`` / ``"warmup_cosine"`` (per batch), any
    ``torch.optim.lr_scheduler`` class by name, a Component, or None. reproai fills in ``T_max``,
    ``total_steps``, ``epochs``, ``steps_per_epoch`` and ``max_lr`` (the phase's lr) when the scheduler
    takes them and the config does not give them. It steps after every batch or every epoch as
    ``scheduler_interval`` says (default: the scheduler's own rule; ``OneCycleLR`` and ``CyclicLR`` per
    batch, others per epoch).
    """

    name: str = _f("train", check=c.non_empty_str)
    epochs: int = _f(10, check=c.int_at_least(1))
    lr: float = _f(1e-3, check=c.real_in(0.0, low_open=True))
    weight_decay: float = _f(0.0, check=c.real_in(0.0))
    freeze_backbone: bool = _f(False, check=c.is_bool)
    early_stopping_patience: int | None = _f(None, check=c.int_at_least(1, optional=True))
    optimizer: Any = _f("adamw", component="optimizer")
    momentum: float | None = _f(None, check=c.real_in(0.0, 1.0, high_open=True, optional=True))
    scheduler: Any = _f("cosine", component="lr_scheduler", optional=True)
    scheduler_interval: str | None = _f(None, check=c.one_of(None, "epoch", "step"))


@register("config")
@dataclass
class Training(_Located):
    """How each fit is trained: batch size, loss, augmentation and the phases in order.

    ``loss``: ``"cross_entropy"`` (binary cross-entropy for one logit), optionally as
    ``Component("cross_entropy", class_weight="balanced", label_smoothing=0.1)`` (the balanced weights
    come from each fit's own training labels), or your own: a class (instantiated with its keyword
    arguments, and ``num_classes`` / ``train_labels`` when it takes them) or a function
    ``(logits, targets) -> loss``. ``augment``: ``"flip"``, ``"autoaugment"``, ``"randaugment"``,
    ``"trivialaugment"`` (each with a random flip), a torchvision transform as a Component, or a list
    of these.

    ``precision="auto"`` trains in bf16 mixed precision on a GPU that supports it (fp16 with loss
    scaling on one that does not) and in fp32 on a CPU; ``channels_last="auto"`` (or True) uses that
    memory layout, faster for convolutions on GPUs and CPUs alike. ``feature_cache`` trains a
    frozen-backbone phase without augmentation on cached backbone features. ``log_every_n_steps`` adds
    an asynchronously logged per-step training loss.
    ``deterministic=True`` makes PyTorch use deterministic algorithms (needed for identical results on
    a GPU; on a CPU they are identical anyway), and says so in the runs' tags. ``compile=True`` runs the
    network through ``torch.compile`` (a string names its backend, default inductor), compiled once per
    architecture and process and reused by every fit (see docs/models.md).
    ``grad_checkpointing=True`` recomputes activations in the backward pass instead of keeping them:
    less memory, more compute (see :func:`reproai.models.enable_grad_checkpointing`).
    """

    batch_size: int = _f(32, check=c.int_at_least(1))
    phases: list[Phase] = _f(factory=lambda: [Phase()], node=Phase, many=True)
    loss: Any = _f("cross_entropy", component="loss")
    augment: Any = _f(None, component="augmentation", optional=True, many=True)
    eval_batch_size: int | None = _f(None, check=c.int_at_least(1, optional=True))
    device: str = _f("auto", check=c.non_empty_str, hash=False)
    precision: str = _f("auto", check=c.one_of("auto", "fp32", "bf16", "fp16"))
    channels_last: bool | str = _f("auto", check=c.one_of("auto", True, False), hash=False)
    compile: bool | str = _f(False, check=c.bool_or_str, hash=False)
    grad_checkpointing: bool = _f(False, check=c.is_bool, hash=False)
    feature_cache: bool = _f(True, check=c.is_bool, hash=False)
    log_every_n_steps: int | None = _f(None, check=c.int_at_least(1, optional=True), hash=False)
    deterministic: bool = _f(False, check=c.is_bool, hash=False)


@register("config")
@dataclass
class CrossValidation(_Located):
    """Outer folds hold out test data; inner folds split the rest into train and dev.

    ``outer_folds=1`` holds out ``test_size`` of the data once; ``inner_folds=1`` holds out
    ``dev_size`` of the outer-train data once. ``seed`` defaults to the experiment's seed.
    ``splits_file`` replaces the computed outer split by given test sets: a text file with one test id
    per line (its first word, with or without the extension, as in Oxford-IIIT Pet's ``test.txt``),
    or JSON ``{"outer": [{"test": [ids]}, ...]}`` (``"test_groups"`` for groups).

    ``final_model``: after the outer folds, run the same procedure once more on all the data (the same
    search over inner folds of the whole set, then a refit on all of it) and log the result as an MLflow
    model, registered with the alias ``final``; with one outer fold, its refit is the final model and
    nothing is searched twice. ``log_refits``: also log each outer fold's refit as an MLflow model.
    """

    outer_folds: int = _f(1, check=c.int_at_least(1))
    inner_folds: int = _f(1, check=c.int_at_least(1))
    repeats: int = _f(1, check=c.int_at_least(1))
    test_size: float = _f(0.2, check=c.real_in(0.0, 1.0, low_open=True, high_open=True))
    dev_size: float = _f(0.2, check=c.real_in(0.0, 1.0, low_open=True, high_open=True))
    seed: int | None = _f(None, check=c.int_at_least(0, optional=True))
    splits_file: str | None = _f(None, check=c.optional_str)
    # What a study ends with besides its estimate; neither changes the estimate, so neither is in the hash.
    final_model: bool = _f(True, check=c.is_bool, hash=False)
    log_refits: bool = _f(False, check=c.is_bool, hash=False)


@register("config")
@dataclass
class Search(_Located):
    """The hyperparameter search run inside each outer fold, and the metric it optimises.

    ``metric`` also drives early stopping; ``direction`` defaults to the metric's own. ``sampler``:
    ``"tpe"``, ``"random"``, ``"grid"`` (every space categorical), any ``optuna.samplers`` class by name,
    or a Component; seeded from the experiment's seed when it takes a ``seed``. ``pruner``:
    ``"median"``, ``"successive_halving"``, ``"hyperband"``, ``"none"``, any ``optuna.pruners`` class, or
    a Component.
    """

    n_trials: int = _f(20, check=c.int_at_least(1))
    timeout: float | None = _f(None, check=c.real_in(0.0, low_open=True, optional=True))
    metric: str = _f("roc_auc", component="metric")
    direction: str | None = _f(None, check=c.one_of(None, "maximize", "minimize"))
    sampler: Any = _f("tpe", component="sampler")
    pruner: Any = _f("median", component="pruner")


@register("config")
@dataclass
class Experiment(_Located):
    """A whole experiment: data, model, training, cross-validation, search and the root seed."""

    name: str = _f(_REQUIRED, check=c.non_empty_str)
    data: Data = _f(factory=Data, node=Data)
    model: Model = _f(factory=Model, node=Model)
    training: Training = _f(factory=Training, node=Training)
    cv: CrossValidation = _f(factory=CrossValidation, node=CrossValidation)
    search: Search = _f(factory=Search, node=Search)
    seed: int = _f(0, check=c.int_at_least(0))
