"""Compiled training: one compilation per architecture and process, reused by every fit with fresh
weights; the same predictions as eager fits up to float rounding. Activation checkpointing: the same
gradients with less memory kept. Every fit reports its peak memory."""

import numpy as np
import pytest
import timm
import torch

from reproai import Data, Head, Model, Phase, Training
from reproai.data import list_source, load_images
from reproai.errors import ConfigError
from reproai.models._backbones import backbone_info
from reproai.models._network import CheckpointedSequential, create_model, enable_grad_checkpointing
from reproai.training import FitHooks, FitOptions, Subsets, fit
from reproai.training._compilation import clear, compile_seconds, compiled_graphs

MODEL = Model(backbone="small_cnn", pretrained=False, head=Head(hidden=16))


@pytest.fixture(scope="module")
def digits():
    data = load_images(list_source(Data.digits(limit=256), seed=0), 8, progress=False)
    index = np.arange(len(data))
    return data, index[:128], index[128:192], index[192:]  # whole batches of 32: no ragged last batch


def run(digits, training, seed=0):
    data, train, dev, test = digits
    return fit(
        MODEL,
        training,
        data,
        backbone_info(MODEL),
        Subsets(train=train, dev=dev, test=test),
        options=FitOptions(seed=seed),
        hooks=FitHooks(progress=False),
    )


def test_a_second_fit_of_the_same_architecture_does_not_recompile(digits):
    """Dynamo's own counters: the graphs of the first fit (train and eval) serve the second."""
    clear()
    training = Training(batch_size=32, compile="aot_eager", phases=[Phase("train", epochs=2, lr=3e-3)])
    first = run(digits, training, seed=1)
    graphs, seconds = compiled_graphs(), compile_seconds()
    assert graphs >= 2 and first.compile_seconds > 0  # a training and an evaluation graph at least
    second = run(digits, training, seed=2)
    assert compiled_graphs() == graphs and second.compile_seconds == 0.0 and compile_seconds() == seconds
    eager = run(digits, Training(batch_size=32, phases=[Phase("train", epochs=2, lr=3e-3)]), seed=2)
    # The second compiled fit started from its own fresh weights: it equals an eager fit of that seed.
    assert np.allclose(second.test.proba, eager.test.proba, atol=1e-5)
    assert not np.allclose(second.test.proba, first.test.proba, atol=1e-3)
    clear()


@pytest.mark.slow
def test_an_inductor_compiled_fit_predicts_like_an_eager_one(digits):
    clear()
    phases = [Phase("train", epochs=2, lr=3e-3)]
    compiled = run(digits, Training(batch_size=32, compile=True, phases=phases), seed=5)
    eager = run(digits, Training(batch_size=32, phases=phases), seed=5)
    assert compiled.compile_seconds > 0
    # Inductor fuses and reorders float operations; 16 Adam steps carry the rounding (1.6e-4 here) but
    # nowhere near the difference another seed makes.
    assert np.abs(compiled.test.proba - eager.test.proba).max() < 1e-3
    other = run(digits, Training(batch_size=32, phases=phases), seed=6)
    assert np.abs(other.test.proba - eager.test.proba).max() > 0.05
    clear()


def gradients(model, x, y):
    model.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    return {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("spec", [MODEL, Model(backbone="efficientnet_lite0", pretrained=False, head=Head())])
def test_grad_checkpointing_gives_the_same_gradients(spec):
    torch.manual_seed(0)
    plain = create_model(spec, 3).train()
    checkpointed = create_model(spec, 3).train()
    checkpointed.load_state_dict(plain.state_dict())
    enable_grad_checkpointing(checkpointed, spec)
    if spec.backbone == "small_cnn":
        assert isinstance(checkpointed.backbone.features, CheckpointedSequential)
    else:
        assert checkpointed.backbone.grad_checkpointing
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    a, b = gradients(plain, x, y), gradients(checkpointed, x, y)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-5, rtol=1e-4), k


def test_grad_checkpointing_is_refused_for_a_model_without_a_way_to_do_it():
    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 2, 3)

        def forward(self, x):
            return self.conv(x).mean((2, 3))

    with pytest.raises(
        ConfigError,
        match=r"`training\.grad_checkpointing`: the model .* \(Plain\) has no "
        r"set_grad_checkpointing\(\)",
    ):
        enable_grad_checkpointing(Plain(), Model(factory=timm.create_model))


def test_a_fit_reports_its_peak_memory(digits):
    result = run(digits, Training(batch_size=32, grad_checkpointing=True, phases=[Phase("train", epochs=1)]))
    assert result.peak_memory["peak_rss_mib"] > 50
    assert result.compile_seconds is None
