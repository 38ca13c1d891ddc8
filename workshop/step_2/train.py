"""Step 2: the same experiment, tracked in MLflow: parameters, the split, metrics and prediction tables,
with the warm-up and fine-tuning phases as nested runs. Browse them with `mlflow ui`.

    python workshop/step_2/train.py --data-root ../shared/data \
        --pretrained ../shared/weights/efficientnet_lite0_imagenet.pth --limit 100
"""

import sys
from pathlib import Path

import mlflow
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import common  # noqa: E402

from reproai.tracking import MlflowTracker  # noqa: E402
from reproai.training import FitHooks, FitOptions, Subsets, fit  # noqa: E402

EXPERIMENT = "workshop-step-2"
LR_WARMUP, LR_FINETUNE, HIDDEN, DROPOUT = 1e-3, 1e-4, 256, 0.2

args = common.parser(__doc__.splitlines()[0]).parse_args()
data, info = common.load_pets(args)

rng = np.random.default_rng(args.seed)  # a seeded split: the same every time
order = rng.permutation(len(data))
n_test, n_dev = len(data) // 5, len(data) // 5
split = {"test": order[:n_test], "dev": order[n_test : n_test + n_dev], "train": order[n_test + n_dev :]}

mlflow.set_experiment(EXPERIMENT)  # each workshop step has its own MLflow experiment
with mlflow.start_run(run_name="fit") as run:
    mlflow.log_params(
        {
            "lr_warmup": LR_WARMUP,
            "lr_finetune": LR_FINETUNE,
            "hidden": HIDDEN,
            "dropout": DROPOUT,
            "epochs_warmup": args.epochs[0],
            "epochs_finetune": args.epochs[1],
            "seed": args.seed,
            "limit": args.limit,
            "image_size": args.image_size,
            "pretrained": args.pretrained,
        }
    )
    mlflow.log_dict({k: [data.ids[i] for i in v] for k, v in split.items()}, "split.json")
    # reproai's fit logs each phase (warm-up, fine-tuning) as a nested run with per-epoch metrics.
    tracker = MlflowTracker(EXPERIMENT)
    result = fit(
        common.model(args, HIDDEN, DROPOUT),
        common.two_phases(args, lr_warmup=LR_WARMUP, lr_finetune=LR_FINETUNE),
        data,
        info,
        Subsets(**split),
        options=FitOptions(seed=args.seed),
        hooks=FitHooks(tracker=tracker, parent=tracker.run(run.info.run_id)),
    )
    mlflow.log_metrics({f"test_{k}": v for k, v in result.test_metrics.items()})
    mlflow.log_metrics({f"dev_{k}": v for k, v in result.dev_metrics.items()})
    mlflow.log_metric("threshold", result.threshold)
    mlflow.log_table(result.dev.table(data, result.threshold), "predictions/dev.json")
    mlflow.log_table(result.test.table(data, result.threshold), "predictions/test.json")
print(f"run {run.info.run_id}: test ROC AUC {result.test_metrics['roc_auc']:.4f}; see it with `mlflow ui`")
