"""The same fit with MLflow tracking on and off. Goal: at most 3% slower with tracking.

Tracking on: a real MLflow store (SQLite, in a temporary folder), the fit's phase runs with their
per-epoch metrics, and the prediction tables and fit.json as reproai logs them. Off: the null tracker.
The two alternate, and each side's median is compared.

    python benchmarks/tracking.py [--repeats 3] [--limit 160] [--size 160]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from _common import Timer, pets_setup, report, require_shared  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--limit", type=int, default=160)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--log-every-n-steps", type=int, default=None, help="also log a per-step loss (async)")
    args = parser.parse_args()
    require_shared()

    from reproai import Phase, Training
    from reproai.tracking import MlflowTracker, NullTracker
    from reproai.training import fit

    training = Training(batch_size=32, log_every_n_steps=args.log_every_n_steps, phases=[
        Phase("warmup", epochs=1, freeze_backbone=True, lr=1e-3), Phase("finetune", epochs=2, lr=1e-4)])
    spec, data, info = pets_setup(args.size, args.limit, hidden=128)
    rng = np.random.default_rng(0)
    index = rng.permutation(len(data))
    train, dev, test = index[: len(index) // 2], index[len(index) // 2: 3 * len(index) // 4], index[3 * len(index) // 4:]
    times: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        mlflow_tracker = MlflowTracker("tracking-benchmark", f"sqlite:///{tmp}/mlflow.db")

        def one(tracked: bool) -> float:
            tracker = mlflow_tracker if tracked else NullTracker()
            with Timer() as t:
                with tracker.start_run("fit") as run:
                    result = fit(spec, training, data, info, train=train, dev=dev, test=test, seed=0,
                                 tracker=tracker, parent=run, progress=False)
                    run.log_metrics({f"test_{k}": v for k, v in result.test_metrics.items()})
                    run.log_table(result.dev.table(data, result.threshold), "predictions/dev.json")
                    run.log_table(result.test.table(data, result.threshold), "predictions/test.json")
                    run.log_dict({"seed": 0}, "fit.json")
            return t.seconds

        one(True)  # warm-up: imports, database creation, feature extraction
        for _ in range(args.repeats):
            for side in ("on", "off"):
                times[side].append(one(side == "on"))
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    overhead = on / off - 1
    print(f"fit of {len(train)} train / {len(dev)} dev / {len(test)} test images at {args.size} px, {args.repeats} repeats")
    print(f"tracking on:  {on:.2f} s (median of {times['on']})")
    print(f"tracking off: {off:.2f} s (median of {times['off']})")
    print(f"overhead: {overhead:+.1%} (goal <= +3%)")
    report({"benchmark": "tracking", "overhead": round(overhead, 4), "goal": 0.03, "on_s": round(on, 3),
            "off_s": round(off, 3), "repeats": args.repeats})


if __name__ == "__main__":
    main()
