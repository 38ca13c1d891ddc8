"""Step 5's experiment: the whole configuration in one file, with search spaces where step 4 had
`trial.suggest_*` calls. `reproai run workshop/step_5/config.py` runs it; so does step_5/train.py."""

from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training, hp

experiment = Experiment(
    name="workshop-step-5",
    data=Data.oxford_pets(root="data", target="species"),
    model=Model(
        backbone="efficientnet_lite0",
        pretrained=True,
        head=Head(hidden=hp.categorical([128, 256, 512]), dropout=hp.float(0.0, 0.5)),
    ),
    training=Training(
        batch_size=32,
        phases=[
            Phase("warmup", epochs=2, freeze_backbone=True, lr=hp.float(1e-4, 1e-2, log=True)),
            Phase("finetune", epochs=3, early_stopping_patience=2, lr=hp.float(1e-6, 1e-3, log=True)),
        ],
    ),
    cv=CrossValidation(outer_folds=3, inner_folds=3),
    search=Search(n_trials=6, metric="roc_auc"),
    seed=1729,
)
