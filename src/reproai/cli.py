"""The ``reproai`` command: argument parsing only; each sub-command calls one library function."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence
from typing import Any

from reproai._commands import COMMANDS, stopped
from reproai.errors import ReproaiError
from reproai.runtime import _stopping as stopping

__all__ = ["main", "build_parser"]


def _add_overrides(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE", help=f"{example} (repeatable)"
    )


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="a Python config file that defines one Experiment")
    _add_overrides(p, "override a config field, e.g. --set training.batch_size=64")


def _option(*flags: str, **kwargs: Any) -> argparse.ArgumentParser:
    """A parent parser with one option, for the sub-commands that share it (``parents=[...]``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(*flags, **kwargs)
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reproai", description="Trustworthy, repeatable ML experiments.")
    sub = parser.add_subparsers(dest="command", required=True)
    # Options that several sub-commands take, defined once (`submit` has its own --storage and --tracking-uri).
    tracking = _option(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    storage = _option(
        "--storage",
        default=None,
        help="Optuna storage: sqlite:///optuna.db (default), postgresql://..., or journal:PATH",
    )
    quiet = _option("--quiet", action="store_true", help="no progress bars")

    run = sub.add_parser(
        "run", help="run the experiment of a config file, tracked in MLflow", parents=[tracking, storage, quiet]
    )
    _add_config_args(run)
    run.add_argument(
        "--fresh", action="store_true", help="start a new study instead of resuming the one with the same config"
    )
    run.add_argument(
        "--workers",
        type=int,
        default=1,
        metavar="N",
        help="run N worker processes on this study (needs --storage journal:PATH or postgresql://...; "
        "with an SQLite tracking store, a local MLflow server on 127.0.0.1 is started for them)",
    )
    run.add_argument("--no-summary", action="store_true", help=argparse.SUPPRESS)
    run.add_argument("--fresh-after", type=int, default=None, help=argparse.SUPPRESS)

    rerun = sub.add_parser(
        "rerun", help="re-execute a tracked run from what it logged, and compare", parents=[tracking, quiet]
    )
    rerun.add_argument("run_id", help="the MLflow run id of a study, outer fold, trial, fit or phase run")
    _add_overrides(rerun, "override where it runs, e.g. --set data.root=/my/copy")
    rerun.add_argument("--trust", action="store_true", help="run a logged config written elsewhere (read it first)")

    analyze = sub.add_parser(
        "analyze", help="metrics with confidence intervals, figures and a report of a study", parents=[tracking]
    )
    analyze.add_argument("study", help="an MLflow experiment name (its latest finished study) or a run id in a study")
    analyze.add_argument("--out", default=None, help="output folder (default: reports/<name>-<study id>)")
    analyze.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap resamples (default 1000)")
    analyze.add_argument("--no-log", action="store_true", help="do not log the analysis back onto the study run")
    analyze.add_argument("--by-group", action="store_true", help="metrics per group too (its images' mean prediction)")

    compare = sub.add_parser(
        "compare", help="compare two or more studies run on the same outer splits, fold by fold", parents=[tracking]
    )
    compare.add_argument("studies", nargs="+", metavar="STUDY", help="experiment names or run ids in the studies")
    compare.add_argument(
        "--metric", default=None, help="the test metric to compare (default: the first's search metric)"
    )
    compare.add_argument(
        "--rope",
        type=float,
        default=None,
        help="region of practical equivalence in the metric's units (default per metric; 0.01 for ROC AUC)",
    )
    compare.add_argument("--out", default=None, help="output folder (default: reports/compare-<study ids>-<metric>)")
    compare.add_argument("--no-log", action="store_true", help="do not log the comparison onto the study runs")

    status = sub.add_parser(
        "status",
        help="progress of a study: outer folds, trials by state and by worker",
        parents=[tracking, storage],
    )
    status.add_argument("study", help="an MLflow experiment name (its latest study) or a run id in a study")

    predict = sub.add_parser(
        "predict", help="predict images with a logged model (a study's final model)", parents=[tracking, quiet]
    )
    predict.add_argument("model", help="models:/NAME@ALIAS, runs:/RUN_ID/model, or a study (run id or experiment name)")
    predict.add_argument("inputs", nargs="+", help="image files, folders of images, or tables (CSV/TSV/Parquet)")
    predict.add_argument("--out", default=None, help="write the predictions to this CSV file (default: print them)")
    predict.add_argument("--strict", action="store_true", help="stop at the first image that cannot be read")
    predict.add_argument("--batch-size", type=int, default=64, help="images per call to the model (default 64)")
    predict.add_argument("--image-column", default="path", help="a table's column of image paths (default: path)")
    predict.add_argument(
        "--root", default=None, help="the folder a table's relative paths are under (default: the table's folder)"
    )

    _add_submit_parser(sub)

    space = sub.add_parser("space", help="list the search space of a config file")
    _add_config_args(space)
    return parser


def _add_submit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("submit", help="run a study's workers as a Slurm job array (through submitit); needs submitit")
    _add_config_args(p)
    p.add_argument("--workers", type=int, default=1, metavar="N", help="array tasks, one worker each (default 1)")
    # Not the shared --storage and --tracking-uri: the nodes must share both, so SQLite is no default here.
    p.add_argument("--storage", default=None, help="Optuna storage the nodes share: postgresql://... or journal:PATH")
    p.add_argument(
        "--tracking-uri", default=None, help="MLflow tracking server the nodes reach (default: $MLFLOW_TRACKING_URI)"
    )
    p.add_argument("--time", required=True, help="time limit per task, e.g. 90, 24:00:00 or 2-00:00 (Slurm's format)")
    p.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's)")
    p.add_argument("--account", default=None, help="Slurm account to charge")
    p.add_argument("--gpus-per-worker", type=int, default=None, metavar="G", help="GPUs per worker (its node's)")
    p.add_argument("--cpus-per-worker", type=int, default=None, metavar="C", help="CPUs per worker (its threads)")
    p.add_argument("--mem", default=None, help="memory per worker, e.g. 32G")
    p.add_argument(
        "--slurm",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. --slurm qos=high --slurm constraint=a100 (repeatable)",
    )
    p.add_argument(
        "--signal-delay",
        dest="signal_delay_s",
        type=int,
        default=120,
        metavar="S",
        help="seconds before the time limit at which a task stops cleanly and is requeued (default 120)",
    )
    p.add_argument(
        "--max-requeues", type=int, default=20, metavar="N", help="requeues after a time limit per task (default 20)"
    )
    p.add_argument("--log-dir", default="reproai-slurm", help="logs and scripts go to LOG_DIR/<job id>/")
    p.add_argument(
        "--no-check",
        action="store_true",
        help="submit without first opening the storage and reaching the tracking server from this machine",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``reproai`` command; returns the exit status."""
    args = build_parser().parse_args(argv)
    if not (sys.stderr is not None and sys.stderr.isatty()):
        # A log file (Slurm, nohup, CI) gets a progress line every 30 s, not one per redraw: tqdm reads
        # its defaults from TQDM_* variables, which a user's own setting overrides.
        os.environ.setdefault("TQDM_MININTERVAL", "30")
    import faulthandler
    import signal

    if hasattr(signal, "SIGUSR1") and sys.__stderr__ is not None:
        # `kill -USR1 <pid>` prints where a (seemingly stuck) worker is; not without a real stderr (an embedding host)
        with contextlib.suppress(ValueError, OSError, AttributeError):
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    try:
        previous = {
            sig: signal.signal(sig, handler)
            for sig, handler in ((signal.SIGTERM, stopping.on_sigterm), (signal.SIGINT, stopping.on_sigint))
        }
    except ValueError:  # not the main thread: leave the signals alone
        return _dispatch(args)
    try:
        return _dispatch(args)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stopping.reset()


def _dispatch(args: argparse.Namespace) -> int:
    import warnings

    import optuna

    warnings.formatwarning = lambda message, category, *a, **k: f"reproai: warning: {message}\n"

    # Progress bars and the summary replace Optuna's line per trial.
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # here rather than at exit, so that a reader that went away is met below
        return status
    except BrokenPipeError:
        # The reader of the output went away (`reproai status X | head`): stop quietly, as other tools do.
        with contextlib.suppress(OSError, ValueError, io.UnsupportedOperation):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 128 + 13  # SIGPIPE's status
    except ReproaiError as e:
        print(f"reproai: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return stopped(e)


if __name__ == "__main__":
    sys.exit(main())
