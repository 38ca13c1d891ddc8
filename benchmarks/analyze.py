"""How long `reproai analyze` takes on a big study: a synthetic study of 1,000+ runs in a local MLflow store.

The study has the run tree and tags that `reproai run` writes (study -> outer folds -> trials -> inner
fits, and a refit per fold), trial parameters and objective values, the splits and the pooled
out-of-fold prediction table; it is made through reproai's own tracker. Then `reproai analyze` runs on
it as a command (a fresh process, imports included) and as a function, and both times are printed.

    python benchmarks/analyze.py [--outer 5] [--trials 100] [--inner 2] [--examples 5000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timer, report  # noqa: E402


def make_study(uri: str, *, outer: int, trials: int, inner: int, examples: int, seed: int = 0) -> int:
    """Create the synthetic study; return how many runs it has."""
    import optuna

    from reproai.tracking import PREFIX as T
    from reproai.tracking import MlflowTracker

    rng = np.random.default_rng(seed)
    tracker = MlflowTracker("big", uri)
    ids = [f"img-{i:05d}" for i in range(examples)]
    labels = rng.integers(0, 2, examples)
    folds = np.array_split(rng.permutation(examples), outer)
    dists = {
        "lr": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True),
        "dropout": optuna.distributions.FloatDistribution(0.0, 0.5),
        "hidden": optuna.distributions.CategoricalDistribution([128, 256, 512]),
    }
    spec = json.dumps({k: optuna.distributions.distribution_to_json(d) for k, d in dists.items()})
    n_runs = 1
    with tracker.start_run("study", tags={f"{T}level": "study", f"{T}config_hash": "synthetic"}) as study:
        study.set_tags(
            {
                f"{T}study_id": study.id,
                f"{T}classes": json.dumps(["cat", "dog"]),
                f"{T}metric": "roc_auc",
                f"{T}direction": "maximize",
                f"{T}n_examples": examples,
                f"{T}seed": seed,
            }
        )
        splits, tables = {"n": examples, "ids": ids, "outer": []}, []
        for k, test in enumerate(folds):
            train = np.setdiff1d(np.arange(examples), test)
            splits["outer"].append(
                {
                    "repeat": 0,
                    "fold": k,
                    "train": train.tolist(),
                    "test": test.tolist(),
                    "inner": [{"train": [], "dev": []}] * inner,
                }
            )
            base = {f"{T}study_id": study.id, f"{T}repeat": 0, f"{T}outer_fold": k}
            with tracker.start_run(f"outer-0-{k}", tags={**base, f"{T}level": "outer_fold"}, parent=study) as fold:
                best, best_value = {}, -1.0
                for t in range(trials):
                    params = {
                        "lr": float(10 ** rng.uniform(-5, -2)),
                        "dropout": float(rng.uniform(0, 0.5)),
                        "hidden": int(rng.choice([128, 256, 512])),
                    }
                    value = float(0.8 + 0.1 * rng.random())
                    state = "pruned" if t > 5 and rng.random() < 0.3 else "complete"
                    with tracker.start_run(
                        f"trial-{t}",
                        tags={
                            **base,
                            f"{T}level": "trial",
                            f"{T}trial": t,
                            f"{T}state": state,
                            f"{T}distributions": spec,
                        },
                        parent=fold,
                    ) as trial:
                        trial.log_params(params)
                        for j in range(inner if state == "complete" else 1):
                            with tracker.start_run(
                                f"inner-{j}",
                                tags={**base, f"{T}level": "fit", f"{T}trial": t, f"{T}inner_fold": j},
                                parent=trial,
                            ) as fit:
                                fit.log_metrics({"dev_roc_auc": value})
                            n_runs += 1
                        if state == "complete":
                            trial.log_metrics({"dev_roc_auc": value})
                            if value > best_value:
                                best, best_value = params, value
                    n_runs += 1
                with tracker.start_run("refit", tags={**base, f"{T}level": "fit", f"{T}refit": "true"}, parent=fold):
                    n_runs += 1
                y = labels[test]
                p = np.clip(0.5 + (y - 0.5) * rng.uniform(0.0, 0.8, len(y)) + rng.normal(0, 0.15, len(y)), 0.001, 0.999)
                tables.append(
                    pd.DataFrame(
                        {
                            "id": [ids[i] for i in test],
                            "label": y,
                            "logit": np.log(p / (1 - p)),
                            "probability": p,
                            "predicted": (p >= 0.5).astype(int),
                            "repeat": 0,
                            "outer_fold": k,
                        }
                    )
                )
                fold.set_tags({f"{T}state": "complete", f"{T}best_params": json.dumps(best, sort_keys=True)})
            n_runs += 1
        study.log_dict(splits, "splits.json")
        study.log_table(pd.concat(tables, ignore_index=True), "predictions/out_of_fold.json")
        study.set_tags({f"{T}state": "complete"})
    return n_runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outer", type=int, default=5)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--inner", type=int, default=2)
    parser.add_argument("--examples", type=int, default=5000)
    parser.add_argument("--goal", type=float, default=20.0, help="seconds the command may take (default 20)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        with Timer() as made:
            n_runs = make_study(uri, outer=args.outer, trials=args.trials, inner=args.inner, examples=args.examples)
        print(f"made a synthetic study of {n_runs} runs ({args.examples} test predictions) in {made.seconds:.0f} s")
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
        with Timer() as command:
            subprocess.run(
                [sys.executable, "-m", "reproai", "analyze", "big", "--out", str(Path(tmp) / "report")],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        print(f"`reproai analyze big` (a new process, imports included): {command.seconds:.1f} s")
        from reproai.analysis import analyze

        with Timer() as function:
            result = analyze("big", tracking_uri=uri, out=Path(tmp) / "again", log=False)
        print(
            f"reproai.analysis.analyze('big') without logging back: {function.seconds:.1f} s, "
            f"{len(result.figures)} figures"
        )
    report(
        {
            "benchmark": "analyze",
            "runs": n_runs,
            "examples": args.examples,
            "command_seconds": round(command.seconds, 2),
            "function_seconds": round(function.seconds, 2),
            "goal_seconds": args.goal,
            "met": command.seconds <= args.goal,
        }
    )


if __name__ == "__main__":
    main()
