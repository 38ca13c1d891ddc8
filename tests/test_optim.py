"""Optimizers and LR schedulers by name with their arguments, what reproai fills in, and when they step."""

import pytest
import torch

from reproai import Component
from reproai.config._schema import Phase
from reproai.errors import ConfigError
from reproai.training import steps_per_epoch
from reproai.training._optim import make_optimizer, make_schedule, scheduler_interval


def params():
    return [torch.nn.Parameter(torch.zeros(3))]


def test_any_torch_optimizer_with_its_arguments_and_the_phases_lr():
    opt = make_optimizer(
        Phase(lr=0.05, weight_decay=1e-4, optimizer=Component("SGD", momentum=0.8, nesterov=True)), params()
    )
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["momentum"], group["nesterov"]) == (0.05, 1e-4, 0.8, True)
    assert make_optimizer(Phase(optimizer="sgd"), params()).param_groups[0]["momentum"] == 0.9
    adamw = make_optimizer(Phase(optimizer=Component("AdamW", betas=(0.8, 0.95))), params())
    assert adamw.param_groups[0]["betas"] == (0.8, 0.95)
    assert isinstance(make_optimizer(Phase(optimizer="RMSprop"), params()), torch.optim.RMSprop)
    with pytest.raises(ConfigError, match=r"the optimizer Adam takes no momentum"):
        make_optimizer(Phase(optimizer="adam", momentum=0.5), params())


def lrs(phase, epochs, steps):
    opt = make_optimizer(phase, params())
    schedule = make_schedule(phase, opt, epochs=epochs, steps_per_epoch=steps)
    seen = []
    for _ in range(epochs):
        for _ in range(steps):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            schedule.after_batch()
        schedule.after_epoch(dev_loss=1.0)
    return seen, schedule


def test_cosine_steps_per_epoch_and_one_cycle_per_batch():
    seen, schedule = lrs(Phase(lr=0.1, scheduler="cosine"), epochs=4, steps=3)
    assert schedule.interval == "epoch" and schedule.scheduler.T_max == 4
    assert [seen[i] for i in range(0, 12, 3)] == pytest.approx([0.1, 0.085355, 0.05, 0.014645], rel=1e-4)
    assert seen[0] == seen[1] == seen[2]  # constant within an epoch
    seen, schedule = lrs(Phase(lr=0.1, scheduler=Component("OneCycleLR")), epochs=2, steps=5)
    assert schedule.interval == "step" and schedule.scheduler.total_steps == 10  # filled in by reproai
    assert max(seen) == pytest.approx(0.1, rel=0.05)  # max_lr is the phase's lr
    assert len(set(seen[:5])) == 5  # it changes every batch


def test_warmup_and_the_interval_override():
    seen, _ = lrs(Phase(lr=0.1, scheduler=Component("linear_warmup", warmup_epochs=1)), epochs=2, steps=4)
    assert seen[0] == pytest.approx(0.001) and seen[4:] == pytest.approx([0.1] * 4)
    seen, _ = lrs(Phase(lr=0.1, scheduler=Component("warmup_cosine", warmup_epochs=1)), epochs=3, steps=2)
    assert seen[0] < seen[1] < seen[2] and seen[2] > seen[3] > seen[4] > seen[5]
    phase = Phase(lr=0.1, scheduler=Component("StepLR", step_size=2), scheduler_interval="step")
    assert scheduler_interval(phase) == "step"
    seen, _ = lrs(phase, epochs=1, steps=5)
    assert seen == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001])


def test_reduce_on_plateau_steps_on_the_dev_loss():
    phase = Phase(lr=0.1, scheduler=Component("ReduceLROnPlateau", patience=0, factor=0.5))
    opt = make_optimizer(phase, params())
    schedule = make_schedule(phase, opt, epochs=3, steps_per_epoch=1)
    for loss in (1.0, 1.0, 1.0):
        schedule.after_epoch(dev_loss=loss)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    with pytest.raises(ConfigError, match="no dev set"):
        schedule.after_epoch(dev_loss=None)


def test_steps_per_epoch_skip_a_last_batch_of_one_with_batchnorm():
    assert steps_per_epoch(64, 32, skips_single=True) == 2
    assert steps_per_epoch(65, 32, skips_single=True) == 2
    assert steps_per_epoch(65, 32, skips_single=False) == 3
    assert steps_per_epoch(66, 32, skips_single=True) == 3
