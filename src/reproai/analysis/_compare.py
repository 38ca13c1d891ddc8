"""``reproai compare``: k >= 2 studies run on the same outer splits, compared fold by fold with the tests the
literature recommends (Demšar 2006; Benavoli et al. 2017): ranks, the Friedman test and the Nemenyi
post-hoc test with a critical-difference diagram, and for each pair the Bayesian correlated t-test with a
region of practical equivalence; for two studies also the Nadeau-Bengio corrected paired t-test."""

from __future__ import annotations

import itertools
import json
import math
import string
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from reproai.analysis._compare_report import figures, render_html
from reproai.analysis._comparison import Comparison
from reproai.analysis._evaluate import fold_metrics
from reproai.analysis._load import StudyData, load_study
from reproai.errors import ReproaiError
from reproai.evaluation import _comparisons as comparisons
from reproai.evaluation._metrics import METRICS, metric_bounds
from reproai.evaluation._stats import corrected_paired_ttest, corrected_t_interval

__all__ = ["Comparison", "compare", "check_same_splits"]

# A posterior probability from which the verdict calls a pair's outcome settled (Benavoli et al. 2017, 5.1).
DECISIVE = 0.95


def _outer_tests(data: StudyData) -> dict[tuple[int, int], list[str]]:
    ids = data.splits.get("ids", [])
    return {(f["repeat"], f["fold"]): sorted(ids[i] for i in f["test"]) for f in data.splits.get("outer", [])}


def _how_to_pair(a: StudyData) -> str:
    uri = getattr(a.tracker, "tracking_uri", "sqlite:///mlflow.db")
    return (
        f"The same data, seed and cv settings give the same splits (data.limit draws its sample with the seed "
        f"too). Or run the other study on {a.name}'s splits: `MLFLOW_TRACKING_URI={uri} mlflow "
        f"artifacts download -r {a.study.id} -a splits.json -d .`, then --set cv.splits_file=splits.json (with "
        "the same data.limit and seed, or none)."
    )


def check_same_splits(a: StudyData, b: StudyData) -> None:
    """Raise unless both studies have the same outer folds with the same test examples."""
    ta, tb = _outer_tests(a), _outer_tests(b)
    if not ta or not tb:
        raise ReproaiError("Cannot compare: a study has no logged splits.json.")
    names = f"{a.name} (study run {a.study.id}) and {b.name} (study run {b.study.id})"
    if ta.keys() != tb.keys():
        raise ReproaiError(
            f"Cannot compare {names}: the first has outer folds {sorted(ta)}, the second {sorted(tb)}. "
            + _how_to_pair(a)
        )
    differ = [k for k in ta if ta[k] != tb[k]]
    if differ:
        raise ReproaiError(
            f"Cannot compare {names}: their outer test sets differ in fold(s) {differ}, so per-fold "
            "differences would not be paired. " + _how_to_pair(a)
        )


def _fold_table(studies: list[StudyData], labels: list[str], metric: str) -> pd.DataFrame:
    """The metric per outer fold (rows) and study (columns)."""
    table: pd.DataFrame | None = None
    for data, label in zip(studies, labels, strict=True):
        folds = fold_metrics(data.predictions, data.classes)
        if metric not in folds.columns:
            known = [c for c in folds.columns if c not in ("repeat", "outer_fold", "n")]
            raise ReproaiError(f"Unknown metric {metric!r} for study {data.study.id}; choose one of {known}.")
        column = folds[["repeat", "outer_fold", metric]].rename(columns={metric: label})
        table = column if table is None else table.merge(column, on=["repeat", "outer_fold"])
    assert table is not None  # at least two studies
    return table.sort_values(["repeat", "outer_fold"]).reset_index(drop=True)


