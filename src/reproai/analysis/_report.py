"""The study report: a self-contained HTML page (figures embedded as data URIs) and a Markdown twin."""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from reproai.evaluation._stats import BOUNDS_NOTE

__all__ = ["ReportContent", "worst_examples", "load_thumbnails", "render_html", "render_markdown"]


@dataclass
class ReportContent:
    """What the report shows; figures as PNG bytes by file name."""

    title: str
    facts: dict[str, str]
    headline: pd.DataFrame
    folds: pd.DataFrame
    bootstrap: pd.DataFrame
    best_params: pd.DataFrame
    splits: pd.DataFrame
    figures: dict[str, bytes]
    config_name: str
    config_text: str
    environment: dict[str, Any]
    worst: pd.DataFrame = field(default_factory=pd.DataFrame)
    thumbnails: dict[str, bytes] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    by_group: Any = None  # a GroupAnalysis, when the metrics were also computed per group
    final_model: dict[str, Any] = field(default_factory=dict)  # uri, quote, and the params table


def worst_examples(predictions: pd.DataFrame, classes: list[str], k: int = 12) -> pd.DataFrame:
    """The ``k`` test examples with the lowest predicted probability of their true class."""
    if "probability" in predictions.columns:
        p = predictions["probability"].to_numpy()
        p_true = np.where(predictions["label"].to_numpy() == 1, p, 1 - p)
    else:
        proba = predictions[[f"probability_{c}" for c in classes]].to_numpy()
        p_true = proba[np.arange(len(proba)), predictions["label"].to_numpy()]
    out = predictions.assign(p_true=p_true).nsmallest(k, "p_true")
    return out.assign(
        true_class=[classes[i] for i in out["label"]], predicted_class=[classes[i] for i in out["predicted"]]
    )[["id", "repeat", "outer_fold", "true_class", "predicted_class", "p_true"]].reset_index(drop=True)


def load_thumbnails(resolved: dict[str, Any], ids: list[str], *, size: int = 112) -> dict[str, bytes]:
    """PNG thumbnails of the examples ``ids``, read from the study's data as its resolved config names it."""
    from reproai.config._tree import first_values, from_jsonable
    from reproai.data._images import decode_image
    from reproai.data._loading import list_source

    experiment = from_jsonable(resolved)
    source = list_source(experiment.data, seed=experiment.seed)
    intensity = first_values(experiment.data).intensity  # shown as the study's first policy decodes them
    where = {i: n for n, i in enumerate(source.ids)}
    out = {}
    for example in ids:
        n = where.get(example)
        if n is None:
            continue
        if source.arrays is not None:
            image = Image.fromarray(source.arrays[n]).resize((size, size), Image.Resampling.NEAREST)
        else:
            assert source.paths is not None  # a source holds either arrays or files
            path = source.paths[n]
            image = Image.fromarray(decode_image(path.read_bytes(), size, name=str(path), intensity=intensity))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        out[example] = buffer.getvalue()
    return out


def _uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _fmt(v: Any) -> str:
    if isinstance(v, (float, np.floating)):
        return "" if np.isnan(v) else f"{v:.4f}"
    return str(v)


def _html_table(df: pd.DataFrame, index: bool = True) -> str:
    return (
        "<div class='wide'>" + df.to_html(index=index, float_format=_fmt, border=0, classes="t", na_rep="") + "</div>"
    )


def _md_table(df: pd.DataFrame, index: bool = True) -> str:
    df = df.reset_index() if index else df
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


_CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
h1{font-size:1.6em}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table.t{border-collapse:collapse;font-size:.9em}table.t td,table.t th{padding:.2em .6em;border-bottom:1px solid #eee;
text-align:right}dl{display:grid;grid-template-columns:max-content auto;gap:.2em 1em}dt{font-weight:600}
figure{display:inline-block;margin:.5em;vertical-align:top}figure img{max-width:520px;border:1px solid #eee}
.thumbs figure img{width:112px;image-rendering:pixelated}pre{background:#f6f6f6;padding:1em;overflow:auto;
font-size:.85em}.note{color:#8a5a00}.wide{overflow-x:auto}"""

# Lets a headless browser (the report test) see that every embedded image decoded.
_SCRIPT = """window.addEventListener('load',function(){var i=document.images,ok=0;for(var k=0;k<i.length;k++)
{if(i[k].complete&&i[k].naturalWidth>0)ok++}document.body.setAttribute('data-images',i.length);
document.body.setAttribute('data-images-loaded',ok)});"""


_FINAL_PARAMS = "The hyperparameters its own search chose (each outer fold's are under Chosen hyperparameters):"


def render_html(report: ReportContent) -> str:
    """The report as one HTML page that needs no network and no other file."""
    e = html.escape
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{e(report.title)}</title>",
        f"<style>{_CSS}</style><script>{_SCRIPT}</script></head><body>",
        f"<h1>{e(report.title)}</h1>",
    ]
    parts.append("<dl>" + "".join(f"<dt>{e(k)}</dt><dd>{e(v)}</dd>" for k, v in report.facts.items()) + "</dl>")
    parts += [f"<p class='note'>{e(n)}</p>" for n in report.notes]
    parts += [
        "<h2>Headline: test metrics across outer folds</h2>",
        "<p>mean, sample std, and 95% intervals: <code>ci_*</code> Nadeau-Bengio corrected resampled t "
        "(accounts for overlapping training sets), <code>t_ci_*</code> plain Student t (optimistic). "
        f"{e(BOUNDS_NOTE)}</p>",
        _html_table(report.headline),
        "<h2>Pooled out-of-fold predictions, with a bootstrap interval</h2>",
        _html_table(report.bootstrap),
        "<h2>Per outer fold</h2>",
        _html_table(report.folds, index=False),
    ]
    if report.final_model:
        f = report.final_model
        parts += [
            "<h2>Final model</h2>",
            f"<p><code>{e(f['uri'])}</code>: {e(f['trained_on'])}. "
            f"Quote it with its nested estimate: <b>{e(f['quote'])}</b>.</p>",
        ]
        if not f["params"].empty:
            parts += [
                f"<p>{_FINAL_PARAMS}</p>",
                _html_table(f["params"], index=False),
            ]
    if report.by_group is not None:
        g = report.by_group
        parts += [
            "<h2>Group level: each group's prediction the mean of its images'</h2>",
            f"<p>{len(g.predictions)} group predictions over the outer folds.</p>",
            _html_table(g.summary),
            "<h3>Pooled, with a bootstrap interval over groups</h3>",
            _html_table(g.bootstrap),
            "<h3>Per outer fold</h3>",
            _html_table(g.folds, index=False),
        ]
    if not report.best_params.empty:
        parts += ["<h2>Chosen hyperparameters</h2>", _html_table(report.best_params, index=False)]
    parts += ["<h2>Splits</h2>", _html_table(report.splits, index=False), "<h2>Figures</h2>"]
    for name, png in report.figures.items():
        parts.append(f"<figure><img src='{_uri(png)}' alt='{e(name)}'><figcaption>{e(name)}</figcaption></figure>")
    if not report.worst.empty:
        parts.append("<h2>Worst-classified test examples</h2><div class='thumbs'>")
        for row in report.worst.itertuples(index=False):
            thumb = report.thumbnails.get(row.id)
            img = f"<img src='{_uri(thumb)}' alt='{e(row.id)}'>" if thumb else ""
            parts.append(
                f"<figure>{img}<figcaption>{e(row.id)}<br>true {e(row.true_class)}, predicted "
                f"{e(row.predicted_class)}<br>P(true) {row.p_true:.3f}</figcaption></figure>"
            )
        parts.append("</div>")
    parts += [
        f"<h2>Config: {e(report.config_name)}</h2><pre>{e(report.config_text)}</pre>",
        "<h2>Environment</h2>",
        f"<pre>{e(_environment_text(report.environment))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def _environment_text(env: dict[str, Any]) -> str:
    import json

    return json.dumps(env, indent=2, sort_keys=True, default=str)


def render_markdown(report: ReportContent, figure_dir: str = "figures") -> str:
    """The report as Markdown, linking to the figures in ``figure_dir``."""
    lines = [f"# {report.title}", ""]
    lines += [f"- **{k}**: {v}" for k, v in report.facts.items()] + [""]
    lines += [f"> {n}" for n in report.notes]
    lines += [
        "## Headline: test metrics across outer folds",
        "",
        "`ci_*`: Nadeau-Bengio corrected resampled t interval; `t_ci_*`: plain Student t (optimistic).",
        BOUNDS_NOTE,
        "",
        _md_table(report.headline),
        "",
        "## Pooled out-of-fold predictions, with a bootstrap interval",
        "",
        _md_table(report.bootstrap),
        "",
        "## Per outer fold",
        "",
        _md_table(report.folds, index=False),
        "",
    ]
    if report.final_model:
        f = report.final_model
        lines += [
            "## Final model",
            "",
            f"`{f['uri']}`: {f['trained_on']}. Quote it with its nested estimate: **{f['quote']}**.",
            "",
        ]
        if not f["params"].empty:
            lines += [_FINAL_PARAMS, "", _md_table(f["params"], index=False), ""]
    if report.by_group is not None:
        g = report.by_group
        lines += [
            "## Group level: each group's prediction the mean of its images'",
            "",
            _md_table(g.summary),
            "",
            "Pooled, with a bootstrap interval over groups:",
            "",
            _md_table(g.bootstrap),
            "",
            _md_table(g.folds, index=False),
            "",
        ]
    if not report.best_params.empty:
        lines += ["## Chosen hyperparameters", "", _md_table(report.best_params, index=False), ""]
    lines += ["## Splits", "", _md_table(report.splits, index=False), "", "## Figures", ""]
    lines += [f"![{name}]({figure_dir}/{name}.png)" for name in report.figures] + [""]
    if not report.worst.empty:
        lines += ["## Worst-classified test examples", "", _md_table(report.worst, index=False), ""]
    lines += [f"## Config: {report.config_name}", "", "```python", report.config_text.rstrip(), "```", ""]
    return "\n".join(lines)
