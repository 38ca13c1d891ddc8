"""Re-execute a tracked run from what it logged: the config file, overrides, parameters, seed, splits."""

from __future__ import annotations

import hashlib
import io
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from reproai._console import say
from reproai.config._loader import LoadedConfig, load_config
from reproai.errors import DataError, ReproaiError, UntrustedConfigError
from reproai.nested._fits import log_fit
from reproai.nested._folds import Splits
from reproai.nested._plan import FitPlan
from reproai.tracking import MlflowTracker, RunRecord
from reproai.tracking._tags import Level, Tag
from reproai.training import FitHooks, fit

__all__ = ["RerunReport", "rerun", "logged_config"]


@dataclass
class RerunReport:
    """What a rerun produced and whether it matches the original."""

    original_id: str
    new_id: str
    level: str
    identical: bool
    details: list[str] = field(default_factory=list)


def logged_config(
    tracker: MlflowTracker, study_id: str, extra_overrides: Sequence[str] = (), *, trust: bool = False
) -> tuple[LoadedConfig, str]:
    """The config a study logged (file text and overrides, plus ``extra_overrides``) and its sha256.

    Loading a config executes it. A config written on another machine is executed only with
    ``trust=True``: a run on a tracking server may hold anybody's code.
    """
    study = tracker.get_run(study_id)
    name = study.tags.get(Tag.CONFIG_FILE, "config.py")
    source = tracker.read_text(study_id, f"config/{name}")
    digest = hashlib.sha256(source.encode()).hexdigest()
    origin = study.tags.get(Tag.WORKER, "an unknown host").rsplit(":", 2)[0]
    say(f"config {name} from study run {study_id} at {tracker.tracking_uri}, written on {origin} (sha256 {digest})")
    if origin != socket.gethostname() and not trust:
        raise UntrustedConfigError(
            f"The config of study run {study_id} was written on {origin}, not on this machine "
            f"({socket.gethostname()}), and rerunning executes it as Python code. Read it first "
            f"(`mlflow artifacts download -r {study_id} -a config/{name}`; sha256 {digest}), then rerun with "
            "--trust if you trust it."
        )
    overrides = json.loads(tracker.read_text(study_id, "config/overrides.json"))["overrides"]
    loaded = load_config(Path(name), [*overrides, *extra_overrides], source=source)
    return loaded, digest


def _fit_runs_of(tracker: MlflowTracker, run: RunRecord) -> list[RunRecord]:
    level = run.tags.get(Tag.LEVEL)
    if level == Level.FIT:
        return [run]
    if level == Level.PHASE:
        return [tracker.get_run(run.tags["mlflow.parentRunId"])]
    if level == Level.TRIAL:
        fits = tracker.find_runs(
            {
                Tag.LEVEL: Level.FIT,
                Tag.STUDY_ID: run.tags[Tag.STUDY_ID],
                Tag.TRIAL: run.tags[Tag.TRIAL],
                Tag.OUTER_FOLD: run.tags[Tag.OUTER_FOLD],
                Tag.REPEAT: run.tags[Tag.REPEAT],
            }
        )
        return sorted((f for f in fits if f.tags.get("mlflow.parentRunId") == run.id), key=lambda f: f.name)
    raise ReproaiError(f"Run {run.id} is a {level!r} run; rerun takes a study, outer-fold refit, trial or fit run.")


def rerun(
    run_id: str,
    *,
    tracking_uri: str | None = None,
    overrides: Sequence[str] = (),
    progress: bool = True,
    trust: bool = False,
) -> RerunReport:
    """Re-execute run ``run_id``: a study reruns the whole study; an outer-fold (or final) run its refit; a
    trial its fits; a fit or phase run its fit. Each fit runs the :class:`~reproai.nested.FitPlan` its
    ``fit.json`` holds.

    The new runs are tagged ``reproai.rerun_of``. For fits, the new prediction tables are compared
    byte for byte with the logged ones, and the trained weights by their SHA-256
    (:func:`reproai.nested.weights_sha256`); for a study, the headline metric is compared, and its final
    model is logged but not registered.

    Raises:
        UntrustedConfigError: the config was written on another machine and ``trust`` is False (loading a
            config executes it: read it first).
        DataError: the data or the splits differ from the original run's (the rerun would not be exact).
        ReproaiError: the run was not made by reproai.
    """
    tracker, run = MlflowTracker.for_run(run_id, tracking_uri)
    study_id = run.tags.get(Tag.STUDY_ID)
    if not study_id:
        raise ReproaiError(f"Run {run_id} was not made by reproai (it has no {Tag.STUDY_ID} tag).")
    loaded, _ = logged_config(tracker, study_id, overrides, trust=trust)
    if run.tags.get(Tag.LEVEL) == Level.STUDY:
        return _rerun_study(tracker, run, loaded, progress)
    if run.tags.get(Tag.LEVEL) in (Level.OUTER_FOLD, Level.FINAL):
        refits = [
            r
            for r in tracker.find_runs({Tag.LEVEL: Level.FIT, Tag.STUDY_ID: study_id})
            if r.tags.get("mlflow.parentRunId") == run.id
        ]
        run = refits[0] if refits else run
    return _rerun_fits(tracker, run, loaded, progress)


