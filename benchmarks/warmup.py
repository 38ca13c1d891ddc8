"""One frozen-backbone (warm-up) epoch on cached features against one epoch through the backbone.

Both sides train the same head on the real Oxford-IIIT Pet sample with the real pretrained
efficientnet_lite0; the one-time feature extraction is timed and reported apart. Goal: >= 20x.

    python benchmarks/warmup.py [--size 224] [--epochs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import Timer, pets_setup, report, require_shared  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    require_shared()

    from reproai import Phase, Training
    from reproai.training import FitHooks, FitOptions, Subsets, clear_feature_cache, fit

    spec, data, info = pets_setup(args.size, hidden=256, dropout=0.2)
    index = np.arange(len(data))
    phase = Phase("warmup", epochs=args.epochs, freeze_backbone=True, lr=1e-3)
    seconds, results = {}, {}
    clear_feature_cache()
    with Timer() as first:  # includes the one-time extraction
        fit(
            spec,
            Training(
                batch_size=args.batch_size, device=args.device, phases=[Phase("x", epochs=1, freeze_backbone=True)]
            ),
            data,
            info,
            Subsets(train=index),
            options=FitOptions(seed=0),
            hooks=FitHooks(progress=False),
        )
    for cached in (True, False):
        training = Training(batch_size=args.batch_size, device=args.device, feature_cache=cached, phases=[phase])
        results[cached] = fit(
            spec, training, data, info, Subsets(train=index), options=FitOptions(seed=0), hooks=FitHooks(progress=False)
        )
        seconds[cached] = statistics.median(h["epoch_seconds"] for h in results[cached].history)
    ratio = seconds[False] / seconds[True]
    same = float(
        np.max(
            np.abs(
                np.asarray([h["train_loss"] for h in results[True].history])
                - np.asarray([h["train_loss"] for h in results[False].history])
            )
        )
    )
    print(f"{len(data)} images at {args.size} px, batch {args.batch_size}, {args.epochs} warm-up epochs each")
    print(f"first fit incl. one-time feature extraction: {first.seconds:.2f} s")
    print(f"epoch through the frozen backbone: {seconds[False]:.3f} s")
    print(f"epoch on cached features:          {seconds[True]:.4f} s")
    print(f"ratio: {ratio:.1f}x (goal >= 20x); max |train loss difference| {same:.2e}")
    report(
        {
            "benchmark": "warmup",
            "ratio": round(ratio, 1),
            "goal": 20.0,
            "epoch_through_backbone_s": round(seconds[False], 4),
            "epoch_on_features_s": round(seconds[True], 5),
            "first_fit_with_extraction_s": round(first.seconds, 2),
            "max_train_loss_diff": same,
            "images": len(data),
            "size": args.size,
        }
    )


if __name__ == "__main__":
    main()
