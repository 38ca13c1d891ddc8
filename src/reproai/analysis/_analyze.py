"""``reproai analyze``: from a tracked study to metrics with intervals, figures and a report."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from reproai.analysis import _figures as F
from reproai.analysis._evaluate import (
    bootstrap_pooled,
    confusion,
    fold_metrics,
    group_predictions,
    summarize_folds,
)
from reproai.analysis._load import StudyData, load_study
from reproai.analysis._report import ReportContent, load_thumbnails, render_html, render_markdown, worst_examples
from reproai.analysis._searches import rebuild_searches
from reproai.tracking._tags import Level, Tag

__all__ = ["Analysis", "GroupAnalysis", "analyze", "group_analysis", "splits_summary"]


@dataclass
class Analysis:
    """The analysis of one study: tables (pandas) and, when written, where the report is."""

    study_id: str
    name: str
    metric: str
    folds: pd.DataFrame
    summary: pd.DataFrame
    bootstrap: pd.DataFrame
    confusion: pd.DataFrame
    best_params: pd.DataFrame
    figures: dict[str, bytes] = field(repr=False)
    out_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    by_group: GroupAnalysis | None = None
    final_model: dict[str, Any] = field(default_factory=dict)  # uri, trained_on, quote, params; {} without one


@dataclass
class GroupAnalysis:
    """The same metrics at the group level (each group's prediction the mean of its images')."""

    predictions: pd.DataFrame
    folds: pd.DataFrame
    summary: pd.DataFrame
    bootstrap: pd.DataFrame


def group_analysis(data: StudyData, *, n_resamples: int = 1000) -> GroupAnalysis:
    """Metrics per outer fold, across folds and bootstrapped (over groups), at the group level: see
    :func:`reproai.analysis._evaluate.group_predictions`."""
    thresholds = {}
    for run in data.level(Level.OUTER_FOLD):
        if "threshold" in run.metrics:
            thresholds[(int(run.tags[Tag.REPEAT]), int(run.tags[Tag.OUTER_FOLD]))] = run.metrics["threshold"]
    table = group_predictions(data.predictions, data.classes, thresholds)
    folds = fold_metrics(table, data.classes)
    summary = summarize_folds(folds, test_train_ratio=data.test_train_ratio)
    boot = bootstrap_pooled(table, data.classes, n_resamples=n_resamples)
    return GroupAnalysis(table, folds, summary, boot)


def splits_summary(data: StudyData) -> pd.DataFrame:
    """Per part of every split (outer-train, outer-test, inner train and dev): images, groups and images
    per class, as the study logged them; for an older study, per outer fold: sizes and test classes."""
    if not data.split_table.empty:
        return data.split_table
    labels = data.predictions.set_index("id")["label"] if "id" in data.predictions else None
    rows = []
    for f in data.splits.get("outer", []):
        row = {
            "repeat": f["repeat"],
            "outer_fold": f["fold"],
            "n_train": len(f["train"]),
            "n_test": len(f["test"]),
            "inner_folds": len(f["inner"]),
        }
        if labels is not None:
            fold = data.predictions[
                (data.predictions["repeat"] == f["repeat"]) & (data.predictions["outer_fold"] == f["fold"])
            ]
            counts = fold["label"].value_counts()
            row["test_classes"] = ", ".join(f"{c}: {int(counts.get(k, 0))}" for k, c in enumerate(data.classes))
        rows.append(row)
    return pd.DataFrame(rows)


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _figures(data: StudyData, matrix: pd.DataFrame, best: pd.DataFrame) -> dict[str, Figure]:
    p, c = data.predictions, data.classes
    out = {
        "roc": F.roc_figure(p, c),
        "precision_recall": F.pr_figure(p, c),
        "probability_density": F.density_figure(p, c),
        "calibration": F.calibration_figure(p, c),
        "confusion_matrix": F.confusion_figure(matrix),
    }
    chosen = F.params_figure(best) if not best.empty else None
    if chosen is not None:
        out["chosen_params"] = chosen
    for (repeat, fold), search in rebuild_searches(data).items():
        key = f"{repeat}-{fold}"
        for kind, fig in F.optuna_figures(search, title=f"outer fold {key}").items():
            out[f"search_{kind}_outer-{key}"] = fig
    return out


def _facts(data: StudyData) -> dict[str, str]:
    tags, env = data.study.tags, data.environment
    outer = data.splits.get("outer", [])
    trials = data.level(Level.TRIAL)
    states = pd.Series([t.tags.get(Tag.STATE, "failed") for t in trials]).value_counts().to_dict()
    return {
        "study run": data.study.id,
        "tracking": f"{getattr(data.tracker, 'tracking_uri', '')} "
        f"(experiment {getattr(data.tracker, 'experiment_name', '')})",
        "config": f"{data.config_name} (hash {tags.get(Tag.CONFIG_HASH, '?')})",
        "data": f"{tags.get(Tag.N_EXAMPLES, '?')} examples, classes {data.classes}, fingerprint "
        f"{tags.get(Tag.DATA_FINGERPRINT, '?')}",
        "cross-validation": f"{len(outer)} outer folds x {len(outer[0]['inner']) if outer else 0} inner folds, "
        f"seed {tags.get(Tag.SEED, '?')}",
        "search": (
            f"{len(trials)} trials ({', '.join(f'{v} {k}' for k, v in sorted(states.items()))}), metric "
            f"{data.metric} ({tags.get(Tag.DIRECTION, '?')})"
        )
        if trials
        else "none (fixed config)",
        "runs": f"{len(data.runs) + 1} MLflow runs in the study tree",
        "code": f"reproai {env.get('packages', {}).get('reproai', '?')}, git {tags.get(Tag.GIT_COMMIT, '') or 'n/a'}",
    }


def _final_model(data: StudyData, summary: pd.DataFrame) -> dict[str, Any]:
    """The report's final-model section: its URI, what it was trained on, the sentence to quote, and the
    hyperparameters its own search chose (one row; none when it is the single outer fold's refit)."""
    if not data.final_model:
        return {}
    from reproai.nested._final import quote, trained_on

    row = summary.loc[data.metric] if data.metric in summary.index else None
    estimate = {k: float(row[k]) for k in ("mean", "ci_low", "ci_high", "n")} if row is not None else {}
    final = data.final_params()
    return {
        "uri": data.final_model,
        "trained_on": trained_on(bool(data.final_runs)),
        "quote": quote(data.metric, estimate) if estimate else "",
        "params": pd.DataFrame([final]) if final else pd.DataFrame(),
    }


def _log(data: StudyData, analysis: Analysis, report_html: str, report_md: str) -> None:
    """Log the analysis onto the study run; metrics whose value is already there are not logged again."""
    run = data.tracker.run(data.study.id)
    metrics = {}
    for name, row in analysis.summary.iterrows():
        metrics.update({f"analysis_{name}_{k}": row[k] for k in ("mean", "std", "ci_low", "ci_high")})
    for name, row in analysis.bootstrap.iterrows():
        metrics.update(
            {
                f"analysis_{name}_pooled": row["pooled"],
                f"analysis_{name}_boot_low": row["boot_low"],
                f"analysis_{name}_boot_high": row["boot_high"],
            }
        )
    metrics = {k: float(v) for k, v in metrics.items() if math.isfinite(v) and data.study.metrics.get(k) != float(v)}
    run.log_metrics(metrics)
    run.log_table(analysis.folds, "analysis/fold_metrics.json")
    run.log_table(analysis.summary.reset_index(), "analysis/summary.json")
    run.log_table(analysis.bootstrap.reset_index(), "analysis/bootstrap.json")
    run.log_table(analysis.confusion.reset_index(), "analysis/confusion.json")
    if analysis.by_group is not None:
        group = analysis.by_group
        run.log_metrics(
            {
                f"analysis_group_{name}_{k}": float(row[k])
                for name, row in group.summary.iterrows()
                for k in ("mean", "ci_low", "ci_high")
                if math.isfinite(row[k])
            }
        )
        run.log_table(group.folds, "analysis/group_fold_metrics.json")
        run.log_table(group.summary.reset_index(), "analysis/group_summary.json")
        run.log_table(group.bootstrap.reset_index(), "analysis/group_bootstrap.json")
    for name, png in analysis.figures.items():
        run.log_bytes(png, f"analysis/figures/{name}.png")
    run.log_text(report_html, "analysis/report.html")
    run.log_text(report_md, "analysis/report.md")


def analyze(
    reference: str,
    *,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    n_resamples: int = 1000,
    thumbnails: int = 12,
    log: bool = True,
    write: bool = True,
    by_group: bool = False,
) -> Analysis:
    """Analyse the study ``reference`` (an experiment name, or a run id in the study).

    Computes every metric per outer fold and across folds (mean, std, corrected and plain 95% intervals),
    bootstraps the pooled out-of-fold predictions, draws the figures, and writes ``report.html``,
    ``report.md`` and the figures to ``out`` (default ``reports/<name>-<study id>``). With ``log`` the
    numbers, tables, figures and reports are also logged onto the study run. ``by_group`` adds the
    metrics at the group level (a patient's prediction the mean of its images').
    """
    data = load_study(reference, tracking_uri)
    folds = fold_metrics(data.predictions, data.classes)
    summary = summarize_folds(folds, test_train_ratio=data.test_train_ratio)
    boot = bootstrap_pooled(data.predictions, data.classes, n_resamples=n_resamples)
    matrix = confusion(data.predictions, data.classes)
    best = data.best_params()
    pngs = {name: _png(fig) for name, fig in _figures(data, matrix, best).items()}
    name = data.tracker.experiment_name if hasattr(data.tracker, "experiment_name") else data.name
    analysis = Analysis(data.study.id, name, data.metric, folds, summary, boot, matrix, best, pngs)
    if by_group:
        analysis.by_group = group_analysis(data, n_resamples=n_resamples)
    analysis.final_model = _final_model(data, summary)
    worst, thumbs = pd.DataFrame(), {}
    if thumbnails:
        worst = worst_examples(data.predictions, data.classes, thumbnails)
        try:
            thumbs = load_thumbnails(data.resolved, worst["id"].tolist())
        except Exception as e:  # the data may live elsewhere; the report says so instead of failing
            analysis.notes.append(
                f"Thumbnails of the worst-classified examples are missing: the study's data could "
                f"not be read here ({type(e).__name__}: {e})."
            )
    content = ReportContent(
        title=f"reproai report: {name}",
        facts=_facts(data),
        headline=summary,
        folds=folds,
        bootstrap=boot,
        best_params=best,
        splits=splits_summary(data),
        figures=pngs,
        config_name=data.config_name,
        config_text=data.config_text,
        environment=data.environment,
        worst=worst,
        thumbnails=thumbs,
        notes=analysis.notes,
        by_group=analysis.by_group,
        final_model=analysis.final_model,
    )
    report_html, report_md = render_html(content), render_markdown(content)
    if write:
        out_dir = Path(out) if out is not None else Path("reports") / f"{name}-{data.study.id[:8]}"
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        for fig_name, png in pngs.items():
            (out_dir / "figures" / f"{fig_name}.png").write_bytes(png)
        (out_dir / "report.html").write_text(report_html)
        (out_dir / "report.md").write_text(report_md)
        folds.to_csv(out_dir / "fold_metrics.csv", index=False)
        summary.to_csv(out_dir / "summary.csv")
        boot.to_csv(out_dir / "bootstrap.csv")
        if analysis.by_group is not None:
            analysis.by_group.folds.to_csv(out_dir / "group_fold_metrics.csv", index=False)
            analysis.by_group.summary.to_csv(out_dir / "group_summary.csv")
            analysis.by_group.bootstrap.to_csv(out_dir / "group_bootstrap.csv")
        analysis.out_dir = out_dir
    if log:
        _log(data, analysis, report_html, report_md)
    return analysis
