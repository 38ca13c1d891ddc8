"""`reproai analyze` and `reproai compare` end to end on real (small) studies, and the report in Chromium."""

import os
import re
import shutil
import subprocess

import pytest
from mlflow import MlflowClient

from reproai.analysis import analyze, compare, load_study
from reproai.cli import main
from reproai.errors import ReproaiError
from tests.conftest import REPO, make_image_folder, tiny_config_text

QUICKSTART = str(REPO / "configs" / "quickstart.py")
SMALL = [
    "--set",
    "data.limit=300",
    "--set",
    "cv.outer_folds=2",
    "--set",
    "search.n_trials=3",
    "--set",
    "training.phases.train.epochs=2",
    "--quiet",
]
FIGURES = {
    "roc",
    "precision_recall",
    "probability_density",
    "calibration",
    "confusion_matrix",
    "chosen_params",
    *(f"search_{kind}_outer-0-{f}" for kind in ("history", "importances") for f in (0, 1)),
}


@pytest.fixture(scope="module")
def quickstart_study(tmp_path_factory):
    """The quickstart config, made smaller, run once for this module."""
    root = tmp_path_factory.mktemp("quickstart")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    storage = f"sqlite:///{root / 'optuna.db'}"
    assert main(["run", QUICKSTART, "--tracking-uri", uri, "--storage", storage, *SMALL]) == 0
    return root, uri, storage


@pytest.mark.slow
def test_analyze_writes_report_figures_and_logs_back(quickstart_study, tmp_path, capsys):
    _, uri, _ = quickstart_study
    out = tmp_path / "report"
    assert main(["analyze", "quickstart", "--tracking-uri", uri, "--out", str(out), "--bootstrap", "200"]) == 0
    printed = capsys.readouterr().out
    assert "Nadeau-Bengio" in printed and "roc_auc" in printed and "bootstrap" in printed
    assert {p.stem for p in (out / "figures").glob("*.png")} == FIGURES
    html = (out / "report.html").read_text()
    # every figure and a thumbnail per worst-classified example are embedded; nothing is fetched
    assert html.count("src='data:image/png;base64,") == len(FIGURES) + 12
    assert "http://" not in html and "https://" not in html
    md = (out / "report.md").read_text()
    assert all(f"(figures/{name}.png)" in md for name in FIGURES) and "Nadeau-Bengio" in md

    client = MlflowClient(uri)
    study = load_study("quickstart", uri).study
    run = client.get_run(study.id)
    summary = __import__("pandas").read_csv(out / "summary.csv", index_col=0)
    assert run.data.metrics["analysis_roc_auc_mean"] == pytest.approx(summary.loc["roc_auc", "mean"])
    assert run.data.metrics["analysis_accuracy_ci_low"] == pytest.approx(summary.loc["accuracy", "ci_low"])
    assert "analysis_roc_auc_boot_low" in run.data.metrics
    # the fold means equal what `reproai run` logged from its own metrics
    assert summary.loc["roc_auc", "mean"] == pytest.approx(run.data.metrics["test_roc_auc_mean"])
    logged = {a.path for a in client.list_artifacts(study.id, "analysis")}
    assert {"analysis/report.html", "analysis/report.md", "analysis/summary.json", "analysis/figures"} <= logged
    assert len(client.list_artifacts(study.id, "analysis/figures")) == len(FIGURES)
    # analysing again logs no duplicate metric history
    analyze("quickstart", tracking_uri=uri, out=tmp_path / "again", n_resamples=200)
    assert len(client.get_metric_history(study.id, "analysis_roc_auc_mean")) == 1


def test_analyze_finds_the_study_from_any_run_in_it(quickstart_study):
    _, uri, _ = quickstart_study
    study = load_study("quickstart", uri)
    trial = study.level("trial")[0]
    result = analyze(trial.id, tracking_uri=uri, log=False, write=False, n_resamples=100)
    assert result.study_id == study.study.id
    assert list(result.folds["outer_fold"]) == [0, 1] and set(result.best_params.columns) >= {"model.head.dropout"}


