"""What a fit produces: its predictions on a subset, and the fit's result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from torch import nn

from reproai.data._source import ImageSet
from reproai.evaluation._metrics import predict_labels

__all__ = ["Predictions", "FitResult"]


@dataclass
class Predictions:
    """Model outputs on a subset: dataset indices, logits and probabilities."""

    index: np.ndarray
    logits: np.ndarray
    proba: np.ndarray  # (n,) P(class 1) for binary targets, (n, k) otherwise

    def table(self, data: ImageSet, threshold: float | None) -> pd.DataFrame:
        """One row per example: id (and group, when the data have groups), label, logit(s),
        probability(ies) and predicted class."""
        labels = data.labels[self.index]
        out: dict[str, Any] = {"id": [data.ids[i] for i in self.index]}
        if data.groups is not None:
            out["group"] = data.groups[self.index]
        out["label"] = labels
        if self.proba.ndim == 1:
            out["logit"] = self.logits
            out["probability"] = self.proba
        else:
            for k, name in enumerate(data.classes):
                out[f"probability_{name}"] = self.proba[:, k]
        out["predicted"] = predict_labels(self.proba, threshold)
        return pd.DataFrame(out)


@dataclass
class FitResult:
    """What one fit produced: the trained model, the threshold, predictions and the history."""

    model: nn.Module
    threshold: float | None
    dev: Predictions | None
    test: Predictions | None
    dev_metrics: dict[str, float] = field(default_factory=dict)
    test_metrics: dict[str, float] = field(default_factory=dict)
    best_epochs: dict[str, int] = field(default_factory=dict)
    history: list[dict[str, float | str]] = field(default_factory=list)  # per epoch: its phase, its metrics
    peak_memory: dict[str, float] = field(default_factory=dict)  # MiB: peak_rss_mib (and peak_cuda_mib)
    compile_seconds: float | None = None  # spent compiling during this fit (with training.compile)
