"""Bring your own parts: a network, a loss, an optimizer and a scheduler, with search spaces in their
arguments (a conditional search over SGD's momentum or AdamW's betas), on scikit-learn's digits.

    reproai space configs/custom_components.py    # every parameter, with its condition
    reproai run configs/custom_components.py      # offline, about a minute on 2 CPU cores
"""

import torch  # noqa: F401  (the network below is plain PyTorch)
from torch import nn

from reproai import Component, CrossValidation, Data, Experiment, Model, Phase, Search, Training, hp


def tiny_net(num_classes: int, width: int = 16, depth: int = 2) -> nn.Module:
    """``depth`` blocks of convolution, batch norm, ReLU and 2x2 max pooling, then a linear layer; one logit
    for two classes, one per class otherwise."""
    layers, c = [], 3
    for _ in range(depth):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2)]
        c = width
    return nn.Sequential(
        *layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 1 if num_classes == 2 else num_classes)
    )


experiment = Experiment(
    name="custom-components",
    data=Data.digits(),
    model=Model(factory=tiny_net, kwargs={"width": hp.categorical([8, 16]), "depth": hp.int(1, 3)}),
    training=Training(
        batch_size=64,
        loss=Component("cross_entropy", class_weight="balanced", label_smoothing=hp.float(0.0, 0.2)),
        phases=[
            Phase(
                "train",
                epochs=10,
                lr=hp.float(1e-3, 1e-1, log=True),
                optimizer=hp.choice(
                    {
                        "sgd": Component("SGD", momentum=hp.float(0.5, 0.99), nesterov=hp.categorical([True, False])),
                        "adamw": Component("AdamW", betas=(0.9, hp.float(0.9, 0.999))),
                    }
                ),
                scheduler="OneCycleLR",  # its max_lr is the phase's lr
            )
        ],
    ),
    cv=CrossValidation(outer_folds=2, inner_folds=2),
    search=Search(n_trials=4),
    seed=3,
)