def test_analyze_names_unknown_studies(quickstart_study, capsys):
    _, uri, _ = quickstart_study
    assert main(["analyze", "quickstrat", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert "quickstrat" in err and "'quickstart'" in err


@pytest.mark.slow
def test_binary_study_report_has_binary_figures(write_config, tmp_path):
    make_image_folder(tmp_path / "images", n_per_class=16)
    text = tiny_config_text(
        name="binary",
        data=f"Data.image_folder(root={str(tmp_path / 'images')!r})",
        cv="CrossValidation(outer_folds=2, inner_folds=1)",
    )
    text += "experiment.training.batch_size = 8\n"  # 32 images: inner training sets of about 11
    assert main(["run", str(write_config(text)), "--quiet"]) == 0
    result = analyze("binary", out=tmp_path / "r", n_resamples=100)
    assert list(result.bootstrap.index)[:2] == ["roc_auc", "average_precision"]
    assert {"roc", "precision_recall", "probability_density", "calibration", "confusion_matrix"} == set(result.figures)
    assert len(list((tmp_path / "r" / "figures").glob("*.png"))) == 5


def _chromium():
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.environ.get("REPROAI_REQUIRE_CHROMIUM"):
        pytest.fail("REPROAI_REQUIRE_CHROMIUM is set but no chromium is on PATH (.ci/run installs Debian's chromium)")
    return found


def test_report_renders_with_its_images_in_headless_chromium(quickstart_study, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("needs Debian's chromium (apt-get install chromium), which .ci/run installs")
    _, uri, _ = quickstart_study
    analyze("quickstart", tracking_uri=uri, out=tmp_path / "r", n_resamples=100, log=False)
    page = (tmp_path / "r" / "report.html").as_uri()
    flags = ["--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    images = int(re.search(r'data-images="(\d+)"', body).group(1))
    loaded = int(re.search(r'data-images-loaded="(\d+)"', body).group(1))
    assert images == len(FIGURES) + 12 and loaded == images  # every image decoded and has a size
    assert "Headline: test metrics across outer folds" in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [browser, *flags, "--hide-scrollbars", "--window-size=1200,1600", f"--screenshot={shot}", page],
        capture_output=True,
        timeout=120,
        check=True,
    )
    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(shot).convert("L"))
    assert pixels.shape == (1600, 1200) and len(np.unique(pixels)) > 50  # rendered content, not a blank page


@pytest.mark.slow
def test_compare_same_splits_and_refuses_different_ones(quickstart_study, tmp_path, capsys):
    root, uri, storage = quickstart_study
    a = load_study("quickstart", uri).study.id
    # B: the same splits (same seed), no search, a fixed model
    assert (
        main(
            [
                "run",
                QUICKSTART,
                "--tracking-uri",
                uri,
                "--storage",
                storage,
                *SMALL,
                "--fresh",
                "--set",
                "model.head.hidden=16",
                "--set",
                "model.head.dropout=0.0",
                "--set",
                "training.phases.train.lr=0.0001",
                "--set",
                "training.phases.train.epochs=1",
            ]
        )
        == 0
    )
    b = load_study("quickstart", uri).study.id
    assert a != b
    assert main(["compare", a, b, "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "Corrected paired t-test" in out and "caveats" in out and "Bayesian correlated t-test" in out
    result = compare(a, b, tracking_uri=uri, metric="accuracy")
    assert len(result.folds) == 2 and result.test["df"] == 1
    difference = result.folds[result.labels[0]] - result.folds[result.labels[1]]
    assert result.test["mean"] == pytest.approx(difference.mean())
    # C: other splits (another seed): refused
    assert (
        main(["run", QUICKSTART, "--tracking-uri", uri, "--storage", storage, *SMALL, "--fresh", "--set", "seed=99"])
        == 0
    )
    c = load_study("quickstart", uri).study.id
    with pytest.raises(ReproaiError, match="outer test sets .* differ"):
        compare(a, c, tracking_uri=uri)
