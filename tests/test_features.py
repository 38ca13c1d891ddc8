"""Training the head on cached backbone features equals training it through the frozen backbone."""

import numpy as np
import pytest
import torch

from reproai import Data, Head, Model, Phase, Training
from reproai.data import list_source, load_images
from reproai.models._backbones import BackboneInfo, SmallCNN, register_backbone
from reproai.tracking import MemoryTracker
from reproai.training import FitHooks, FitOptions, Subsets, fit
from reproai.training._features import clear_feature_cache


# A "pretrained" small CNN: fixed weights from a seed, as a library's weights would be.
def _pretrained_cnn():
    torch.manual_seed(1234)
    return SmallCNN(width=8)


register_backbone(
    "tiny_pretrained", _pretrained_cnn, BackboneInfo(image_size=None, mean=(0.5,) * 3, std=(0.5,) * 3), pretrained=True
)
MODEL = Model(backbone="tiny_pretrained", pretrained=True, head=Head(hidden=16, dropout=0.3))


@pytest.fixture(scope="module")
def digits():
    return load_images(list_source(Data.digits(limit=200), seed=0), 8, progress=False)


def test_cached_feature_head_training_matches_training_through_the_frozen_backbone(digits):
    index = np.arange(len(digits))
    results, trackers = {}, {}
    for cached in (True, False):
        clear_feature_cache()
        training = Training(
            batch_size=16, feature_cache=cached, phases=[Phase("warmup", epochs=3, freeze_backbone=True, lr=1e-2)]
        )
        trackers[cached] = MemoryTracker()
        with trackers[cached].start_run("fit") as parent:
            results[cached] = fit(
                MODEL,
                training,
                digits,
                BackboneInfo(8, (0.5,) * 3, (0.5,) * 3),
                Subsets(train=index[:120], dev=index[120:160], test=index[160:]),
                options=FitOptions(seed=5),
                hooks=FitHooks(tracker=trackers[cached], parent=parent, progress=False),
            )
    a, b = results[True], results[False]
    assert np.allclose(a.test.logits, b.test.logits, atol=1e-5)
    assert np.allclose([h["train_loss"] for h in a.history], [h["train_loss"] for h in b.history], atol=1e-6)
    for k, v in a.model.head.state_dict().items():
        assert torch.allclose(v, b.model.head.state_dict()[k], atol=1e-5), k
    phase = {c: next(r for r in t.runs if r.tags.get("reproai.level") == "phase") for c, t in trackers.items()}
    assert phase[True].params["on_cached_features"] == "True" and phase[False].params["on_cached_features"] == "False"


def test_features_are_not_cached_for_random_weights_or_with_augmentation(digits):
    from reproai.training._fit import _use_features

    phases = [Phase("warmup", freeze_backbone=True), Phase("finetune")]
    assert _use_features(Training(phases=phases), phases, 0, MODEL)
    assert not _use_features(Training(phases=phases), phases, 1, MODEL)
    assert not _use_features(Training(phases=phases, augment="flip"), phases, 0, MODEL)
    assert not _use_features(Training(phases=phases), phases, 0, Model(backbone="small_cnn", pretrained=False))
    late = [Phase("finetune"), Phase("frozen_later", freeze_backbone=True)]
    assert not _use_features(Training(phases=late), late, 1, MODEL)  # the backbone has moved by then
