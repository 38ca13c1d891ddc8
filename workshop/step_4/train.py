"""Step 4: an Optuna search inside the inner loop of nested cross-validation. Each outer fold gets its
own search (trials scored by the mean dev ROC AUC over the inner folds); its best parameters are refit
on the whole outer-train set and tested once, so the test score is not biased by the search.

    python workshop/step_4/train.py --data-root ../shared/data \
        --pretrained ../shared/weights/efficientnet_lite0_imagenet.pth --limit 100 --folds 3 --trials 6
"""

import statistics
import sys
from pathlib import Path

import mlflow
import numpy as np
import optuna

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

from reproai import CrossValidation  # noqa: E402
from reproai.evaluation import youden_threshold  # noqa: E402
from reproai.nested import make_splits  # noqa: E402
from reproai.tracking import MlflowTracker  # noqa: E402
from reproai.training import FitHooks, FitOptions, Subsets, fit  # noqa: E402

EXPERIMENT = "workshop-step-4"

args = common.parser(__doc__.splitlines()[0], folds=True, trials=True).parse_args()
data, info = common.load_pets(args)
splits = make_splits(data.labels, CrossValidation(outer_folds=args.folds, inner_folds=args.folds), seed=args.seed)
optuna.logging.set_verbosity(optuna.logging.WARNING)


def configure(params):
    """The model and training of one set of hyperparameters."""
    return (
        common.model(args, params["hidden"], params["dropout"]),
        common.two_phases(args, lr_warmup=params["lr_warmup"], lr_finetune=params["lr_finetune"]),
    )


mlflow.set_experiment(EXPERIMENT)
tracker = MlflowTracker(EXPERIMENT)
with mlflow.start_run(run_name="search") as study_run:
    mlflow.log_params({"folds": args.folds, "trials": args.trials, "seed": args.seed})
    mlflow.log_dict(splits.to_dict(), "splits.json")
    tables, scores = [], []
    for outer in splits.outer:
        with mlflow.start_run(run_name=f"outer-{outer.fold}", nested=True) as outer_run:

            def objective(trial, outer=outer):  # searched on inner folds only
                params = {
                    "lr_warmup": trial.suggest_float("lr_warmup", 1e-4, 1e-2, log=True),
                    "lr_finetune": trial.suggest_float("lr_finetune", 1e-6, 1e-3, log=True),
                    "hidden": trial.suggest_categorical("hidden", [128, 256, 512]),
                    "dropout": trial.suggest_float("dropout", 0.0, 0.5),
                }
                spec, training = configure(params)
                with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True) as trial_run:
                    mlflow.log_params(params)
                    dev, epochs, labels, proba = [], [], [], []
                    for j, inner in enumerate(outer.inner):
                        r = fit(
                            spec,
                            training,
                            data,
                            info,
                            Subsets(train=inner.train, dev=inner.dev),
                            options=FitOptions(seed=args.seed + j),
                            hooks=FitHooks(tracker=tracker, parent=tracker.run(trial_run.info.run_id)),
                        )
                        dev.append(r.dev_metrics["roc_auc"])
                        epochs.append([r.best_epochs.get(p.name, p.epochs) for p in training.phases])
                        labels.append(data.labels[inner.dev])
                        proba.append(r.dev.proba)
                    mlflow.log_metric("dev_roc_auc", float(np.mean(dev)))
                trial.set_user_attr("epochs", [int(round(statistics.median(c))) for c in zip(*epochs, strict=True)])
                trial.set_user_attr("threshold", youden_threshold(np.concatenate(labels), np.concatenate(proba)))
                return float(np.mean(dev))

            search = optuna.create_study(
                direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed + outer.fold)
            )
            search.optimize(objective, n_trials=args.trials)
            best = search.best_trial
            spec, training = configure(best.params)
            refit = fit(
                spec,
                training,
                data,
                info,
                Subsets(train=outer.train, test=outer.test),
                options=FitOptions(
                    seed=args.seed, epochs=best.user_attrs["epochs"], threshold=best.user_attrs["threshold"]
                ),
                hooks=FitHooks(tracker=tracker, parent=tracker.run(outer_run.info.run_id)),
            )
            table = refit.test.table(data, best.user_attrs["threshold"])
            mlflow.log_params({f"best_{k}": v for k, v in best.params.items()})
            mlflow.log_metrics(
                {"best_dev_roc_auc": best.value, **{f"test_{k}": v for k, v in refit.test_metrics.items()}}
            )
            mlflow.log_table(table, "predictions/test.json")
        tables.append(table.assign(repeat=0, outer_fold=outer.fold))
        scores.append(refit.test_metrics["roc_auc"])
    common.log_over_folds(splits, tables, scores)  # the score over outer folds, with its interval
