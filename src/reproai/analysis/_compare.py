"""``reproai compare``: two studies on the same splits, tested fold by fold."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from reproai.analysis._evaluate import fold_metrics
from reproai.analysis._load import StudyData, load_study
from reproai.errors import ReproaiError
from reproai.evaluation._metrics import METRICS
from reproai.evaluation._stats import corrected_paired_ttest

__all__ = ["Comparison", "compare", "check_same_splits"]


@dataclass
class Comparison:
    """Paired per-fold scores of studies A and B, the corrected t-test, and a verdict in words."""

    metric: str
    a: str
    b: str
    folds: pd.DataFrame
    test: dict[str, float]
    verdict: str
    caveats: list[str] = field(default_factory=list)


def _outer_tests(data: StudyData) -> dict[tuple[int, int], list[str]]:
    ids = data.splits.get("ids", [])
    return {(f["repeat"], f["fold"]): sorted(ids[i] for i in f["test"]) for f in data.splits.get("outer", [])}


def check_same_splits(a: StudyData, b: StudyData) -> None:
    """Raise unless both studies have the same outer folds with the same test examples."""
    ta, tb = _outer_tests(a), _outer_tests(b)
    if not ta or not tb:
        raise ReproaiError("Cannot compare: a study has no logged splits.json.")
    if ta.keys() != tb.keys():
        raise ReproaiError(
            f"Cannot compare: study {a.study.id} has outer folds {sorted(ta)} but study {b.study.id} has "
            f"{sorted(tb)}. Run both with the same cv settings (or cv.splits_file)."
        )
    differ = [k for k in ta if ta[k] != tb[k]]
    if differ:
        raise ReproaiError(
            f"Cannot compare: the outer test sets of studies {a.study.id} and {b.study.id} differ in "
            f"fold(s) {differ}, so per-fold differences would not be paired. Run B on A's splits: "
            f"download splits.json from study run {a.study.id} and set cv.splits_file to it."
        )


def compare(
    a: str, b: str, *, metric: str | None = None, tracking_uri: str | None = None, alpha: float = 0.05
) -> Comparison:
    """Compare studies ``a`` and ``b`` (experiment names or run ids) on ``metric`` (default: A's search metric)."""
    sa, sb = load_study(a, tracking_uri), load_study(b, tracking_uri)
    if sa.study.id == sb.study.id:
        raise ReproaiError(f"{a!r} and {b!r} are the same study ({sa.study.id}); compare two different studies.")
    check_same_splits(sa, sb)
    metric = metric or sa.metric
    fa, fb = fold_metrics(sa.predictions, sa.classes), fold_metrics(sb.predictions, sb.classes)
    if metric not in fa.columns:
        raise ReproaiError(
            f"Unknown metric {metric!r}; choose one of "
            f"{[c for c in fa.columns if c not in ('repeat', 'outer_fold', 'n')]}."
        )
    folds = fa[["repeat", "outer_fold", metric]].merge(
        fb[["repeat", "outer_fold", metric]], on=["repeat", "outer_fold"], suffixes=("_a", "_b")
    )
    folds["difference"] = folds[f"{metric}_a"] - folds[f"{metric}_b"]
    test = corrected_paired_ttest(
        folds["difference"].tolist(), test_train_ratio=sa.test_train_ratio, confidence=1 - alpha
    )
    higher_better = METRICS[metric].greater_is_better if metric in METRICS else True
    k = len(folds)
    summary = (
        f"mean difference A - B in test {metric}: {test['mean']:+.4f}, {100 * (1 - alpha):.0f}% CI "
        f"[{test['ci_low']:+.4f}, {test['ci_high']:+.4f}], corrected t = {test['t']:.3f} on {test['df']} df, "
        f"p = {test['p_value']:.3g}"
    )
    if k < 2:
        verdict = f"Only {k} outer fold: no test is possible. {summary}"
    elif test["p_value"] < alpha:
        better = "A" if (test["mean"] > 0) == higher_better else "B"
        verdict = (
            f"{better} is better than {'B' if better == 'A' else 'A'} on test {metric} at the {alpha:g} level "
            f"(Nadeau-Bengio corrected resampled t-test over {k} outer folds): {summary}."
        )
    else:
        verdict = (
            f"No evidence of a difference in test {metric} at the {alpha:g} level over {k} outer folds: "
            f"{summary}. This does not show that A and B are equally good."
        )
    caveats = [
        f"With {k} outer folds the test has little power; more folds or repeats (cv.repeats) narrow the interval.",
        "The correction accounts for overlapping training sets between folds, but it is an approximation; it "
        "is conservative rather than exact.",
        "A significant difference may still be too small to matter; judge the interval, not only the p-value.",
        "Comparing many pairs of studies inflates false positives; correct for multiple comparisons.",
    ]
    return Comparison(metric, sa.study.id, sb.study.id, folds, test, verdict, caveats)
