"""Models: backbones (timm, or registered ones) and the network a fit trains (a backbone and a head, or
one's own model)."""

from reproai.models._backbones import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    BackboneInfo,
    SmallCNN,
    backbone_info,
    create_backbone,
    load_backbone_weights,
    register_backbone,
)
from reproai.models._network import (
    Classifier,
    ModelParts,
    check_model,
    create_model,
    enable_grad_checkpointing,
    model_parts,
    set_backbone_frozen,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BackboneInfo",
    "Classifier",
    "ModelParts",
    "SmallCNN",
    "backbone_info",
    "check_model",
    "create_backbone",
    "create_model",
    "enable_grad_checkpointing",
    "load_backbone_weights",
    "model_parts",
    "register_backbone",
    "set_backbone_frozen",
]
