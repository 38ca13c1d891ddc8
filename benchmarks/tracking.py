"""The same fit with MLflow tracking on and off. Goal: at most 3% slower with tracking.

Tracking on: a real MLflow store (SQLite, in a temporary folder), the fit's phase runs with their
per-epoch metrics, and the prediction tables and fit.json as reproai logs them. Off: the null tracker.
The two alternate, on then off, and the overhead is the median over those pairs of on / off - 1:
each pair runs within seconds, so this machine's drift in speed (10-20% over minutes) mostly cancels.
It also prints the time spent inside MLflow calls, which is what tracking adds and has no drift.

    python benchmarks/tracking.py [--repeats 7] [--limit 160] [--size 160]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from _common import Timer, pets_setup, report, require_shared  # noqa: E402


class TimedClient:
    """Passes every call to the MLflow client, adding up the seconds spent in them."""

    def __init__(self, client):
        self.client, self.seconds = client, 0.0

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            start = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start

        return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--limit", type=int, default=160)
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--log-every-n-steps", type=int, default=None, help="also log a per-step loss (async)")
    args = parser.parse_args()
    require_shared()

    from reproai import Phase, Training
    from reproai.tracking import MlflowTracker, NullTracker
    from reproai.training import FitHooks, FitOptions, Subsets, fit

    training = Training(
        batch_size=32,
        log_every_n_steps=args.log_every_n_steps,
        phases=[Phase("warmup", epochs=1, freeze_backbone=True, lr=1e-3), Phase("finetune", epochs=2, lr=1e-4)],
    )
    spec, data, info = pets_setup(args.size, args.limit, hidden=128)
    rng = np.random.default_rng(0)
    index = rng.permutation(len(data))
    train, dev, test = (
        index[: len(index) // 2],
        index[len(index) // 2 : 3 * len(index) // 4],
        index[3 * len(index) // 4 :],
    )
    times: dict[str, list[float]] = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        mlflow_tracker = MlflowTracker("tracking-benchmark", f"sqlite:///{tmp}/mlflow.db")
        client = mlflow_tracker.client = TimedClient(mlflow_tracker.client)

        def one(tracked: bool) -> float:
            tracker = mlflow_tracker if tracked else NullTracker()
            with Timer() as t, tracker.start_run("fit") as run:
                result = fit(
                    spec,
                    training,
                    data,
                    info,
                    Subsets(train=train, dev=dev, test=test),
                    options=FitOptions(seed=0),
                    hooks=FitHooks(tracker=tracker, parent=run, progress=False),
                )
                run.log_metrics({f"test_{k}": v for k, v in result.test_metrics.items()})
                run.log_table(result.dev.table(data, result.threshold), "predictions/dev.json")
                run.log_table(result.test.table(data, result.threshold), "predictions/test.json")
                run.log_dict({"seed": 0}, "fit.json")
            return t.seconds

        one(True)  # warm-up: imports, database creation, feature extraction
        client.seconds = 0.0
        for _ in range(args.repeats):
            for side in ("on", "off"):
                times[side].append(one(side == "on"))
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    pairs = [a / b - 1 for a, b in zip(times["on"], times["off"], strict=True)]
    overhead = statistics.median(pairs)
    print(
        f"fit of {len(train)} train / {len(dev)} dev / {len(test)} test images at {args.size} px, "
        f"{args.repeats} repeats"
    )
    print(f"tracking on:  {on:.2f} s (median of {[round(t, 2) for t in times['on']]})")
    print(f"tracking off: {off:.2f} s (median of {[round(t, 2) for t in times['off']]})")
    print(f"on / off - 1 per pair: {[f'{x:+.1%}' for x in pairs]}")
    print(f"overhead: {overhead:+.1%}, the median over pairs (goal <= +3%)")
    inside = client.seconds / args.repeats
    print(
        f"time inside MLflow calls: {inside:.3f} s a fit, {inside / on:.1%} of a tracked fit (what the pairs "
        "measure, without the machine's drift)"
    )
    report(
        {
            "benchmark": "tracking",
            "overhead": round(overhead, 4),
            "goal": 0.03,
            "on_s": round(on, 3),
            "off_s": round(off, 3),
            "overhead_per_pair": [round(x, 4) for x in pairs],
            "mlflow_s_per_fit": round(inside, 4),
            "repeats": args.repeats,
        }
    )


if __name__ == "__main__":
    main()
