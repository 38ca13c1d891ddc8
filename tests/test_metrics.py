import numpy as np
import pytest
from sklearn import metrics as skm

from reproai.evaluation._metrics import METRICS, compute_metrics, metric_direction, predict_labels, youden_threshold


@pytest.fixture
def binary():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(y * 0.3 + rng.uniform(0, 0.7, 200), 0, 1)
    return y, p


def test_binary_metrics_match_scikit_learn(binary):
    y, p = binary
    t = 0.4
    pred = (p >= t).astype(int)
    m = compute_metrics(y, p, threshold=t)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, np.column_stack([1 - p, p])))
    assert m["brier"] == pytest.approx(skm.brier_score_loss(y, p))


def test_multiclass_metrics_match_scikit_learn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 150)
    logits = rng.normal(size=(150, 3)) + np.eye(3)[y] * 1.5
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    m = compute_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, p.argmax(1)))
    assert m["f1"] == pytest.approx(skm.f1_score(y, p.argmax(1), average="macro"))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, p))


def test_youden_threshold_maximises_j(binary):
    y, p = binary
    t = youden_threshold(y, p)

    def j(th):
        return ((p >= th) & (y == 1)).sum() / (y == 1).sum() - ((p >= th) & (y == 0)).sum() / (y == 0).sum()

    assert j(t) == pytest.approx(max(j(th) for th in np.unique(p)))
    assert youden_threshold(np.ones(5, int), np.linspace(0, 1, 5)) == 0.5


def test_youden_threshold_lies_between_the_classes_not_on_a_score():
    """Perfectly separated scores: the threshold is half-way between the classes, so that a refit whose
    positives score a little lower still calls them positive (the lowest positive's own score did not)."""
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.001, 0.01, 0.02, 0.9990, 0.9995, 0.9999])
    assert youden_threshold(y, p) == pytest.approx((0.02 + 0.9990) / 2)
    assert youden_threshold(y, np.array([0.2, 0.3, 0.4, 0.6, 0.7, 0.8])) == pytest.approx(0.5)


def test_one_class_gives_nan_auc_not_an_error():
    assert np.isnan(compute_metrics(np.ones(4, int), np.array([0.1, 0.2, 0.8, 0.9]))["roc_auc"])


def test_directions_and_predictions():
    assert metric_direction("roc_auc") == "maximize" and metric_direction("log_loss") == "minimize"
    assert predict_labels(np.array([0.2, 0.6]), 0.5).tolist() == [0, 1]
    assert predict_labels(np.array([[0.2, 0.8], [0.9, 0.1]])).tolist() == [1, 0]
    assert set(METRICS) >= {"roc_auc", "accuracy", "f1", "log_loss", "brier"}


def test_metrics_membership_is_false_for_an_unknown_name():
    assert "roc_auc" in METRICS and "roc_auc_micro" not in METRICS and "no_such_metric" not in METRICS
