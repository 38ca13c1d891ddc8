"""The network of a fit: reproai's classifier (a backbone and a new head) or a model of one's own, its
parts (which parameters are the backbone), freezing, and checks of its output.

Logits are ``(n, k)`` for ``k > 2`` classes and ``(n, 1)`` for two (the log-odds of class 1); a model
of one's own may give ``(n, 2)`` for two classes, which :func:`as_logits` turns into the one logit
``z1 - z0`` (then ``sigmoid`` of it is exactly ``softmax(z)[:, 1]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from reproai.config._registry import registry, target_and_kwargs
from reproai.config._schema import Head, Model, Phase
from reproai.config._targets import accepts, import_path
from reproai.errors import ConfigError
from reproai.models._backbones import create_backbone, recycle_backbone

__all__ = [
    "Classifier",
    "ModelParts",
    "create_model",
    "model_parts",
    "model_name",
    "set_backbone_frozen",
    "backbone_eval",
    "check_logits",
    "as_logits",
    "recycle_model",
    "check_model",
    "enable_grad_checkpointing",
    "CheckpointedSequential",
]


class Classifier(nn.Module):
    """A backbone that maps images to features, and a head that maps features to logits.

    Binary targets have one logit (trained with BCE), ``k > 2`` classes have ``k`` (cross-entropy).
    """

    def __init__(self, backbone: nn.Module, head: Head, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.num_classes = num_classes
        out = 1 if num_classes == 2 else num_classes
        # A plain attribute of timm's and registered backbones; nn.Module's stubs type any attribute they
        # do not know as what Module.__getattr__ finds (a parameter, buffer or submodule).
        num_features = backbone.num_features
        if isinstance(num_features, nn.Module):
            raise TypeError(f"The backbone's num_features is a module ({type(num_features).__name__}), not a number.")
        f = int(num_features)
        if head.hidden:
            layers = [
                nn.Dropout(head.dropout),
                nn.Linear(f, head.hidden),
                nn.ReLU(inplace=True),
                nn.Dropout(head.dropout),
                nn.Linear(head.hidden, out),
            ]
        else:
            layers = [nn.Dropout(head.dropout), nn.Linear(f, out)]
        self.head = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def model_name(spec: Model) -> str:
    """How errors name the model: the factory's import path, or the classifier's backbone."""
    if spec.factory is None:
        return f"the classifier on backbone {spec.backbone!r}"
    target, _ = target_and_kwargs(spec.factory)
    if isinstance(target, str):
        return repr(target)
    try:
        return repr(import_path(target))
    except ConfigError:
        return repr(target)


def _own_model(spec: Model, num_classes: int) -> nn.Module:
    target, kwargs = target_and_kwargs(spec.factory)
    factory = registry("model").entry(target).load()
    given = {"num_classes": num_classes} if accepts(factory, "num_classes", var_keyword=True) else {}
    model = factory(**{**kwargs, **spec.kwargs, **given})
    if not isinstance(model, nn.Module):
        raise ConfigError(
            f"model.factory {model_name(spec)} returned a {type(model).__name__}, not a torch.nn.Module; return "
            "the network."
        )
    return model


def create_model(spec: Model, num_classes: int) -> nn.Module:
    """A fresh network for ``num_classes`` classes, as ``spec`` describes (reproai's :class:`Classifier`,
    or ``spec.factory(num_classes=..., **spec.kwargs)``)."""
    if spec.factory is not None:
        return _own_model(spec, num_classes)
    return Classifier(create_backbone(spec), spec.head, num_classes)


@dataclass(frozen=True)
class ModelParts:
    """A network as backbone and head: the backbone's parameters and modules, images -> features, and
    the head (features -> logits)."""

    parameters: list[nn.Parameter]
    modules: list[nn.Module]
    features: Callable[[torch.Tensor], torch.Tensor]
    head: nn.Module


def model_parts(model: nn.Module) -> ModelParts | None:
    """The backbone and head of ``model``, when it declares them: ``backbone`` and ``head`` sub-modules
    with ``forward(x) == head(backbone(x))`` (reproai's classifier, and the documented way for a model of
    one's own), or timm's ``forward_features`` / ``forward_head(pre_logits=True)`` / ``get_classifier()``
    (everything but the classifier is the backbone). None otherwise."""
    backbone, head = getattr(model, "backbone", None), getattr(model, "head", None)
    if isinstance(backbone, nn.Module) and isinstance(head, nn.Module):
        return ModelParts(list(backbone.parameters()), list(backbone.modules()), backbone, head)
    if all(callable(getattr(model, a, None)) for a in ("forward_features", "forward_head", "get_classifier")):
        classifier = getattr(model, "get_classifier")()  # noqa: B009
        if isinstance(classifier, nn.Module):
            own = {id(p) for p in classifier.parameters()} | {id(m) for m in classifier.modules()}
            forward_features: Callable[..., torch.Tensor] = getattr(model, "forward_features")  # noqa: B009
            forward_head: Callable[..., torch.Tensor] = getattr(model, "forward_head")  # noqa: B009

            def features(x: torch.Tensor) -> torch.Tensor:
                return forward_head(forward_features(x), pre_logits=True)

            return ModelParts(
                [p for p in model.parameters() if id(p) not in own],
                [m for m in model.modules() if id(m) not in own],
                features,
                classifier,
            )
    return None


def set_backbone_frozen(model: nn.Module, frozen: bool) -> None:
    """Freeze (or unfreeze) the backbone's weights; a frozen backbone also keeps its BatchNorm
    statistics (see :func:`backbone_eval`).

    Raises:
        ConfigError: ``frozen`` but the model declares no backbone (see :func:`model_parts`).
    """
    parts = model_parts(model)
    if parts is None:
        if not frozen:
            return
        raise ConfigError(
            f"a phase freezes the backbone (freeze_backbone=True), but the model ({type(model).__name__}) declares no "
            "backbone: give it `backbone` and `head` sub-modules with forward(x) == head(backbone(x)), or set "
            "freeze_backbone=False."
        )
    for p in parts.parameters:
        p.requires_grad_(not frozen)


def backbone_eval(model: nn.Module) -> None:
    """Put the backbone in eval mode: a frozen backbone keeps its BatchNorm statistics and drops no units."""
    parts = model_parts(model)
    if parts is not None:
        for module in parts.modules:
            module.eval()


def check_logits(out: torch.Tensor, num_classes: int, spec: Model) -> None:
    """Raise :class:`ConfigError` unless ``out`` has the shape of logits for ``num_classes`` classes."""
    allowed = [1, 2] if num_classes == 2 else [num_classes]
    if out.ndim == 2 and out.shape[1] in allowed:
        return
    want = "(n, 1) or (n, 2)" if num_classes == 2 else f"(n, {num_classes})"
    where = "model.factory" if spec.factory is not None else "model"
    raise ConfigError(
        f"`{where}`: the model {model_name(spec)} returned outputs of shape {tuple(out.shape)} for a batch of "
        f"{len(out)} images, but {num_classes} classes need logits of shape {want}. Make its last layer output "
        f"{1 if num_classes == 2 else num_classes} value(s) per image (it is called with num_classes={num_classes})."
    )


def as_logits(out: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Logits in reproai's convention: two-class outputs ``(n, 2)`` become the one logit ``z1 - z0``."""
    if num_classes == 2 and out.ndim == 2 and out.shape[1] == 2:
        return (out[:, 1] - out[:, 0]).unsqueeze(1)
    return out


def check_model(model_spec: Model, phases: Sequence[Phase], num_classes: int, image_size: int) -> None:
    """Build the model once and check it before any work: a phase that freezes the backbone needs a
    model that declares one, and a batch of two images must give logits of the right shape.

    Raises:
        ConfigError: naming the field (``training.phases.<name>.freeze_backbone``, ``model.factory``).
    """
    with torch.random.fork_rng(devices=[]):  # building draws initial weights: leave the caller's generator alone
        model = create_model(model_spec, num_classes)
    frozen = [p.name for p in phases if p.freeze_backbone]
    if frozen and model_parts(model) is None:
        raise ConfigError(
            f"`training.phases.{frozen[0]}.freeze_backbone`: the phase freezes the backbone, but the model "
            f"{model_name(model_spec)} ({type(model).__name__}) declares no backbone. Give it `backbone` and `head` "
            "sub-modules with forward(x) == head(backbone(x)), or set freeze_backbone=False."
        )
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, image_size, image_size))
    if not isinstance(out, torch.Tensor):
        raise ConfigError(
            f"`model.factory`: the model {model_name(model_spec)} returned a {type(out).__name__}, not "
            "a tensor of logits."
        )
    check_logits(out, num_classes, model_spec)
    recycle_model(model, model_spec)


