"""Training one fit: phases with early stopping, batches from the image cache or from cached features,
losses, optimizers and LR schedules, augmentation, compilation, seeding and peak memory."""

from reproai.training._arguments import FitHooks, FitOptions, Subsets
from reproai.training._augment import make_augment
from reproai.training._batching import FeatureBatches, ImageBatches
from reproai.training._features import backbone_features, clear_feature_cache
from reproai.training._fit import fit
from reproai.training._losses import CrossEntropy, balanced_class_weight, make_loss
from reproai.training._optim import make_optimizer, make_schedule
from reproai.training._outputs import FitResult, Predictions
from reproai.training._phases import steps_per_epoch
from reproai.training._runner import Runner, resolve_device, resolve_precision
from reproai.training._seeding import configure_determinism, derive_seed, seed_everything

__all__ = [
    "CrossEntropy",
    "FeatureBatches",
    "FitHooks",
    "FitOptions",
    "FitResult",
    "ImageBatches",
    "Predictions",
    "Runner",
    "Subsets",
    "backbone_features",
    "balanced_class_weight",
    "clear_feature_cache",
    "configure_determinism",
    "derive_seed",
    "fit",
    "make_augment",
    "make_loss",
    "make_optimizer",
    "make_schedule",
    "resolve_device",
    "resolve_precision",
    "seed_everything",
    "steps_per_epoch",
]
