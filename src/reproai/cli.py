"""The ``reproai`` command: argument parsing only; each sub-command calls one library function."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from reproai.errors import ReproaiError
from reproai.runtime import _stopping as stopping
from reproai.runtime._stopping import Terminated

if TYPE_CHECKING:  # the study pulls in torch and MLflow: imported where a command needs it
    from reproai.config._loader import LoadedConfig
    from reproai.nested._study import StudyResult

__all__ = ["main", "build_parser"]


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="a Python config file that defines one Experiment")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a config field, e.g. --set training.batch_size=64 (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reproai", description="Trustworthy, repeatable ML experiments.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the experiment of a config file, tracked in MLflow")
    _add_config_args(run)
    run.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)",
    )
    run.add_argument(
        "--storage",
        default=None,
        help="Optuna storage: sqlite:///optuna.db (default), postgresql://..., or journal:PATH",
    )
    run.add_argument(
        "--fresh", action="store_true", help="start a new study instead of resuming the one with the same config"
    )
    run.add_argument("--quiet", action="store_true", help="no progress bars")
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

    rerun = sub.add_parser("rerun", help="re-execute a tracked run from what it logged, and compare")
    rerun.add_argument("run_id", help="the MLflow run id of a study, outer fold, trial, fit or phase run")
    rerun.add_argument("--tracking-uri", default=None, help="where the run is tracked (default as for run)")
    rerun.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override where it runs, e.g. --set data.root=/my/copy (repeatable)",
    )
    rerun.add_argument("--quiet", action="store_true", help="no progress bars")
    rerun.add_argument(
        "--trust",
        action="store_true",
        help="execute a logged config that was written on another machine (read it first)",
    )

    analyze = sub.add_parser("analyze", help="metrics with confidence intervals, figures and a report of a study")
    analyze.add_argument("study", help="an MLflow experiment name (its latest finished study) or a run id in a study")
    analyze.add_argument("--out", default=None, help="output folder (default: reports/<name>-<study id>)")
    analyze.add_argument("--tracking-uri", default=None, help="where the study is tracked (default as for run)")
    analyze.add_argument(
        "--bootstrap",
        type=int,
        default=1000,
        metavar="N",
        help="bootstrap resamples of the pooled predictions (default 1000)",
    )
    analyze.add_argument("--no-log", action="store_true", help="do not log the analysis back onto the study run")
    analyze.add_argument(
        "--by-group",
        action="store_true",
        help="also compute the metrics per group (patient, subject): each group's prediction the mean of its images'",
    )

    compare = sub.add_parser("compare", help="compare two studies run on the same splits, fold by fold")
    compare.add_argument("a", help="study A: an experiment name or a run id in the study")
    compare.add_argument("b", help="study B: an experiment name or a run id in the study")
    compare.add_argument("--metric", default=None, help="the test metric to compare (default: A's search metric)")
    compare.add_argument("--tracking-uri", default=None, help="where both studies are tracked (default as for run)")

    status = sub.add_parser("status", help="progress of a study: outer folds, trials by state and by worker")
    status.add_argument("study", help="an MLflow experiment name (its latest study) or a run id in a study")
    status.add_argument("--tracking-uri", default=None, help="where the study is tracked (default as for run)")
    status.add_argument("--storage", default=None, help="its Optuna storage (default as for run)")

    predict = sub.add_parser("predict", help="predict images with a logged model (a study's final model)")
    predict.add_argument("model", help="models:/NAME@ALIAS, runs:/RUN_ID/model, or a study (run id or experiment name)")
    predict.add_argument("inputs", nargs="+", help="image files, folders of images, or tables (CSV/TSV/Parquet)")
    predict.add_argument("--out", default=None, help="write the predictions to this CSV file (default: print them)")
    predict.add_argument("--strict", action="store_true", help="stop at the first image that cannot be read")
    predict.add_argument("--batch-size", type=int, default=64, help="images per call to the model (default 64)")
    predict.add_argument("--image-column", default="path", help="a table's column of image paths (default: path)")
    predict.add_argument(
        "--root", default=None, help="the folder a table's relative paths are under (default: the table's folder)"
    )
    predict.add_argument("--tracking-uri", default=None, help="where the model is tracked (default as for run)")
    predict.add_argument("--quiet", action="store_true", help="no progress bar")

    _add_submit_parser(sub)

    space = sub.add_parser("space", help="list the search space of a config file")
    _add_config_args(space)
    return parser


def _add_submit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("submit", help="run a study's workers as a Slurm job array (through submitit); needs submitit")
    _add_config_args(p)
    p.add_argument("--workers", type=int, default=1, metavar="N", help="array tasks, one worker each (default 1)")
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
        dest="slurm_extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other sbatch option, e.g. --slurm qos=high --slurm constraint=a100 (repeatable)",
    )
    p.add_argument(
        "--signal-delay",
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


def _cmd_submit(args: argparse.Namespace) -> int:
    from reproai.cluster._slurm import SlurmOptions, submit

    options = SlurmOptions(
        time=args.time,
        partition=args.partition,
        gpus_per_worker=args.gpus_per_worker,
        cpus_per_worker=args.cpus_per_worker,
        mem=args.mem,
        account=args.account,
        extra=args.slurm_extra,
        signal_delay_s=args.signal_delay,
        max_requeues=args.max_requeues,
        log_dir=args.log_dir,
    )
    s = submit(
        args.config,
        workers=args.workers,
        slurm=options,
        overrides=args.overrides,
        storage=args.storage,
        tracking_uri=args.tracking_uri,
        check=not args.no_check,
    )
    print(f"submitted job {s.job_id}: {s.workers} worker(s); logs and scripts in {s.folder}/")
    print(f"the same as a plain sbatch script: {s.sbatch_script}")
    print(f"watch it:  {s.status_command}")
    print(f"stop it:   scancel {s.job_id}   (submit the same command again to resume)")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from reproai.config._loader import load_config
    from reproai.nested._study import run_experiment

    loaded = load_config(args.config, args.overrides)
    if args.workers > 1:
        return _run_workers(args, loaded)
    try:
        result = run_experiment(
            loaded,
            tracking_uri=args.tracking_uri,
            storage=args.storage,
            fresh=args.fresh,
            progress=not args.quiet,
            fresh_after=args.fresh_after,
        )
    except KeyboardInterrupt as e:
        return _stopped(e, " Finished outer folds and trials are kept; run the same command again to resume.")
    if args.no_summary:
        return 0
    _print_result(result, loaded, args.tracking_uri)
    return 0


def _run_workers(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    import contextlib

    from reproai.cluster._local import (
        check_parallel_storage,
        local_tracking_server,
        run_workers,
    )
    from reproai.nested._study import run_experiment
    from reproai.tracking import default_tracking_uri

    check_parallel_storage(args.storage, args.workers)
    uri = args.tracking_uri or default_tracking_uri()
    server = local_tracking_server(uri) if uri.startswith("sqlite") else contextlib.nullcontext(uri)
    with server as worker_uri:
        argv = [
            "run",
            args.config,
            *[f"--set={o}" for o in args.overrides],
            "--tracking-uri",
            worker_uri,
            "--storage",
            args.storage,
            "--quiet",
            "--no-summary",
        ]
        if args.fresh:  # one new study for all: claims after the current newest make it, and all join it
            from reproai.nested._study import study_key
            from reproai.runtime._claims import last_claim_number
            from reproai.runtime._storage import open_storage

            argv += ["--fresh-after", str(last_claim_number(open_storage(args.storage), study_key(loaded)))]
        code = run_workers(argv, args.workers)
    if code != 0:
        print(
            f"reproai: a worker exited with status {code}; finished work is kept, run the same command to resume.",
            file=sys.stderr,
        )
        return code
    result = run_experiment(loaded, tracking_uri=uri, storage=args.storage, progress=False)
    _print_result(result, loaded, uri)
    return 0


def _print_result(result: StudyResult, loaded: LoadedConfig, tracking_uri: str | None) -> None:
    from reproai.tracking import default_tracking_uri

    metric = loaded.experiment.search.metric
    verb = "resumed and finished" if result.resumed else "finished"
    print(
        f"study run {result.run_id} ({loaded.experiment.name}) {verb}, tracked at "
        f"{tracking_uri or default_tracking_uri()}"
    )
    print(result.fold_metrics.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    s = result.summary.get(metric)
    if s:
        ci = (
            f", 95% CI [{s['ci_low']:.4f}, {s['ci_high']:.4f}] (Nadeau-Bengio corrected)"
            if s["n"] > 1
            else " (one outer fold: no interval)"
        )
        print(f"test {metric}: {s['mean']:.4f}{ci} over {s['n']} outer fold(s)")
    if result.final_model:
        from reproai.nested._final import quote, trained_on
        from reproai.nested._splits import has_final_stage

        estimate = {k: s[k] for k in ("mean", "ci_low", "ci_high", "n")} if s else {}
        print(
            f"final model: {result.final_model} ({trained_on(has_final_stage(loaded.experiment.cv))}); quote it "
            f"with its nested estimate: {quote(metric, estimate)}"
        )
        print(f"predict with: reproai predict {result.final_model} IMAGES... --out predictions.csv")
    print("Browse the runs with: mlflow ui")


def _cmd_rerun(args: argparse.Namespace) -> int:
    from reproai.nested._rerun import rerun

    report = rerun(
        args.run_id, tracking_uri=args.tracking_uri, overrides=args.overrides, progress=not args.quiet, trust=args.trust
    )
    print(f"rerun of {report.level} run {report.original_id}: new run {report.new_id}")
    for line in report.details:
        print(f"  {line}")
    print("reproduced exactly" if report.identical else "NOT reproduced exactly")
    return 0 if report.identical else 1


def _cmd_analyze(args: argparse.Namespace) -> int:
    from reproai.analysis import analyze
    from reproai.evaluation._stats import BOUNDS_NOTE

    result = analyze(
        args.study,
        tracking_uri=args.tracking_uri,
        out=args.out,
        n_resamples=args.bootstrap,
        log=not args.no_log,
        by_group=args.by_group,
    )
    s = result.summary
    cols = ["mean", "std", "ci_low", "ci_high", "t_ci_low", "t_ci_high"]
    print(
        f"study run {result.study_id} ({result.name}): test metrics over {int(s['n'].iloc[0])} outer fold(s); "
        "ci_* = Nadeau-Bengio corrected 95% interval, t_ci_* = plain t"
    )
    print(s[cols].to_string(float_format=lambda v: f"{v:.4f}"))
    print("\npooled out-of-fold predictions, percentile bootstrap 95% interval:")
    print(result.bootstrap[["pooled", "boot_low", "boot_high"]].to_string(float_format=lambda v: f"{v:.4f}"))
    if result.by_group is not None:
        g = result.by_group
        print(
            f"\ngroup level ({len(g.predictions)} group predictions; each group's probability the mean of its images'):"
        )
        print(g.summary[cols].to_string(float_format=lambda v: f"{v:.4f}"))
    if result.final_model:
        f = result.final_model
        print(f"\nfinal model: {f['uri']} ({f['trained_on']}); quote it with its nested estimate: {f['quote']}")
    print("\n" + BOUNDS_NOTE)
    for note in result.notes:
        print(f"note: {note}")
    if result.out_dir is not None:
        print(
            f"\nreport: {result.out_dir / 'report.html'} "
            f"({len(result.figures)} figures in {result.out_dir / 'figures'})"
        )
    return 0


def _cmd_compare(args: argparse.Namespace) -> int:
    from reproai.analysis import compare

    result = compare(args.a, args.b, metric=args.metric, tracking_uri=args.tracking_uri)
    print(f"A = study run {result.a}, B = study run {result.b}; test {result.metric} per outer fold:")
    print(result.folds.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print(f"\n{result.verdict}")
    print("caveats:")
    for line in result.caveats:
        print(f"  - {line}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from reproai.cluster._status import study_status

    status = study_status(args.study, tracking_uri=args.tracking_uri, storage=args.storage)
    print(
        f"study run {status.study_id}: {status.state}; {status.folds_done} of {len(status.outer)} outer folds "
        f"done; {status.n_trials} trials per outer fold"
    )
    if not status.folds.empty:
        print(status.folds.to_string(index=False))
    if not status.workers.empty:
        print("\ntrials by worker:")
        print(status.workers.to_string(index=False))
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from reproai.export._predict import predict

    table = predict(
        args.model,
        args.inputs,
        tracking_uri=args.tracking_uri,
        out=args.out,
        strict=args.strict,
        batch_size=args.batch_size,
        image_column=args.image_column,
        root=args.root,
        progress=not args.quiet,
    )
    errors = int(table["error"].notna().sum())
    unread = f"{errors} of {len(table)} image(s) could not be read (see the error column)"
    if args.out is None:
        print(table.to_csv(index=False), end="")
        if errors:
            print(f"reproai: {unread}", file=sys.stderr)
    else:
        print(f"{len(table)} predictions written to {args.out}" + (f"; {unread}" if errors else ""))
    return 1 if errors == len(table) else 0


def _cmd_space(args: argparse.Namespace) -> int:
    from reproai.config._loader import load_config
    from reproai.config._tree import Choice, iter_parameters

    loaded = load_config(args.config, args.overrides)
    params = list(iter_parameters(loaded.experiment))
    if not params:
        print(f"{args.config}: no search space; every value is fixed.")
        return 0
    width = max(len(p.name) for p in params)
    for p in params:
        cond = f"   if {p.condition}" if p.condition else ""
        shown = f"hp.choice({' | '.join(p.space.branches)})" if isinstance(p.space, Choice) else repr(p.space)
        print(f"{p.name:<{width}}  {shown}{cond}")
    return 0


_COMMANDS = {
    "run": _cmd_run,
    "rerun": _cmd_rerun,
    "analyze": _cmd_analyze,
    "compare": _cmd_compare,
    "status": _cmd_status,
    "submit": _cmd_submit,
    "space": _cmd_space,
    "predict": _cmd_predict,
}


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
        status = _COMMANDS[args.command](args)
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
        return _stopped(e)


def _stopped(e: KeyboardInterrupt, hint: str = "") -> int:
    """Say how the command was stopped; the exit status of its signal (SIGTERM 143, Ctrl-C 130)."""
    print(f"reproai: {'terminated (SIGTERM)' if isinstance(e, Terminated) else 'interrupted'}.{hint}", file=sys.stderr)
    return 143 if isinstance(e, Terminated) else 130


if __name__ == "__main__":
    sys.exit(main())
