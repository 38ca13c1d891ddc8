"""`reproai compare` of k studies end to end: three studies on the same splits, and one on other splits."""

import re

import pytest
from mlflow import MlflowClient

from reproai.analysis import compare
from reproai.cli import main
from reproai.errors import ReproaiError
from tests.conftest import tiny_config_text

CV = "CrossValidation(outer_folds=3, inner_folds=1)"


@pytest.fixture(scope="module")
def studies(tmp_path_factory):
    """Three head sizes on the same splits (the same seed), and one on other splits (another seed)."""
    root = tmp_path_factory.mktemp("compare")
    uri, storage = f"sqlite:///{root / 'mlflow.db'}", f"sqlite:///{root / 'optuna.db'}"
    for name, extra in [
        ("head-4", "\nexperiment.model.head.hidden = 4"),
        ("head-16", "\nexperiment.model.head.hidden = 16"),
        ("head-64", "\nexperiment.model.head.hidden = 64"),
        ("other-splits", "\nexperiment.seed = 99"),
    ]:
        path = root / f"{name}.py"
        path.write_text(tiny_config_text(name=name, extra=extra, cv=CV, epochs=3))
        assert main(["run", str(path), "--tracking-uri", uri, "--storage", storage, "--quiet", "--no-summary"]) == 0
    return root, uri


@pytest.mark.slow
def test_compare_three_studies_ranks_tests_and_reports(studies, capsys, monkeypatch):
    root, uri = studies
    monkeypatch.chdir(root)
    assert main(["compare", "head-4", "head-16", "head-64", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Ranking by mean rank over 3 outer folds \(1 = best\): [ABC]: head-\d+ \(\d\.\d\d\)", out)
    assert re.search(r"Friedman test: chi2 = \d+\.\d+ on 2 df, p = ", out)
    # every pair's three posterior probabilities, and the caveat on how little 3 folds can show
    assert len(re.findall(r"P\(practically equivalent\) = \d\.\d\d", out)) == 3
    assert "With 3 outer folds the Friedman test can at best reach p =" in out
    assert re.search(r"Bottom line: [ABC]: head-\d+ ranks first; it is ", out)
    (folder,) = root.glob("reports/compare-*-roc_auc")
    assert {p.name for p in folder.iterdir()} >= {"comparison.json", "nemenyi.csv", "pairs.csv", "summary.csv"}
    report = (folder / "compare.html").read_text()
    assert report.count("data:image/png;base64,") == 3 and "Critical-difference diagram" in report
    assert "Corrected paired t-test" not in out  # three studies: the pairwise t-tests would inflate errors
    # the comparison is logged onto each study run
    client = MlflowClient(uri)
    for name in ("head-4", "head-16", "head-64"):
        run = client.search_runs([client.get_experiment_by_name(name).experiment_id], "tags.`reproai.level` = 'study'")[
            0
        ]
        (folder,) = client.list_artifacts(run.info.run_id, "comparisons")
        names = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(run.info.run_id, folder.path)}
        assert {"folds.json", "summary.json", "pairs.json", "nemenyi.json", "comparison.json", "compare.html"} <= names


@pytest.mark.slow
def test_compare_two_keeps_the_corrected_t_test_and_a_loss_ranks_lowest_first(studies):
    root, uri = studies
    result = compare("head-4", "head-64", tracking_uri=uri, metric="log_loss", write=False, log=False)
    assert result.test is not None and result.test["df"] == 2 and result.friedman is None
    assert "Corrected paired t-test (A: head-4 - B: head-64)" in result.verdict
    a, b = result.folds[result.labels[0]], result.folds[result.labels[1]]
    assert result.pairs.loc[0, "mean_difference"] == pytest.approx((a - b).mean())
    better = result.labels[int(result.summary["mean"].to_numpy().argmin())]  # the lower loss
    ranks = result.summary["mean_rank"]
    assert ranks[better] <= ranks.max() and result.rope == 0.02
    # a metric of the analysis that is not a registered one (multi-class micro ROC AUC): higher is better
    micro = compare("head-4", "head-64", tracking_uri=uri, metric="roc_auc_micro", write=False, log=False)
    assert micro.greater_is_better and len(micro.folds) == 3
    # intervals stay inside the metric's range, as run and analyze print them
    assert (micro.summary["ci_high"] <= 1.0).all() and (result.summary["ci_low"] >= 0.0).all()


@pytest.mark.slow
def test_compare_refuses_other_splits_one_study_and_the_same_study_twice(studies):
    _, uri = studies
    with pytest.raises(ReproaiError, match="outer test sets differ .* mlflow artifacts download .* cv.splits_file"):
        compare("head-4", "head-16", "other-splits", tracking_uri=uri, write=False, log=False)
    with pytest.raises(ReproaiError, match="at least two studies"):
        compare("head-4", tracking_uri=uri)
    with pytest.raises(ReproaiError, match="the same study more than once"):
        compare("head-4", "head-4", tracking_uri=uri)
    with pytest.raises(ReproaiError, match="--rope must be"):
        compare("head-4", "head-16", tracking_uri=uri, rope=-1, write=False, log=False)
    with pytest.raises(ReproaiError, match="at least half of roc_auc's range"):
        compare("head-4", "head-16", tracking_uri=uri, rope=0.5, write=False, log=False)