class CheckpointedSequential(nn.Sequential):
    """An ``nn.Sequential`` that, while training with gradients, keeps only its segments' inputs and
    recomputes the rest in the backward pass (``torch.utils.checkpoint.checkpoint_sequential``)."""

    segments: int = 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and torch.is_grad_enabled() and len(self) > 1:
            from torch.utils.checkpoint import checkpoint_sequential

            return checkpoint_sequential(self, min(self.segments, len(self)), x, use_reentrant=False)
        return super().forward(x)


def _checkpoint_sequentials(module: nn.Module) -> bool:
    """Make every plain ``nn.Sequential`` child of ``module`` (recursively, outermost first) checkpointed."""
    done = False
    for name, child in list(module.named_children()):
        if type(child) is nn.Sequential and len(child) > 1:
            module.register_module(name, CheckpointedSequential(*child))
            done = True
        else:
            done = _checkpoint_sequentials(child) or done
    return done


def enable_grad_checkpointing(model: nn.Module, spec: Model) -> None:
    """Trade compute for memory: recompute activations in the backward pass instead of keeping them
    (Chen et al., 2016, "Training deep nets with sublinear memory cost").

    timm's ``set_grad_checkpointing`` is used where the model or reproai's classifier's backbone has it;
    otherwise the model's plain ``nn.Sequential`` blocks are checkpointed with
    ``torch.utils.checkpoint``. The gradients are the same, up to float rounding.

    Raises:
        ConfigError: the model has neither (name it, and how to give it one).
    """
    for candidate in (model, getattr(model, "backbone", None)):
        setter = getattr(candidate, "set_grad_checkpointing", None)
        if callable(setter):
            setter(True)
            return
    if type(model) is nn.Sequential:
        raise ConfigError(
            f"`training.grad_checkpointing`: the model {model_name(spec)} is a bare nn.Sequential; wrap it in a "
            "module (or return CheckpointedSequential(...) from reproai.models) to checkpoint it."
        )
    if not _checkpoint_sequentials(model):
        raise ConfigError(
            f"`training.grad_checkpointing`: the model {model_name(spec)} ({type(model).__name__}) has no "
            "set_grad_checkpointing() and no nn.Sequential blocks to checkpoint; give it set_grad_checkpointing("
            "enable) (timm's convention), or set training.grad_checkpointing=False."
        )


def recycle_model(model: nn.Module, spec: Model) -> None:
    """Give a finished classifier's backbone to the next :func:`create_model` of ``spec`` (see
    :func:`reproai.models._backbones.recycle_backbone`); ``model`` must not be used again. Models of one's own
    are left alone."""
    if spec.factory is None and isinstance(model, Classifier) and recycle_backbone(model.backbone, spec):
        model.register_module("backbone", None)  # what ``model.backbone = None`` does, in the typed spelling