def _pairs(scores: np.ndarray, labels: list[str], rope: float, runs: int, higher: bool) -> pd.DataFrame:
    rows = []
    for i, j in itertools.combinations(range(len(labels)), 2):
        p = comparisons.bayesian_correlated_ttest(
            scores[:, i], scores[:, j], rope=rope, runs=runs, greater_is_better=higher
        )
        rows.append({"a": labels[i], "b": labels[j], **p})
    return pd.DataFrame(rows)


def _pair_words(row: pd.Series, metric: str) -> str:
    probs = (
        f"P({row['a']} better) = {row['p_a_better']:.2f}, P(practically equivalent) = {row['p_equivalent']:.2f}, "
        f"P({row['b']} better) = {row['p_b_better']:.2f}"
    )
    if row["p_a_better"] >= DECISIVE:
        outcome = f"{row['a']} is better"
    elif row["p_b_better"] >= DECISIVE:
        outcome = f"{row['b']} is better"
    elif row["p_equivalent"] >= DECISIVE:
        outcome = "practically equivalent"
    else:
        outcome = "undecided"
    difference = round(row["mean_difference"], 4) + 0.0  # no "-0.0000"
    return f"{row['a']} vs {row['b']}: {outcome} ({probs}; mean difference {difference:+.4f} {metric})"


def _verdict(c: Comparison, n: int) -> str:
    lines = []
    order = c.summary.sort_values("mean_rank")
    ranking = ", ".join(f"{label} ({r['mean_rank']:.2f})" for label, r in order.iterrows())
    lines.append(f"Ranking by mean rank over {n} outer folds (1 = best): {ranking}.")
    if c.friedman is not None:
        f = c.friedman
        head = (
            f"Friedman test: chi2 = {f['statistic']:.3f} on {f['df']} df, p = {f['p_value']:.3g}"
            f" ({len(c.labels)} studies, {n} outer folds)"
        )
        if f["p_value"] < 0.05:
            ranks = c.summary["mean_rank"]
            apart = [
                f"{a} and {b}"
                for a, b in itertools.combinations(c.labels, 2)
                if abs(ranks[a] - ranks[b]) > c.critical_difference
            ]
            lines.append(
                f"{head}: the studies differ. Nemenyi post-hoc test (critical difference of mean ranks "
                f"{c.critical_difference:.2f}): "
                + (f"{'; '.join(apart)} differ." if apart else "no single pair differs by the critical difference.")
            )
        else:
            lines.append(f"{head}: no evidence that the studies differ (which does not show they are equally good).")
    if c.test is not None:
        t = c.test
        lines.append(
            f"Corrected paired t-test ({c.labels[0]} - {c.labels[1]}): mean difference {t['mean']:+.4f}, 95% CI "
            f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}], t = {t['t']:.3f} on {t['df']} df, p = {t['p_value']:.3g}."
        )
    lines.append(f"Bayesian correlated t-test, ROPE ±{c.rope:g} {c.metric}:")
    lines += [f"  {_pair_words(row, c.metric)}" for _, row in c.pairs.iterrows()]
    lines.append(_bottom_line(c))
    return "\n".join(lines)


def _bottom_line(c: Comparison) -> str:
    """One sentence for someone who must pick: the first-ranked study, and how firmly the tests back it."""
    best = str(c.summary["mean_rank"].idxmin())
    wins, ties, open_ = [], [], []
    for _, row in c.pairs.iterrows():
        if best not in (row["a"], row["b"]):
            continue
        other, p_best = (row["b"], row["p_a_better"]) if row["a"] == best else (row["a"], row["p_b_better"])
        if p_best >= DECISIVE:
            wins.append(other)
        elif row["p_equivalent"] >= DECISIVE:
            ties.append(other)
        else:
            open_.append(other)
    said = [f"probably better than {', '.join(wins)}"] if wins else []
    said += [f"practically equivalent to {', '.join(ties)}"] if ties else []
    said += [f"not shown better than {', '.join(open_)} with these folds"] if open_ else []
    return f"Bottom line: {best} ranks first; it is {'; '.join(said)} (Bayesian, at {DECISIVE:g})."


