"""Trial throughput of one study run by 1 and by 2 worker processes, on cheap trials (the quickstart's
small CNN on the digits), through a journal-file Optuna storage and a local MLflow tracking server.

Both runs use the same config, storage kind and server; only the number of workers differs. Each
worker gets cores / workers PyTorch threads, as `reproai run --workers N` gives them.

    python benchmarks/workers.py [--trials 12] [--outer 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import optuna

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REPO, Timer, report  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=12, help="trials per outer fold")
    parser.add_argument("--outer", type=int, default=2, help="outer folds")
    args = parser.parse_args()
    from reproai.cluster import local_tracking_server, run_workers

    config = str(REPO / "configs" / "quickstart.py")
    figures = {}
    with (
        tempfile.TemporaryDirectory() as tmp,
        local_tracking_server(f"sqlite:///{Path(tmp) / 'mlflow.db'}", Path(tmp) / "artifacts") as uri,
    ):
        for workers in (1, 2):
            journal = Path(tmp) / f"optuna-{workers}.journal"
            argv = [
                "run",
                config,
                "--set",
                f"cv.outer_folds={args.outer}",
                "--set",
                f"search.n_trials={args.trials}",
                "--set",
                "search.pruner='none'",
                "--set",
                "cv.final_model=False",  # the trials of the outer folds are what is timed
                "--set",
                f"name='bench-{workers}'",
                "--tracking-uri",
                uri,
                "--storage",
                f"journal:{journal}",
                "--quiet",
                "--no-summary",
            ]
            with Timer() as t:
                code = run_workers(argv, workers)
            if code != 0:
                sys.exit(f"the {workers}-worker run failed with status {code}")
            storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
            trials = sum(
                len(s.get_trials(states=(optuna.trial.TrialState.COMPLETE,)))
                for s in (
                    optuna.load_study(study_name=x.study_name, storage=storage)
                    for x in optuna.get_all_study_summaries(storage)
                )
                if "/outer-" in s.study_name and not s.study_name.startswith("reproai-claims/")
            )
            figures[workers] = {"seconds": t.seconds, "trials": trials, "per_second": trials / t.seconds}
            print(
                f"{workers} worker(s): {trials} trials in {t.seconds:.1f} s = {trials / t.seconds:.3f} trials/s "
                "(whole study: data, searches, refits, headline)"
            )
    ratio = figures[2]["per_second"] / figures[1]["per_second"]
    print(f"2 workers vs 1: {ratio:.2f}x the trial throughput on this machine")
    report(
        {
            "benchmark": "workers",
            "trials": figures[1]["trials"],
            "seconds_1": round(figures[1]["seconds"], 1),
            "seconds_2": round(figures[2]["seconds"], 1),
            "trials_per_s_1": round(figures[1]["per_second"], 3),
            "trials_per_s_2": round(figures[2]["per_second"], 3),
            "ratio": round(ratio, 2),
        }
    )


if __name__ == "__main__":
    main()
