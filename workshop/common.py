"""What every workshop step shares: its command-line options, the data, and the model.

Each step adds one idea on top of this; everything else comes from the reproai package, so that the
steps stay short and nothing is written twice.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # run from a checkout without installing, too

from reproai import Data, Head, Model, Phase, Training  # noqa: E402
from reproai.data import list_source, load_images  # noqa: E402
from reproai.models import backbone_info  # noqa: E402


def parser(description: str, *, folds: bool = False, trials: bool = False) -> argparse.ArgumentParser:
    """The options every step takes; ``folds`` and ``trials`` for the steps that use them."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument(
        "--data-root",
        default="data",
        help="folder that holds oxford-iiit-pet/ (downloaded there when missing), e.g. ../shared/data",
    )
    p.add_argument(
        "--pretrained",
        default="imagenet",
        help="'imagenet' (timm downloads the weights) or a local .pth file, e.g. "
        "../shared/weights/efficientnet_lite0_imagenet.pth",
    )
    p.add_argument(
        "--epochs",
        type=int,
        nargs=2,
        default=[2, 3],
        metavar=("WARMUP", "FINETUNE"),
        help="epochs of the frozen-backbone warm-up and of the fine-tuning (default 2 3)",
    )
    p.add_argument("--limit", type=int, default=None, help="use a stratified sample of this many images")
    p.add_argument("--image-size", type=int, default=224, help="input size in pixels (default 224)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=32,
        help="images per training step (default 32); at most the size of the smallest training set",
    )
    p.add_argument("--seed", type=int, default=1729)
    if folds:
        p.add_argument("--folds", type=int, default=3, help="outer folds, and inner folds in each (default 3)")
    if trials:
        p.add_argument("--trials", type=int, default=6, help="Optuna trials per outer fold (default 6)")
    return p


def load_pets(args: argparse.Namespace):
    """Oxford-IIIT Pet, cats vs dogs, decoded once at the model's input size: ``(data, backbone info)``."""
    spec = model(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # images without an annotation line are labelled from their names
        source = list_source(Data.oxford_pets(root=args.data_root, target="species", limit=args.limit), seed=args.seed)
    info = backbone_info(spec)
    return load_images(source, info.image_size, progress=False), info


def model(args: argparse.Namespace, hidden: int = 256, dropout: float = 0.2) -> Model:
    """EfficientNet-Lite0, ImageNet-pretrained, with a new head."""
    pretrained = True if args.pretrained == "imagenet" else args.pretrained
    return Model(
        backbone="efficientnet_lite0",
        pretrained=pretrained,
        image_size=args.image_size,
        head=Head(hidden=hidden, dropout=dropout),
    )


def two_phases(args: argparse.Namespace, *, lr_warmup: float, lr_finetune: float) -> Training:
    """Warm-up with the backbone frozen, then fine-tuning of the whole network."""
    return Training(
        batch_size=args.batch_size,
        phases=[
            Phase("warmup", epochs=args.epochs[0], freeze_backbone=True, lr=lr_warmup),
            Phase("finetune", epochs=args.epochs[1], lr=lr_finetune, early_stopping_patience=2),
        ],
    )


def log_over_folds(splits, tables: list, scores: list[float]) -> None:
    """Steps 3 and 4: log the test ROC AUC over outer folds (mean, Nadeau-Bengio corrected 95% interval)
    and the pooled out-of-fold predictions onto the active run, and print them."""
    import mlflow
    import numpy as np
    import pandas as pd

    from reproai.analysis import corrected_t_interval

    ratio = float(np.mean([len(f.test) / len(f.train) for f in splits.outer]))
    ci = corrected_t_interval(scores, test_train_ratio=ratio)
    mlflow.log_metrics({f"test_roc_auc_{k}": v for k, v in ci.items() if k != "n" and np.isfinite(v)})
    mlflow.log_table(pd.concat(tables, ignore_index=True), "predictions/out_of_fold.json")
    print(
        f"test ROC AUC per outer fold: {[round(s, 4) for s in scores]}; mean {ci['mean']:.4f}, "
        f"95% CI [{ci['ci_low']:.4f}, {ci['ci_high']:.4f}] (Nadeau-Bengio corrected)"
    )


def analyze_nested(description: str, experiment: str, run_name: str) -> None:
    """Steps 3 and 4: per-fold and across-fold metrics of the latest run's out-of-fold predictions,
    logged back onto it with the ROC curves per fold."""
    import mlflow

    from reproai.analysis import density_figure, fold_metrics, roc_figure, summarize_folds

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--experiment", default=experiment)
    args = parser.parse_args()
    mlflow.set_experiment(args.experiment)
    runs = mlflow.search_runs(
        experiment_names=[args.experiment],
        filter_string=f"attributes.run_name = '{run_name}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    run_id = runs["run_id"].iloc[0]
    table = mlflow.load_table("predictions/out_of_fold.json", run_ids=[run_id])
    splits = mlflow.artifacts.load_dict(f"runs:/{run_id}/splits.json")
    ratio = sum(len(f["test"]) / len(f["train"]) for f in splits["outer"]) / len(splits["outer"])
    classes = ["cat", "dog"]
    folds = fold_metrics(table, classes)
    summary = summarize_folds(folds, test_train_ratio=ratio)
    with mlflow.start_run(run_id=run_id):
        mlflow.log_table(folds, "analysis/fold_metrics.json")
        mlflow.log_metrics(
            {
                f"analysis_{m}_{k}": float(summary.loc[m, k])
                for m in summary.index
                for k in ("mean", "ci_low", "ci_high")
                if summary.loc[m, k] == summary.loc[m, k]
            }
        )
        mlflow.log_figure(roc_figure(table, classes), "figures/roc.png")
        mlflow.log_figure(density_figure(table, classes), "figures/probability_density.png")
    print(folds.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(summary[["mean", "std", "ci_low", "ci_high"]].to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"logged onto run {run_id}: analysis_* metrics, analysis/fold_metrics.json, figures/")
