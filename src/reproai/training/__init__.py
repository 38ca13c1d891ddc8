"""Training one fit: phases with early stopping, batches from the image cache or from cached features,
losses, optimizers and LR schedules, augmentation, compilation, seeding and peak memory."""

from reproai.training._augment import make_augment
from reproai.training._batching import FeatureBatches, ImageBatches
from reproai.training._features import backbone_features, clear_feature_cache
from reproai.training._fit import FitResult, Predictions, fit, resolve_device, resolve_precision, steps_per_epoch
from reproai.training._losses import CrossEntropy, balanced_class_weight, make_loss
from reproai.training._optim import make_optimizer, make_schedule
from reproai.training._seeding import configure_determinism, derive_seed, seed_everything

__all__ = [
    "fit",
    "FitResult",
    "Predictions",
    "resolve_device",
    "resolve_precision",
    "steps_per_epoch",
    "ImageBatches",
    "FeatureBatches",
    "backbone_features",
    "clear_feature_cache",
    "make_loss",
    "CrossEntropy",
    "balanced_class_weight",
    "make_optimizer",
    "make_schedule",
    "make_augment",
    "derive_seed",
    "seed_everything",
    "configure_determinism",
]