def _caveats(k: int, n: int, cd: float, friedman: dict[str, float] | None, rope: float, metric: str) -> list[str]:
    out = []
    if k >= 3:
        # Every fold ranking the studies the same way gives the largest statistic, n (k - 1).
        p_min = float(stats.chi2.sf(n * (k - 1), k - 1))
        out.append(
            f"With {n} outer folds the Friedman test can at best reach p = {p_min:.3g} (every fold ranking the "
            f"{k} studies the same way); few folds can show little."
        )
    if cd >= k - 1:
        out.append(
            f"The Nemenyi critical difference ({cd:.2f}) is at least the largest possible difference of mean ranks "
            f"({k - 1}): with {n} outer folds it cannot tell any pair apart. More folds or repeats (cv.repeats) help."
        )
    if n < 10:
        out.append(
            f"{n} outer folds give wide posteriors: the Bayesian probabilities rarely become decisive (>= "
            f"{DECISIVE:g}) with fewer than about 10 folds; cv.repeats adds folds on the same data."
        )
    out += [
        f"The ROPE (±{rope:g} {metric}) says which differences do not matter in practice; choose it for the "
        "application (--rope), before looking at the results.",
        "Folds share training data; the corrected variance (Nadeau & Bengio 2003) accounts for that only "
        "approximately.",
    ]
    return out


