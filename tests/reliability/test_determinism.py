"""Same seed, same results on CPU; the deterministic option sets what PyTorch needs and tags the runs."""

import numpy as np
import pytest
import torch

from reproai import Head, Model, Phase, Training
from reproai.data import list_source, load_images
from reproai.models._backbones import backbone_info
from reproai.tracking import MemoryTracker
from reproai.training import FitHooks, FitOptions, Subsets, fit
from reproai.training._seeding import configure_determinism


@pytest.fixture
def restore_determinism():
    before = torch.are_deterministic_algorithms_enabled()
    yield
    torch.use_deterministic_algorithms(before)


def _fit(training, seed):
    from reproai import Data

    spec = Model(backbone="small_cnn", pretrained=False, head=Head(hidden=16))
    data = load_images(list_source(Data.digits(limit=120)), 8, progress=False)
    tracker = MemoryTracker()
    index = np.arange(len(data))
    result = fit(
        spec,
        training,
        data,
        backbone_info(spec),
        Subsets(train=index[:80], dev=index[80:100], test=index[100:]),
        options=FitOptions(seed=seed),
        hooks=FitHooks(tracker=tracker, progress=False),
    )
    return result, tracker


@pytest.mark.slow
def test_two_fits_with_the_same_seed_are_identical_and_another_seed_differs(restore_determinism):
    training = Training(batch_size=16, phases=[Phase("train", epochs=2, lr=3e-3)])
    a, _ = _fit(training, seed=3)
    b, _ = _fit(training, seed=3)
    c, _ = _fit(training, seed=4)
    assert np.array_equal(a.test.proba, b.test.proba) and np.array_equal(a.dev.proba, b.dev.proba)
    assert not np.array_equal(a.test.proba, c.test.proba)


def test_deterministic_option_sets_pytorch_and_tags_the_phase_runs(restore_determinism):
    torch.use_deterministic_algorithms(False)
    training = Training(batch_size=16, phases=[Phase("train", epochs=1, lr=3e-3)], deterministic=True)
    _, tracker = _fit(training, seed=3)
    assert torch.are_deterministic_algorithms_enabled()
    (phase,) = [r for r in tracker.runs if r.tags.get("reproai.level") == "phase"]
    assert (
        phase.tags["reproai.deterministic"] == "true" and phase.tags["reproai.use_deterministic_algorithms"] == "true"
    )


def test_cuda_determinism_needs_the_cublas_workspace_before_cuda_starts(restore_determinism, monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: False)
    tags = configure_determinism(True, torch.device("cuda"))
    assert tags["reproai.cublas_workspace_config"] == ":4096:8"
    import os

    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    from reproai.errors import ConfigError

    with pytest.raises(ConfigError, match="CUBLAS_WORKSPACE_CONFIG=:4096:8"):
        configure_determinism(True, torch.device("cuda"))
