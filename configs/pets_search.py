"""Cat vs dog on the Oxford-IIIT Pet dataset, done properly: nested cross-validation with an Optuna
search inside each outer fold over the head and both phases' learning rates.

Sized for a GPU (5 outer x 3 inner folds x 20 trials). A small version for a CPU and local copies:
    reproai run configs/pets_search.py --set data.root=../shared/data \
        --set model.pretrained=../shared/weights/efficientnet_lite0_imagenet.pth \
        --set cv.outer_folds=3 --set cv.inner_folds=2 --set search.n_trials=4
"""

from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training, hp

experiment = Experiment(
    name="pets-species-search",
    data=Data.oxford_pets(root="data", target="species", download=True),
    model=Model(
        backbone="efficientnet_lite0",
        pretrained=True,
        head=Head(hidden=hp.categorical([128, 256, 512, 1024]), dropout=hp.float(0.0, 0.7)),
    ),
    training=Training(
        batch_size=32,
        augment="flip",
        phases=[
            Phase(
                "warmup",
                epochs=2,
                freeze_backbone=True,
                lr=hp.float(1e-4, 1e-2, log=True),
                weight_decay=hp.float(1e-7, 1e-4, log=True),
            ),
            Phase(
                "finetune",
                epochs=4,
                early_stopping_patience=2,
                lr=hp.float(1e-6, 1e-3, log=True),
                weight_decay=hp.float(1e-6, 1e-3, log=True),
            ),
        ],
    ),
    cv=CrossValidation(outer_folds=5, inner_folds=3),
    search=Search(n_trials=20, metric="roc_auc", pruner="median"),
    seed=1729,
)
