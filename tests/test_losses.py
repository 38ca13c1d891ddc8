"""The built-in loss: cross-entropy for k logits, BCE for one, class weights from the fit's training
labels only, label smoothing."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

import reproai.training._fit
from reproai import Component
from reproai.cli import main
from reproai.config._schema import Data, Head, Model, Phase, Training
from reproai.data import list_source, load_images
from reproai.errors import ConfigError
from reproai.models._backbones import backbone_info
from reproai.training import FitHooks, Subsets
from reproai.training._losses import CrossEntropy, balanced_class_weight, check_loss, make_loss
from tests.conftest import tiny_config_text


def test_balanced_weights_are_scikit_learns():
    y = np.array([0, 0, 0, 0, 1, 2, 2])
    expected = compute_class_weight("balanced", classes=np.arange(3), y=y)
    assert np.allclose(balanced_class_weight(y, 3), expected)
    with pytest.raises(ConfigError, match=r"class\(es\) \[3\] have no example in this fit's training set"):
        balanced_class_weight(y, 4)


def test_one_logit_with_smoothing_and_weights_equals_two_class_cross_entropy():
    torch.manual_seed(0)
    z = torch.randn(9, 1)
    y = torch.tensor([0, 1, 1, 1, 0, 1, 1, 1, 1])
    w = [2.0, 0.5]
    ours = CrossEntropy(2, class_weight=w, label_smoothing=0.1)(z, y)
    two = torch.cat([torch.zeros_like(z), z], dim=1)  # softmax([0, z])[1] = sigmoid(z)
    reference = F.cross_entropy(two, y, weight=torch.tensor(w), label_smoothing=0.1)
    assert torch.allclose(ours, reference, atol=1e-6)
    plain = CrossEntropy(2)(z, y)
    assert torch.allclose(plain, F.binary_cross_entropy_with_logits(z.squeeze(1), y.float()))


def test_a_function_is_the_loss_and_a_class_is_built_with_what_it_takes():
    def doubled(logits, targets, factor=2.0):
        return factor * logits.sum()

    assert (
        make_loss(Component(doubled, factor=3.0), num_classes=3, train_labels=np.zeros(2))(torch.ones(2, 3), None) == 18
    )
    loss = make_loss(
        Component("cross_entropy", class_weight="balanced"), num_classes=3, train_labels=np.array([0, 1, 1, 2])
    )
    assert torch.allclose(loss.weight, torch.tensor([4 / 3, 2 / 3, 4 / 3]))


def test_balanced_class_weight_uses_the_fits_training_labels_only(monkeypatch):
    data_spec = Data.digits(limit=300)
    model = Model(backbone="small_cnn", pretrained=False, head=Head())
    info = backbone_info(model)
    source = list_source(data_spec, seed=0)
    data = load_images(source, 8, progress=False, cache=False)
    seen = []
    real = reproai.training._fit.make_loss

    def spy(spec, *, num_classes, train_labels):
        loss = real(spec, num_classes=num_classes, train_labels=train_labels)
        seen.append((np.asarray(train_labels).copy(), loss.weight.clone()))
        return loss

    monkeypatch.setattr(reproai.training._fit, "make_loss", spy)
    training = Training(
        batch_size=32, loss=Component("cross_entropy", class_weight="balanced"), phases=[Phase("train", epochs=1)]
    )
    # An imbalanced training set (few 0s), and dev/test sets with other proportions.
    labels = data.labels
    train = np.concatenate([np.flatnonzero(labels == 0)[:5], np.flatnonzero(labels != 0)[:150]])
    rest = np.setdiff1d(np.arange(len(labels)), train)
    for dev, test in [(rest[:60], rest[60:]), (rest[60:], rest[:60])]:
        reproai.training._fit.fit(
            model, training, data, info, Subsets(train=train, dev=dev, test=test), hooks=FitHooks(progress=False)
        )
    (a_labels, a_weight), (b_labels, b_weight) = seen
    assert np.array_equal(a_labels, labels[train]) and np.array_equal(b_labels, labels[train])
    expected = compute_class_weight("balanced", classes=np.arange(10), y=labels[train])
    assert torch.allclose(a_weight, torch.tensor(expected, dtype=torch.float32))
    assert torch.equal(a_weight, b_weight)  # other dev and test sets, the same weights
    everything = compute_class_weight("balanced", classes=np.arange(10), y=labels)
    assert not np.allclose(expected, everything)  # the test would notice weights from all the labels


def one_argument(logits):
    return logits.mean()


def per_example(logits, targets):
    return F.cross_entropy(logits, targets, reduction="none")


def constant(logits, targets):
    return torch.tensor(1.0)


def test_a_loss_is_called_once_before_any_work_and_must_return_a_scalar():
    for spec in ("cross_entropy", Component("cross_entropy", class_weight="balanced", label_smoothing=0.1)):
        check_loss(spec, 2)
        check_loss(spec, 5)
    with pytest.raises(
        ConfigError, match=r"failed when called with logits of shape \(2, 1\) .*TypeError: .*loss\(logits"
    ):
        check_loss(Component(one_argument), 2)
    with pytest.raises(ConfigError, match=r"returned \(2,\) for logits of shape \(2, 3\).*not a scalar.*\.mean\(\)"):
        check_loss(Component(per_example), 3)
    with pytest.raises(ConfigError, match=r"does not depend on the logits"):
        check_loss(Component(constant), 3)


def test_a_config_with_a_wrong_loss_stops_before_any_fit(write_config, capsys):
    text = (
        tiny_config_text(name="bad-loss", epochs=1)
        + """
def smooth_ce(logits):
    return logits.mean()

experiment.training.loss = smooth_ce
"""
    )
    path = write_config(text)
    assert main(["run", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: `training.loss`: <config>:smooth_ce failed when called with" in err and "TypeError" in err