def _rerun_study(tracker: MlflowTracker, run: RunRecord, loaded: LoadedConfig, progress: bool) -> RerunReport:
    from reproai.nested._study import run_experiment

    result = run_experiment(
        loaded, tracker=tracker, progress=progress, extra_tags={Tag.RERUN_OF: run.id}, register_model=False
    )
    metric = run.tags.get(Tag.METRIC, loaded.experiment.search.metric)
    before = run.metrics.get(f"test_{metric}_mean")
    after = result.summary[metric]["mean"]
    same = before is not None and np.isclose(before, after, rtol=0, atol=1e-12)
    return RerunReport(
        run.id, result.run_id, Level.STUDY, bool(same), [f"test {metric} mean: original {before}, rerun {after}"]
    )


def _rerun_fits(tracker: MlflowTracker, run: RunRecord, loaded: LoadedConfig, progress: bool) -> RerunReport:
    from reproai.nested._study import prepare_data

    exp = loaded.experiment
    study = tracker.get_run(run.tags[Tag.STUDY_ID])
    data, info = prepare_data(exp, progress=progress)
    if study.tags.get(Tag.DATA_FINGERPRINT) not in (None, data.fingerprint):
        raise DataError(
            f"The data differ from the data of the original run (fingerprint "
            f"{study.tags[Tag.DATA_FINGERPRINT]} -> {data.fingerprint}); a rerun would not be exact. "
            "Point data.root at the original data (--set data.root=...)."
        )
    splits = Splits.from_dict(json.loads(tracker.read_text(study.id, "splits.json")))
    if splits.ids != data.ids:
        raise DataError("The logged splits name other examples than the data hold now; the rerun would not be exact.")
    identical, details, new_ids = True, [], []
    with tracker.start_run(f"rerun-{run.name}", tags={Tag.LEVEL: Level.RERUN, Tag.RERUN_OF: run.id}) as parent:
        for fit_run in _fit_runs_of(tracker, run):
            plan = FitPlan.from_dict(json.loads(tracker.read_text(fit_run.id, "fit.json")))
            config = plan.config(exp)
            with tracker.start_run(
                f"rerun-{fit_run.name}", tags={Tag.LEVEL: Level.FIT, Tag.RERUN_OF: fit_run.id}, parent=parent
            ) as new:
                result = fit(
                    config.model,
                    config.training,
                    data,
                    info,
                    plan.subsets(splits),
                    options=plan.options(exp.search.metric),
                    hooks=FitHooks(progress=progress),
                )
                log_fit(new, data, result, plan)
            new_ids.append(new.id)
            same, lines = _compare(tracker, fit_run, new.id)
            identical &= same
            details += lines
        parent.set_tags({Tag.IDENTICAL: str(identical).lower()})
    return RerunReport(
        run.id, new_ids[0] if len(new_ids) == 1 else parent.id, run.tags.get(Tag.LEVEL, Level.FIT), identical, details
    )


def _compare(tracker: MlflowTracker, fit_run: RunRecord, new_id: str) -> tuple[bool, list[str]]:
    """Whether a rerun fit ``new_id`` reproduced ``fit_run``: its prediction tables byte for byte and
    its trained weights by their SHA-256; with what was compared, in words."""
    identical, details, compared = True, [], 0
    for table in ("dev", "test"):
        try:
            old_text = tracker.read_text(fit_run.id, f"predictions/{table}.json")
        except Exception:
            continue
        new_text = tracker.read_text(new_id, f"predictions/{table}.json")
        compared += 1
        same = old_text == new_text
        identical &= same
        if same:
            details.append(f"{fit_run.name}: {table} predictions identical, byte for byte")
        else:
            a = pd.read_json(io.StringIO(old_text), orient="split")
            b = pd.read_json(io.StringIO(new_text), orient="split")
            col = next(c for c in a.columns if str(c).startswith("probability"))
            diff = float(np.max(np.abs(a[col].to_numpy() - b[col].to_numpy())))
            details.append(f"{fit_run.name}: {table} predictions DIFFER (max |diff| of {col}: {diff:.3g})")
    # The trained weights themselves: the only evidence for a fit on all the data (the final
    # model), which predicts no held-out set. Fits logged before digests were recorded have none.
    old_digest = json.loads(tracker.read_text(fit_run.id, "fit.json")).get("weights_sha256")
    if old_digest:
        new_digest = json.loads(tracker.read_text(new_id, "fit.json"))["weights_sha256"]
        compared += 1
        same = old_digest == new_digest
        identical &= same
        details.append(
            f"{fit_run.name}: trained weights identical (sha256 {new_digest[:12]})"
            if same
            else f"{fit_run.name}: trained weights DIFFER (sha256 {old_digest[:12]} then {new_digest[:12]})"
        )
    if not compared:
        identical = False
        details.append(f"{fit_run.name}: nothing logged to compare (no prediction table, no weights digest)")
    return identical, details
