"""The model a study hands over: a fitted network logged as an MLflow model under its fold's run, and the
final model registered in the MLflow Model Registry with the alias ``final`` and its nested estimate.

Nested cross-validation estimates how well the *procedure* (search and refit) does on new data; the
model to deploy is the same procedure run once more on all the data, and the estimate to quote for it
is the nested one (e.g. Cawley & Talbot, JMLR 2010; Varma & Simon, BMC Bioinformatics 2006).
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

from reproai.data._source import ImageSet
from reproai.errors import ReproaiError
from reproai.nested._fits import StudyContext
from reproai.nested._folds import OuterFold
from reproai.nested._splits import has_final_stage
from reproai.tracking import Run
from reproai.tracking._tags import PREFIX, Tag
from reproai.training._fit import FitResult

__all__ = ["FINAL_ALIAS", "log_fitted_model", "logs_model", "is_final_model", "quote", "trained_on"]

FINAL_ALIAS = "final"


def is_final_model(ctx: StudyContext, fold: OuterFold) -> bool:
    """Whether this fold's refit is the study's final model: the final fold's, or with a single outer
    fold (and no repeats) that fold's own, which nothing would search again."""
    cv = ctx.experiment.cv
    if not cv.final_model:
        return False
    return fold.final or not has_final_stage(cv)


def logs_model(ctx: StudyContext, fold: OuterFold) -> bool:
    """Whether this fold's refit is logged as an MLflow model."""
    return is_final_model(ctx, fold) or (ctx.experiment.cv.log_refits and not fold.final)


def trained_on(all_data: bool) -> str:
    """What the final model was trained on, in words: ``all_data`` when a final stage made it, else it is
    the single outer fold's refit (see :func:`is_final_model`)."""
    if all_data:
        return "the same procedure, search and refit, run once more on all the data"
    return (
        "outer fold 0's refit, trained on that fold's training part: with a single outer fold the procedure "
        "is not run again on all the data"
    )


def quote(metric: str, estimate: dict[str, float]) -> str:
    """The sentence to quote with the final model: the procedure's nested test estimate."""
    n = int(estimate.get("n", 0))
    if n > 1:
        return (
            f"the procedure's test {metric} is {estimate['mean']:.4f} [95% CI {estimate['ci_low']:.4f}, "
            f"{estimate['ci_high']:.4f}] over {n} outer folds (nested cross-validation)"
        )
    return f"the procedure's test {metric} is {estimate['mean']:.4f} on one held-out test set (no interval)"


def log_fitted_model(
    ctx: StudyContext, fold: OuterFold, fold_run: Run, result: FitResult, data: ImageSet
) -> str | None:
    """Log the fit's model (trained on ``data``, whose intensity policy it keeps) under ``fold_run``
    (``model/``) and, for the final model, register it as
    ``<experiment name>@final`` with tags linking it to the study and its nested estimate. Returns its URI.

    A model that cannot be exported leaves the study's results as they are: a warning, a tag on the fold
    run saying why, and None.
    """
    from reproai.export import save_model

    training = ctx.experiment.training
    final = is_final_model(ctx, fold)
    estimate = ctx.estimate or {}
    info: dict[str, Any] = {
        Tag.STUDY_ID: ctx.study_run.id,
        Tag.METRIC: ctx.metric,
        **({f"{PREFIX}estimate_{k}": int(v) if k == "n" else v for k, v in estimate.items()}),
    }
    try:
        with tempfile.TemporaryDirectory() as tmp:
            local = save_model(
                Path(tmp) / "model",
                result.model,
                info=ctx.info,
                classes=data.classes,
                threshold=result.threshold,
                batch_size=training.eval_batch_size or training.batch_size,
                channels_last=training.channels_last is not False,
                example_image=data.images[int(fold.train[0])],
                intensity=data.intensity,
                metadata_tags=info,
            )
            uri = ctx.tracker.log_model(fold_run.id, str(local), "model")
    except ReproaiError as e:
        warnings.warn(f"{fold.key}: {e}", stacklevel=2)
        fold_run.set_tags({Tag.MODEL_ERROR: str(e)[:5000]})
        return None
    tags: dict[str, Any] = {Tag.MODEL_URI: uri}
    if final:
        registered = None
        if ctx.register_model:
            registered = ctx.tracker.register_model(
                uri,
                ctx.experiment.name,
                alias=FINAL_ALIAS,
                tags={
                    **info,
                    f"{PREFIX}n_outer_folds": int(estimate.get("n", 1)),
                    f"{PREFIX}quote": quote(ctx.metric, estimate) if estimate else "",
                    f"{PREFIX}run_id": fold_run.id,
                    f"{PREFIX}trained_on": trained_on(fold.final),
                },
            )
        tags[Tag.FINAL_MODEL] = registered or uri
        ctx.study_run.set_tags({Tag.FINAL_MODEL: registered or uri, Tag.FINAL_MODEL_RUN: uri})
    fold_run.set_tags(tags)
    return uri
