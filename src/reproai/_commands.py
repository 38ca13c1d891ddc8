"""What each ``reproai`` command does once its arguments are parsed: call one library function, print the
outcome. Heavy imports (torch, MLflow) happen here, inside the command that needs them."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from reproai.runtime._stopping import Terminated

if TYPE_CHECKING:  # the study pulls in torch and MLflow: imported where a command needs it
    from reproai.config import LoadedConfig
    from reproai.nested import StudyResult

__all__ = ["COMMANDS", "stopped"]


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The parsed options ``names`` as keyword arguments (each option's dest is the library's parameter name)."""
    return {name: getattr(args, name) for name in names}


def _cmd_submit(args: argparse.Namespace) -> int:
    from reproai.cluster import SlurmOptions, submit

    options = SlurmOptions(**_given(args, *(f.name for f in dataclasses.fields(SlurmOptions))))
    s = submit(
        args.config,
        slurm=options,
        check=not args.no_check,
        **_given(args, "workers", "overrides", "storage", "tracking_uri"),
    )
    print(f"submitted job {s.job_id}: {s.workers} worker(s); logs and scripts in {s.folder}/")
    print(f"the same as a plain sbatch script: {s.sbatch_script}")
    print(f"watch it:  {s.status_command}")
    print(f"stop it:   scancel {s.job_id}   (submit the same command again to resume)")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from reproai import load_config
    from reproai.nested import run_experiment

    loaded = load_config(args.config, args.overrides)
    if args.workers > 1:
        return _run_workers(args, loaded)
    try:
        given = _given(args, "tracking_uri", "storage", "fresh", "fresh_after")
        result = run_experiment(loaded, progress=not args.quiet, **given)
    except KeyboardInterrupt as e:
        return stopped(e, " Finished outer folds and trials are kept; run the same command again to resume.")
    if args.no_summary:
        return 0
    _print_result(result, loaded, args.tracking_uri)
    return 0


def _run_workers(args: argparse.Namespace, loaded: LoadedConfig) -> int:
    from reproai.cluster import run_local_study
    from reproai.nested import run_experiment

    given = _given(args, "workers", "overrides", "storage", "tracking_uri", "fresh")
    code, uri = run_local_study(loaded, config_path=args.config, **given)
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
        from reproai.nested import has_final_stage, quote, trained_on

        estimate = {k: s[k] for k in ("mean", "ci_low", "ci_high", "n")} if s else {}
        print(
            f"final model: {result.final_model} ({trained_on(has_final_stage(loaded.experiment.cv))}); quote it "
            f"with its nested estimate: {quote(metric, estimate)}"
        )
        print(f"predict with: reproai predict {result.final_model} IMAGES... --out predictions.csv")
    # MLflow 3's UI opens on its GenAI pages unless asked for the model-training ones.
    page = f" and open http://127.0.0.1:5000/#/experiments/{result.experiment_id}?workflowType=machine_learning"
    print(f"Browse the runs with: mlflow ui{page if result.experiment_id else ''}")


def _cmd_rerun(args: argparse.Namespace) -> int:
    from reproai.nested import rerun

    report = rerun(args.run_id, progress=not args.quiet, **_given(args, "tracking_uri", "overrides", "trust"))
    print(f"rerun of {report.level} run {report.original_id}: new run {report.new_id}")
    for line in report.details:
        print(f"  {line}")
    print("reproduced exactly" if report.identical else "NOT reproduced exactly")
    return 0 if report.identical else 1


def _cmd_analyze(args: argparse.Namespace) -> int:
    from reproai.analysis import analyze
    from reproai.evaluation import BOUNDS_NOTE

    given = _given(args, "tracking_uri", "out", "by_group")
    result = analyze(args.study, n_resamples=args.bootstrap, log=not args.no_log, **given)
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

    result = compare(*args.studies, log=not args.no_log, **_given(args, "metric", "rope", "tracking_uri", "out"))
    for label, study in zip(result.labels, result.studies, strict=True):
        print(f"{label} (study run {study})")
    print(f"\ntest {result.metric} per outer fold:")
    print(result.folds.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    print("\nper study (mean, Nadeau-Bengio corrected 95% interval, mean rank; 1 = best):")
    columns = ["mean", "ci_low", "ci_high", "mean_rank"]
    print(result.summary[columns].to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"\n{result.verdict}")
    print("caveats:")
    for line in result.caveats:
        print(f"  - {line}")
    if result.out_dir is not None:
        print(f"\nreport: {result.out_dir / 'compare.html'}")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from reproai.cluster import study_status

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
    from reproai.export import predict

    given = _given(args, "tracking_uri", "out", "strict", "batch_size", "image_column", "root")
    table = predict(args.model, args.inputs, progress=not args.quiet, **given)
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
    from reproai.config import Choice, iter_parameters, load_config

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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "rerun": _cmd_rerun,
    "analyze": _cmd_analyze,
    "compare": _cmd_compare,
    "status": _cmd_status,
    "submit": _cmd_submit,
    "space": _cmd_space,
    "predict": _cmd_predict,
}


def stopped(e: KeyboardInterrupt, hint: str = "") -> int:
    """Say how the command was stopped; the exit status of its signal (SIGTERM 143, Ctrl-C 130)."""
    print(f"reproai: {'terminated (SIGTERM)' if isinstance(e, Terminated) else 'interrupted'}.{hint}", file=sys.stderr)
    return 143 if isinstance(e, Terminated) else 130
