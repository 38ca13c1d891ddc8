"""The comparison's figures (critical-difference diagram, scores per fold, the pairs' posterior
probabilities) and its report: one self-contained HTML page, readable from 800 px wide."""

from __future__ import annotations

import base64
import html
import io

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from reproai.analysis._comparison import Comparison

__all__ = ["figures", "render_html"]


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return buffer.getvalue()


def _critical_difference(c: Comparison) -> Figure:
    """Demšar's diagram: mean ranks on an axis, studies that the Nemenyi test cannot tell apart joined."""
    import scikit_posthocs as sp

    fig = Figure(figsize=(7, 1.2 + 0.35 * len(c.labels)))
    ax = fig.subplots()
    # The critical difference goes in the title: drawn as a bar, it would lie over the rank axis' labels.
    colours = {label: f"C{i}" for i, label in enumerate(c.labels)}  # the per-fold figure's colours
    sp.critical_difference_diagram(c.summary["mean_rank"], c.nemenyi, ax=ax, color_palette=colours)
    ax.set_title(f"Mean rank of test {c.metric} (1 = best); CD = {c.critical_difference:.2f}", fontsize=10, pad=22)
    return fig


def _per_fold(c: Comparison) -> Figure:
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    x = np.arange(len(c.folds))
    for i, label in enumerate(c.labels):
        ax.plot(x, c.folds[label], marker="o", lw=1, label=label, color=f"C{i}")
    repeats = c.folds["repeat"].nunique() > 1
    ticks = [f"{r}-{f}" if repeats else str(f) for r, f in zip(c.folds["repeat"], c.folds["outer_fold"], strict=True)]
    ax.set_xticks(x, ticks)
    ax.set(xlabel="outer fold", ylabel=f"test {c.metric}", title=f"Test {c.metric} per outer fold")
    ax.legend(fontsize="small")
    return fig


def _probabilities(c: Comparison) -> Figure:
    fig = Figure(figsize=(7, 0.9 + 0.5 * len(c.pairs)))
    ax = fig.subplots()
    y = np.arange(len(c.pairs))[::-1]
    left = np.zeros(len(c.pairs))
    for column, colour, name in (
        ("p_a_better", "#4c72b0", "first better"),
        ("p_equivalent", "#bbbbbb", "practically equivalent"),
        ("p_b_better", "#dd8452", "second better"),
    ):
        values = c.pairs[column].to_numpy()
        ax.barh(y, values, left=left, color=colour, label=name)
        left += values
    ax.set_yticks(
        y, [f"{a.split(':')[0]} vs {b.split(':')[0]}" for a, b in zip(c.pairs["a"], c.pairs["b"], strict=True)]
    )
    ax.set(xlim=(0, 1), xlabel="posterior probability", title=f"Bayesian correlated t-test, ROPE ±{c.rope:g}")
    ax.legend(fontsize="small", loc="lower center", bbox_to_anchor=(0.5, 1.12), ncol=3, frameon=False)
    return fig


def figures(c: Comparison) -> dict[str, bytes]:
    """The comparison's figures as PNG bytes, by file name."""
    return {
        "critical_difference": _png(_critical_difference(c)),
        "per_fold": _png(_per_fold(c)),
        "bayesian_probabilities": _png(_probabilities(c)),
    }


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;font-size:.9em}td,th{padding:.2em .6em;border-bottom:1px solid #eee;text-align:right;
white-space:nowrap}th:first-child,td:first-child,tbody th{text-align:left}.wide{overflow-x:auto}
figure{margin:.5em 0}figure img{max-width:100%;height:auto;border:1px solid #eee}pre{white-space:pre-wrap;
background:#f6f6f6;padding:1em;font-size:.9em}li{margin:.3em 0}"""


def _table(frame: pd.DataFrame, *, index: bool = True) -> str:
    return "<div class='wide'>" + frame.to_html(index=index, float_format=lambda v: f"{v:.4f}", border=0) + "</div>"


def render_html(c: Comparison) -> str:
    """The comparison as one HTML page that needs no network and no other file."""
    e = html.escape
    studies = pd.DataFrame({"study run": c.studies}, index=pd.Index(c.labels, name="label"))
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><meta name='viewport' content='width=device-width'>"
        f"<title>Comparison of {len(c.labels)} studies</title><style>{_CSS}</style></head><body>",
        f"<h1>Comparison of {len(c.labels)} studies on test {e(c.metric)}</h1>",
        _table(studies),
        "<h2>Verdict</h2>",
        f"<pre>{e(c.verdict)}</pre>",
        "<h2>Caveats</h2><ul>",
        *[f"<li>{e(line)}</li>" for line in c.caveats],
        "</ul>",
        "<h2>Per study</h2><p>Mean over outer folds with the Nadeau-Bengio corrected 95% interval, and the mean "
        "rank over folds (1 = best).</p>",
        _table(c.summary.drop(columns=["study"])),
    ]
    for name, caption in (
        (
            "critical_difference",
            "Critical-difference diagram (Demšar 2006): studies joined by a bar are not "
            "told apart by the Nemenyi test at the 0.05 level.",
        ),
        ("per_fold", "The metric per outer fold: the folds are the blocks every test pairs on."),
        ("bayesian_probabilities", "Posterior probabilities per pair (Benavoli et al. 2017)."),
    ):
        data = base64.b64encode(c.figures[name]).decode()
        parts.append(
            f"<figure><img src='data:image/png;base64,{data}' alt='{name}'><figcaption>{e(caption)}"
            "</figcaption></figure>"
        )
    parts += [
        "<h2>Pairs</h2>",
        _table(c.pairs.set_index(["a", "b"])),
        "<h2>Nemenyi p-values</h2>",
        _table(c.nemenyi),
        "<h2>Per outer fold</h2>",
        _table(c.folds, index=False),
        "<p>Methods: Friedman test and Nemenyi post-hoc test with the critical-difference diagram (J. Demšar, "
        "JMLR 7:1-30, 2006); Bayesian correlated t-test with a region of practical equivalence (A. Benavoli, "
        "G. Corani, J. Demšar, M. Zaffalon, JMLR 18(77):1-36, 2017), through the baycomp package; corrected "
        "resampled t (C. Nadeau, Y. Bengio, Machine Learning 52:239-281, 2003).</p></body></html>",
    ]
    return "\n".join(parts)