def compare(
    *references: str,
    metric: str | None = None,
    rope: float | None = None,
    tracking_uri: str | None = None,
    alpha: float = 0.05,
    out: str | Path | None = None,
    write: bool = True,
    log: bool = True,
) -> Comparison:
    """Compare the studies ``references`` (two or more experiment names or run ids) on the test ``metric``
    (default: the first study's search metric), fold by fold over their shared outer splits.

    ``rope``: the region of practical equivalence in the metric's units (default per metric, see
    :data:`reproai.evaluation.ROPES`). Writes ``compare.html`` (self-contained), the figures and the tables
    to ``out`` (default ``reports/compare-<ids>``) and, with ``log``, logs them onto every study's run under
    ``comparisons/<ids>/``. Raises :class:`~reproai.errors.ReproaiError` for fewer than two distinct
    studies, studies on different outer splits, or an unknown metric.
    """
    if len(references) < 2:
        raise ReproaiError(f"compare needs at least two studies, but got {len(references)}: {', '.join(references)}.")
    if len(references) > len(string.ascii_uppercase):
        raise ReproaiError(f"compare takes at most {len(string.ascii_uppercase)} studies.")
    studies = [load_study(r, tracking_uri) for r in references]
    ids = [s.study.id for s in studies]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise ReproaiError(
            f"{', '.join(references)} name the same study more than once (study run {', '.join(repeated)}); "
            "compare different ones."
        )
    for other in studies[1:]:
        check_same_splits(studies[0], other)
    metric = metric or studies[0].metric
    higher = METRICS[metric].greater_is_better if metric in METRICS else True
    rope = comparisons.default_rope(metric) if rope is None else float(rope)
    if rope < 0 or not math.isfinite(rope):
        raise ReproaiError(f"--rope must be a finite number >= 0 (in {metric}'s units), but got {rope}.")
    bounds = metric_bounds(metric)
    if bounds is not None and math.isfinite(bounds[1] - bounds[0]) and rope >= (bounds[1] - bounds[0]) / 2:
        raise ReproaiError(
            f"--rope {rope:g} is at least half of {metric}'s range {list(bounds)}: every difference would count as "
            "practically none. Give the largest difference that does not matter "
            f"(default {comparisons.default_rope(metric):g})."
        )
    labels = [f"{string.ascii_uppercase[i]}: {s.name}" for i, s in enumerate(studies)]
    folds = _fold_table(studies, labels, metric)
    scores = folds[labels].to_numpy(dtype=float)
    n, k = scores.shape
    if n < 2:
        raise ReproaiError(f"The studies have {n} outer fold: a comparison needs at least 2 (cv.outer_folds).")
    runs = int(folds["repeat"].nunique())
    ratio = float(np.mean([s.test_train_ratio for s in studies]))
    summary = pd.DataFrame(
        [
            {
                "study": ids[i],
                **{
                    key: value
                    for key, value in corrected_t_interval(scores[:, i], test_train_ratio=ratio, bounds=bounds).items()
                    if key != "n"
                },
            }
            for i in range(k)
        ],
        index=pd.Index(labels),
    )
    summary["mean_rank"] = comparisons.mean_ranks(scores, greater_is_better=higher)
    friedman = comparisons.friedman_test(scores) if k >= 3 else None
    test = None
    if k == 2:
        test = corrected_paired_ttest((scores[:, 0] - scores[:, 1]).tolist(), test_train_ratio=ratio)
    comparison = Comparison(
        metric=metric,
        studies=ids,
        pairs=_pairs(scores, labels, rope, runs, higher),
        labels=labels,
        folds=folds,
        summary=summary,
        rope=rope,
        greater_is_better=higher,
        critical_difference=comparisons.nemenyi_critical_difference(k, n, alpha=alpha),
        nemenyi=comparisons.nemenyi_pvalues(scores, labels, greater_is_better=higher),
        friedman=friedman,
        test=test,
        verdict="",
    )
    comparison.verdict = _verdict(comparison, n)
    comparison.caveats = _caveats(k, n, comparison.critical_difference, friedman, rope, metric)
    comparison.figures = figures(comparison)
    # The metric is part of the name: a comparison on another metric does not overwrite this one.
    key = "-".join(i[:8] for i in ids) + f"-{metric}"
    if write:
        out_dir = Path(out) if out is not None else Path("reports") / f"compare-{key}"
        (out_dir / "figures").mkdir(parents=True, exist_ok=True)
        for name, png in comparison.figures.items():
            (out_dir / "figures" / f"{name}.png").write_bytes(png)
        (out_dir / "compare.html").write_text(render_html(comparison))
        folds.to_csv(out_dir / "folds.csv", index=False)
        summary.to_csv(out_dir / "summary.csv")
        comparison.pairs.to_csv(out_dir / "pairs.csv", index=False)
        comparison.nemenyi.to_csv(out_dir / "nemenyi.csv")
        (out_dir / "comparison.json").write_text(json.dumps(_facts(comparison), indent=2))
        comparison.out_dir = out_dir
    if log:
        _log(studies, comparison, f"comparisons/{key}")
    return comparison


def _facts(c: Comparison) -> dict[str, object]:
    """What the tables do not hold: the metric, the ROPE, the Friedman test, the critical difference."""
    return {
        "metric": c.metric,
        "greater_is_better": c.greater_is_better,
        "rope": c.rope,
        "studies": dict(zip(c.labels, c.studies, strict=True)),
        "friedman": c.friedman,
        "critical_difference": c.critical_difference,
        "corrected_paired_ttest": c.test,
        "verdict": c.verdict,
    }


def _log(studies: list[StudyData], c: Comparison, where: str) -> None:
    """Log the comparison's tables, figures and report onto every compared study's run."""
    page = render_html(c)
    for data in studies:
        run = data.tracker.run(data.study.id)
        run.log_table(c.folds, f"{where}/folds.json")
        run.log_table(c.summary.reset_index(), f"{where}/summary.json")
        run.log_table(c.pairs, f"{where}/pairs.json")
        run.log_table(c.nemenyi.reset_index(names="study"), f"{where}/nemenyi.json")
        run.log_dict(_facts(c), f"{where}/comparison.json")
        for name, png in c.figures.items():
            run.log_bytes(png, f"{where}/figures/{name}.png")
        run.log_text(page, f"{where}/compare.html")
