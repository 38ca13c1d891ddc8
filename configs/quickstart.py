"""Quickstart: a small CNN on scikit-learn's 8x8 handwritten digits (offline, about a minute on a CPU)."""

from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training

experiment = Experiment(
    name="quickstart",
    data=Data.digits(),
    model=Model(backbone="small_cnn", pretrained=False, head=Head(hidden=64, dropout=0.2)),
    training=Training(
        batch_size=64,
        phases=[Phase("train", epochs=8, lr=3e-3, weight_decay=1e-4, early_stopping_patience=3)],
    ),
    cv=CrossValidation(outer_folds=1, inner_folds=1, test_size=0.2, dev_size=0.2),
    search=Search(metric="roc_auc"),
    seed=1729,
)
