"""Quickstart: nested cross-validation with a search inside, on scikit-learn's 8x8 handwritten digits.

A small CNN trains from scratch; the whole study (3 outer folds x 2 inner folds x 6 trials, plus a
refit per outer fold, then the same search and a refit on all the data for the final model) runs offline
in about a minute on a laptop CPU (48 s on 2 cores; 35 s with --set cv.final_model=False).
"""

from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training, hp

experiment = Experiment(
    name="quickstart",
    data=Data.digits(),
    model=Model(
        backbone="small_cnn",
        pretrained=False,
        head=Head(hidden=hp.categorical([32, 64, 128]), dropout=hp.float(0.0, 0.5)),
    ),
    training=Training(
        batch_size=64,
        phases=[
            Phase("train", epochs=6, lr=hp.float(1e-4, 1e-2, log=True), weight_decay=1e-4, early_stopping_patience=2)
        ],
    ),
    cv=CrossValidation(outer_folds=3, inner_folds=2),
    search=Search(n_trials=6, metric="roc_auc"),
    seed=1729,
)
