"""Step 3: nested cross-validation. Outer folds hold out test data; inside each outer fold, inner folds
resample train and dev to choose the number of epochs and the threshold; a refit on the whole
outer-train set is then tested once. The score is reported over outer folds, with an interval.

    python workshop/step_3/train.py --data-root ../shared/data \
        --pretrained ../shared/weights/efficientnet_lite0_imagenet.pth --limit 100 --folds 3
"""

import statistics
import sys
from pathlib import Path

import mlflow
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

from reproai import CrossValidation  # noqa: E402
from reproai.evaluation import youden_threshold  # noqa: E402
from reproai.nested import make_splits  # noqa: E402
from reproai.tracking import MlflowTracker  # noqa: E402
from reproai.training import FitHooks, FitOptions, Subsets, fit  # noqa: E402

EXPERIMENT = "workshop-step-3"
LR_WARMUP, LR_FINETUNE, HIDDEN, DROPOUT = 1e-3, 1e-4, 256, 0.2

args = common.parser(__doc__.splitlines()[0], folds=True).parse_args()
data, info = common.load_pets(args)
spec = common.model(args, HIDDEN, DROPOUT)
training = common.two_phases(args, lr_warmup=LR_WARMUP, lr_finetune=LR_FINETUNE)
# Stratified, seeded splits, checked for leakage (no test image in any train or dev set).
splits = make_splits(data.labels, CrossValidation(outer_folds=args.folds, inner_folds=args.folds), seed=args.seed)

mlflow.set_experiment(EXPERIMENT)
tracker = MlflowTracker(EXPERIMENT)
with mlflow.start_run(run_name="nested-cv") as study:
    mlflow.log_params({"folds": args.folds, "seed": args.seed, "lr_warmup": LR_WARMUP, "lr_finetune": LR_FINETUNE})
    mlflow.log_dict(splits.to_dict(), "splits.json")
    tables, scores = [], []
    for outer in splits.outer:  # outer loop: test data held out
        with mlflow.start_run(run_name=f"outer-{outer.fold}", nested=True) as outer_run:
            best_epochs, dev_labels, dev_proba = [], [], []
            for j, inner in enumerate(outer.inner):  # inner loop: train / dev only
                with mlflow.start_run(run_name=f"inner-{j}", nested=True) as inner_run:
                    r = fit(
                        spec,
                        training,
                        data,
                        info,
                        Subsets(train=inner.train, dev=inner.dev),
                        options=FitOptions(seed=args.seed + j),
                        hooks=FitHooks(tracker=tracker, parent=tracker.run(inner_run.info.run_id)),
                    )
                    mlflow.log_metrics({f"dev_{k}": v for k, v in r.dev_metrics.items()})
                best_epochs.append([r.best_epochs.get(p.name, p.epochs) for p in training.phases])
                dev_labels.append(data.labels[inner.dev])
                dev_proba.append(r.dev.proba)
            # What the inner folds chose: epochs per phase (median of the best) and the threshold.
            epochs = [int(round(statistics.median(col))) for col in zip(*best_epochs, strict=True)]
            threshold = youden_threshold(np.concatenate(dev_labels), np.concatenate(dev_proba))
            refit = fit(
                spec,
                training,
                data,
                info,
                Subsets(train=outer.train, test=outer.test),
                options=FitOptions(seed=args.seed, epochs=epochs, threshold=threshold),
                hooks=FitHooks(tracker=tracker, parent=tracker.run(outer_run.info.run_id)),
            )
            table = refit.test.table(data, threshold)
            mlflow.log_table(table, "predictions/test.json")
            mlflow.log_metrics({f"test_{k}": v for k, v in refit.test_metrics.items()})
            mlflow.log_params({"epochs": epochs, "threshold": round(threshold, 6)})
        tables.append(table.assign(repeat=0, outer_fold=outer.fold))
        scores.append(refit.test_metrics["roc_auc"])
    common.log_over_folds(splits, tables, scores)  # the score over outer folds, with its interval
