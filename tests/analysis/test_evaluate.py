"""Analysis metrics against scikit-learn, the bootstrap, and the corrected t-test by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from reproai.analysis import bootstrap_pooled, confusion, corrected_paired_ttest, corrected_t_interval, fold_metrics
from reproai.analysis._evaluate import BINARY_METRICS, MULTICLASS_METRICS, prediction_arrays
from reproai.errors import ReproaiError
from reproai.evaluation._bootstrap import weighted_metrics

BINARY = pd.DataFrame(
    {
        "id": [f"x{i}" for i in range(10)],
        "repeat": 0,
        "outer_fold": [0] * 5 + [1] * 5,
        "label": [0, 0, 1, 1, 1, 0, 1, 0, 1, 1],
        "probability": [0.1, 0.6, 0.7, 0.4, 0.9, 0.2, 0.8, 0.3, 0.3, 0.95],
        "predicted": [0, 1, 1, 0, 1, 0, 1, 0, 1, 1],  # fold 1's fitted threshold was 0.25, hence 0.3 -> 1
    }
)


def _multiclass(n=60, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.r_[np.arange(k), rng.integers(0, k, n - k)]
    logits = rng.normal(size=(n, k)) + 1.5 * np.eye(k)[y]
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    table = pd.DataFrame(
        {
            "id": [f"m{i}" for i in range(n)],
            "repeat": 0,
            "outer_fold": np.arange(n) % 2,
            "label": y,
            **{f"probability_{c}": p[:, j] for j, c in enumerate("abc")},
            "predicted": p.argmax(axis=1),
        }
    )
    return table, ["a", "b", "c"]


def test_binary_fold_metrics_equal_scikit_learn():
    folds = fold_metrics(BINARY, ["cat", "dog"])
    assert list(folds["outer_fold"]) == [0, 1] and list(folds["n"]) == [5, 5]
    for fold, t in BINARY.groupby("outer_fold"):
        y, p, pred = t["label"], t["probability"], t["predicted"]
        expected = {
            "roc_auc": skm.roc_auc_score(y, p),
            "average_precision": skm.average_precision_score(y, p),
            "accuracy": skm.accuracy_score(y, pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
            "f1": skm.f1_score(y, pred),
            "precision": skm.precision_score(y, pred),
            "recall": skm.recall_score(y, pred),
            "log_loss": skm.log_loss(y, p),
            "brier": skm.brier_score_loss(y, p),
        }
        row = folds[folds["outer_fold"] == fold].iloc[0]
        assert set(expected) == set(BINARY_METRICS)
        for name, value in expected.items():
            assert row[name] == pytest.approx(value), name


def test_multiclass_fold_metrics_equal_scikit_learn():
    table, classes = _multiclass()
    folds = fold_metrics(table, classes)
    for fold, t in table.groupby("outer_fold"):
        y, p, pred = prediction_arrays(t, classes)
        onehot = np.eye(3)[y]
        expected = {
            "roc_auc": skm.roc_auc_score(y, p, multi_class="ovr", average="macro"),
            "roc_auc_micro": skm.roc_auc_score(onehot, p, average="micro"),
            "average_precision": skm.average_precision_score(onehot, p, average="macro"),
            "accuracy": skm.accuracy_score(y, pred),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
            "f1": skm.f1_score(y, pred, average="macro"),
            "precision": skm.precision_score(y, pred, average="macro"),
            "recall": skm.recall_score(y, pred, average="macro"),
            "log_loss": skm.log_loss(y, p),
            "brier": np.mean(np.sum((p - onehot) ** 2, axis=1)),
        }
        row = folds[folds["outer_fold"] == fold].iloc[0]
        assert set(expected) == set(MULTICLASS_METRICS)
        for name, value in expected.items():
            assert row[name] == pytest.approx(value), name
    matrix = confusion(table, classes)
    assert matrix.to_numpy().tolist() == skm.confusion_matrix(table["label"], table["predicted"]).tolist()


@pytest.mark.parametrize("case", ["binary", "multiclass"])
def test_weighted_metrics_equal_scikit_learn_with_sample_weights(case):
    table, classes = (BINARY, ["cat", "dog"]) if case == "binary" else _multiclass(n=80)
    y, p, pred = prediction_arrays(table, classes)
    k = len(classes)
    w = np.random.default_rng(3).integers(0, 4, size=(3, len(y))).astype(float)
    got = weighted_metrics(y, p, pred, w, k)
    avg = "binary" if k == 2 else "macro"
    for b, wi in enumerate(w):
        onehot = np.eye(k)[y]
        expected = {
            "accuracy": skm.accuracy_score(y, pred, sample_weight=wi),
            "balanced_accuracy": skm.balanced_accuracy_score(y, pred, sample_weight=wi),
            "f1": skm.f1_score(y, pred, average=avg, sample_weight=wi, zero_division=0),
            "precision": skm.precision_score(y, pred, average=avg, sample_weight=wi, zero_division=0),
            "recall": skm.recall_score(y, pred, average=avg, sample_weight=wi, zero_division=0),
            "log_loss": skm.log_loss(y, np.column_stack([1 - p, p]) if k == 2 else p, sample_weight=wi),
            "roc_auc": (
                skm.roc_auc_score(y, p, sample_weight=wi)
                if k == 2
                else np.mean([skm.roc_auc_score(y == c, p[:, c], sample_weight=wi) for c in range(k)])
            ),
            "average_precision": (
                skm.average_precision_score(y, p, sample_weight=wi)
                if k == 2
                else skm.average_precision_score(onehot, p, average="macro", sample_weight=wi)
            ),
        }
        if k > 2:
            expected["roc_auc_micro"] = skm.roc_auc_score(onehot, p, average="micro", sample_weight=wi)
        for name, value in expected.items():
            assert got[name][b] == pytest.approx(value, abs=1e-9), (name, b)


def test_bootstrap_interval_brackets_the_pooled_value_and_repeats_with_its_seed():
    table, classes = _multiclass(n=200)
    a = bootstrap_pooled(table, classes, n_resamples=300, seed=1)
    assert list(a.index) == MULTICLASS_METRICS and (a["n"] == 200).all()
    assert (a["boot_low"] <= a["pooled"]).all() and (a["pooled"] <= a["boot_high"]).all()
    assert (a["boot_high"] - a["boot_low"] > 0).all()
    pd.testing.assert_frame_equal(a, bootstrap_pooled(table, classes, n_resamples=300, seed=1))
    wider = bootstrap_pooled(table.iloc[:50], classes, n_resamples=300, seed=1)  # fewer examples, wider interval
    assert (wider["boot_high"] - wider["boot_low"]).loc["accuracy"] > (a["boot_high"] - a["boot_low"]).loc["accuracy"]


def test_corrected_paired_ttest_by_hand():
    # d = [0.01, 0.02, 0.03, 0.00, 0.04]: mean 0.02, s^2 = 0.001 / 4 = 0.00025, k = 5, n_test/n_train = 0.25
    # se = sqrt(0.00025 * (1/5 + 0.25)) = sqrt(0.0001125) = 0.0106066; t = 0.02 / 0.0106066 = 1.885618
    # two-sided p with 4 df: 2 * (1 - F_t4(1.885618)) = 0.13240; t_0.975,4 = 2.776445, half-width 0.029449
    r = corrected_paired_ttest([0.01, 0.02, 0.03, 0.00, 0.04], test_train_ratio=0.25)
    assert r["mean"] == pytest.approx(0.02)
    assert r["std"] == pytest.approx(math.sqrt(0.00025))
    assert r["t"] == pytest.approx(1.885618, rel=1e-6)
    assert r["df"] == 4
    assert r["p_value"] == pytest.approx(0.13240, abs=5e-5)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((0.02 - 0.029449, 0.02 + 0.029449), abs=1e-6)
    plain = corrected_paired_ttest([0.01, 0.02, 0.03, 0.00, 0.04], test_train_ratio=0.0)
    assert plain["t"] == pytest.approx(0.02 / math.sqrt(0.00025 / 5)) and plain["p_value"] < r["p_value"]


def test_corrected_interval_is_wider_than_the_plain_one_and_one_fold_gives_nan():
    values = [0.90, 0.92, 0.88, 0.91]
    corrected = corrected_t_interval(values, test_train_ratio=0.25)
    plain = corrected_t_interval(values, test_train_ratio=0.0)
    assert corrected["ci_low"] < plain["ci_low"] < plain["ci_high"] < corrected["ci_high"]
    assert math.isnan(corrected_paired_ttest([0.1], test_train_ratio=0.2)["p_value"])


def test_group_level_predictions_and_metrics_by_hand():
    from reproai.analysis._evaluate import group_predictions, table_metrics

    # Two outer folds; patients with 1-3 images each; every patient one class.
    table = pd.DataFrame(
        {
            "id": [f"i{k}" for k in range(9)],
            "group": ["a", "a", "b", "c", "c", "c", "d", "e", "e"],
            "label": [1, 1, 0, 1, 1, 1, 0, 0, 0],
            "probability": [0.9, 0.5, 0.4, 0.2, 0.6, 0.7, 0.1, 0.3, 0.8],
            "predicted": [1, 0, 0, 0, 1, 1, 0, 0, 1],
            "repeat": 0,
            "outer_fold": [0, 0, 0, 1, 1, 1, 1, 1, 1],
        }
    )
    groups = group_predictions(table, ["neg", "pos"], {(0, 0): 0.45, (0, 1): 0.48})
    by_id = groups.set_index("id")
    # a: (0.9 + 0.5) / 2 = 0.7; b: 0.4; c: (0.2 + 0.6 + 0.7) / 3 = 0.5; d: 0.1; e: (0.3 + 0.8) / 2 = 0.55
    assert by_id["probability"].to_dict() == pytest.approx({"a": 0.7, "b": 0.4, "c": 0.5, "d": 0.1, "e": 0.55})
    assert by_id["n_images"].to_dict() == {"a": 2, "b": 1, "c": 3, "d": 1, "e": 2}
    assert by_id["label"].to_dict() == {"a": 1, "b": 0, "c": 1, "d": 0, "e": 0}
    # at each fold's threshold: a 0.7 >= 0.45, b 0.4 < 0.45; c 0.5 >= 0.48, d 0.1 < 0.48, e 0.55 >= 0.48
    assert by_id["predicted"].to_dict() == {"a": 1, "b": 0, "c": 1, "d": 0, "e": 1}
    fold1 = table_metrics(groups[groups["outer_fold"] == 1], ["neg", "pos"])
    # fold 1: c (pos, 0.5) against d (neg, 0.1) and e (neg, 0.55): one pair of two ranked right -> AUC 0.5
    assert fold1["roc_auc"] == pytest.approx(0.5)
    assert fold1["accuracy"] == pytest.approx(2 / 3)
    mixed = table.assign(label=[1, 0, 0, 1, 1, 1, 0, 0, 0])
    with pytest.raises(ReproaiError, match=r"1 group\(s\) have images of different classes \(e\.g\. \['a'\]\)"):
        group_predictions(mixed, ["neg", "pos"])


def test_intervals_stay_inside_the_metrics_range():
    from reproai.analysis._evaluate import summarize_folds

    folds = pd.DataFrame(
        {"repeat": 0, "outer_fold": [0, 1, 2], "n": 10, "roc_auc": [0.999, 1.0, 0.9995], "log_loss": [0.01, 0.3, 0.02]}
    )
    summary = summarize_folds(folds, test_train_ratio=0.5)
    assert summary.loc["roc_auc", "ci_high"] == 1.0 and summary.loc["roc_auc", "t_ci_high"] == 1.0
    assert summary.loc["roc_auc", "ci_low"] < 0.9995
    assert summary.loc["log_loss", "ci_low"] == 0.0  # the raw lower end is negative
