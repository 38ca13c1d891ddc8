import json

import optuna
import pytest

from reproai import hp
from reproai.config._space import Categorical, Float, Int, Space
from reproai.config._tree import Choice
from reproai.errors import SearchSpaceError


@pytest.mark.parametrize(
    "space",
    [
        hp.float(1e-5, 1e-1, log=True),
        hp.float(0.0, 1.0, step=0.25, name="p"),
        hp.int(1, 9, step=2),
        hp.int(2, 64, log=True),
        hp.categorical([16, 32, "x", None, True]),
        hp.choice({"adamw": {"lr": hp.float(1e-4, 1e-2, log=True)}, "sgd": {"momentum": 0.9}}),
    ],
)
def test_json_round_trip_and_equality(space):
    data = json.loads(json.dumps(space.to_dict()))
    again = Space.from_dict(data)
    assert again == space
    assert repr(again) == repr(space)
    assert hash(again) == hash(space)


def test_wraps_optuna_distributions():
    assert hp.float(0.1, 1.0, log=True).to_optuna() == optuna.distributions.FloatDistribution(0.1, 1.0, log=True)
    assert hp.int(1, 8).to_optuna() == optuna.distributions.IntDistribution(1, 8)
    assert hp.categorical(["a", "b"]).to_optuna() == optuna.distributions.CategoricalDistribution(["a", "b"])


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: hp.float(0.0, 1.0, log=True), r"`low > 0` must hold when log=True.*low=0\.0"),
        (lambda: hp.float(-1.0, 1.0, log=True), r"`low > 0` must hold when log=True"),
        (lambda: hp.float(1.0, 0.5), r"`low < high` must hold, but got \(low=1\.0, high=0\.5\)"),
        (lambda: hp.float(1.0, 1.0), r"`low < high` must hold"),
        (lambda: hp.int(1.5, 3), r"must be integers.*low=1\.5"),
        (lambda: hp.float("a", 1.0), r"finite numbers"),
        (lambda: hp.float(0.1, 1.0, log=True, step=0.1), r"cannot be combined"),
        (lambda: hp.int(1, 10, step=0), r"`step` must be a positive integer"),
        (lambda: hp.categorical([]), r"`choices` must not be empty"),
        (lambda: hp.categorical([[1, 2], [3]]), r"use hp.choice"),
        (lambda: hp.categorical([1, 1]), r"must not repeat"),
        (lambda: hp.choice({}), r"`branches` must not be empty"),
    ],
)
def test_invalid_arguments_raise_outside_config_files(make, match):
    with pytest.raises(SearchSpaceError, match=match):
        make()


def test_contains():
    assert hp.float(0.0, 1.0).contains(0.5) and not hp.float(0.0, 1.0).contains(1.5)
    assert hp.float(0.0, 1.0, step=0.25).contains(0.75) and not hp.float(0.0, 1.0, step=0.25).contains(0.3)
    assert hp.int(1, 5).contains(3) and not hp.int(1, 5).contains(3.5) and not hp.int(1, 5).contains(True)
    assert hp.categorical([16, 32]).contains(32) and not hp.categorical([16, 32]).contains(64)
    assert not hp.categorical([1, 2]).contains(True)  # True == 1, but it is not one of the choices
    assert hp.choice({"a": 1}).contains("a") and not hp.choice({"a": 1}).contains("b")


def test_suggest_uses_the_trial():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    x = Float(1e-4, 1e-1, log=True).suggest(trial, "lr")
    k = Int(1, 4).suggest(trial, "k")
    c = Categorical(["a", "b"]).suggest(trial, "c")
    b = Choice({"x": 1, "y": 2}).suggest(trial, "b")
    assert 1e-4 <= x <= 1e-1 and 1 <= k <= 4 and c in ("a", "b") and b in ("x", "y")
    assert set(trial.params) == {"lr", "k", "c", "b"}
