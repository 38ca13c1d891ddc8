"""The fit plan: what the study ran is what ``fit.json`` holds, and what ``reproai rerun`` decodes and runs."""

import json

import numpy as np
import pytest

import reproai.nested._fits as fits
from reproai.cli import main
from reproai.nested import FitPlan, InnerFold, OuterFold, Splits
from reproai.tracking import MlflowTracker
from tests.conftest import tiny_config_text

SEARCH = """
experiment.model.head.dropout = hp.float(0.0, 0.5)
experiment.search.n_trials = 2
"""


def _splits() -> Splits:
    a = np.arange(20)
    inner = [InnerFold(train=a[:8], dev=a[8:12])]
    outer = OuterFold(repeat=0, fold=1, train=a[:12], test=a[12:], inner=inner)
    final = OuterFold(repeat=0, fold=0, train=a, test=a[:0], inner=inner, final=True)
    return Splits(outer=[outer], ids=[str(i) for i in a], final=final)


def test_each_kind_of_plan_gives_its_subsets_and_round_trips():
    splits = _splits()
    fold = splits.outer[0]
    refit = FitPlan("refit", 0, 1, seed=3, params={"x": 1}, epochs=[1, 2], threshold=0.4)
    subsets = refit.subsets(splits)
    assert np.array_equal(subsets.train, fold.train) and subsets.dev is None and np.array_equal(subsets.test, fold.test)
    # The final fold has no test set: its refit predicts nothing held out, in the study and in a rerun alike.
    final_refit = FitPlan("refit", 0, 0, seed=3, final=True, epochs=[1, 2])
    assert final_refit.subsets(splits).test is None and len(final_refit.subsets(splits).train) == 20
    inner = FitPlan("inner", 0, 1, seed=5, inner_fold=0, params={"x": 2})
    subsets = inner.subsets(splits)
    assert np.array_equal(subsets.dev, fold.inner[0].dev) and subsets.test is None
    single = FitPlan("single", 0, 1, seed=6, inner_fold=0)
    assert np.array_equal(single.subsets(splits).test, fold.test)
    for plan in (refit, final_refit, inner, single):
        # fit.json holds the plan and, beside it, the fit's results (its fitted threshold among them)
        record = {**plan.to_dict(), "threshold": plan.threshold if plan.kind == "refit" else 0.7, "best_epochs": {}}
        assert FitPlan.from_dict(json.loads(json.dumps(record))) == plan


def test_a_plan_for_a_fold_the_splits_do_not_have_is_refused():
    with pytest.raises(Exception, match="no outer fold 4 of repeat 0"):
        FitPlan("refit", 0, 4, seed=1, epochs=[1]).subsets(_splits())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("space", "kinds"),
    [
        (SEARCH, {("inner", False), ("inner", True), ("refit", False), ("refit", True)}),
        ("", {("single", False), ("single", True)}),
    ],
    ids=["search", "no-search"],
)
def test_the_plan_decoded_from_fit_json_is_the_plan_the_study_ran(write_config, tmp_path, monkeypatch, space, kinds):
    ran = {}
    real = fits.log_fit

    def spy(run, data, result, plan):
        ran[run.id] = plan
        return real(run, data, result, plan)

    monkeypatch.setattr(fits, "log_fit", spy)
    cv = "CrossValidation(outer_folds=2, inner_folds=2)"
    path = write_config(tiny_config_text(name="plan", extra=space, cv=cv, epochs=1, final_model=True))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["run", str(path), "--tracking-uri", uri, "--storage", f"sqlite:///{tmp_path}/o.db", "--quiet"]) == 0
    tracker = MlflowTracker("plan", uri)
    assert {(p.kind, p.final) for p in ran.values()} == kinds
    for run_id, plan in ran.items():
        assert FitPlan.from_dict(json.loads(tracker.read_text(run_id, "fit.json"))) == plan
