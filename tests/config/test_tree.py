import dataclasses

import optuna
import pytest

from reproai import Data, Experiment, Head, Model, Phase, Training, hp
from reproai.config._tree import (
    from_jsonable,
    get_path,
    has_search_space,
    iter_parameters,
    resolve,
    set_path,
    to_jsonable,
)
from reproai.errors import ConfigError, SearchSpaceError


def deep_experiment() -> Experiment:
    return Experiment(
        name="deep",
        data=Data.digits(),
        model=Model(
            backbone="small_cnn",
            pretrained=False,
            head=Head(hidden=hp.categorical([8, 16]), dropout=hp.float(0.0, 0.5)),
        ),
        training=Training(
            phases=[
                Phase("warmup", lr=hp.float(1e-4, 1e-2, log=True)),
                Phase("finetune", lr=hp.float(1e-5, 1e-3, log=True, name="ft_lr"), epochs=hp.int(1, 3)),
            ],
            augment=hp.choice({"none": None, "policy": hp.categorical(["flip", "autoaugment"])}),
        ),
    )


def test_parameter_names_default_to_paths():
    names = {p.name: p for p in iter_parameters(deep_experiment())}
    assert set(names) == {
        "model.head.hidden",
        "model.head.dropout",
        "training.phases.warmup.lr",
        "ft_lr",
        "training.phases.finetune.epochs",
        "training.augment",
        "training.augment.policy",
    }
    assert names["training.augment.policy"].condition == "training.augment == 'policy'"
    assert names["ft_lr"].path == "training.phases.finetune.lr"


def test_spaces_at_any_depth_in_dicts_lists_and_tuples():
    tree = {"a": [1, (2, {"b": hp.int(0, 3)})], "c": hp.categorical(["x", "y"])}
    assert [p.name for p in iter_parameters(tree)] == ["a.1.1.b", "c"]
    fixed = resolve(tree, {"a.1.1.b": 2, "c": "y"})
    assert fixed == {"a": [1, (2, {"b": 2})], "c": "y"}
    assert isinstance(fixed["a"][1], tuple)


def test_resolve_with_a_trial_samples_every_reachable_space():
    exp = deep_experiment()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        out = resolve(exp, trial)
        assert not has_search_space(out)
        assert out.model.head.hidden in (8, 16)
        assert 1e-5 <= out.training.phases[1].lr <= 1e-3
        assert out.training.augment in (None, "flip", "autoaugment")
        # The conditional parameter exists only in trials that took its branch.
        assert ("training.augment.policy" in trial.params) == (trial.params["training.augment"] == "policy")
        seen.add(trial.params["training.augment"])
        study.tell(trial, 0.0)
    assert seen == {"none", "policy"}
    assert has_search_space(exp)  # the original tree is untouched


def test_resolve_with_a_dict_fixes_values_and_checks_them():
    exp = deep_experiment()
    params = {
        "model.head.hidden": 16,
        "model.head.dropout": 0.25,
        "training.phases.warmup.lr": 1e-3,
        "ft_lr": 1e-4,
        "training.phases.finetune.epochs": 2,
        "training.augment": "policy",
        "training.augment.policy": "flip",
    }
    out = resolve(exp, params)
    assert out.model.head == Head(hidden=16, dropout=0.25)
    assert out.training.augment == "flip" and out.training.phases[1].epochs == 2
    with pytest.raises(SearchSpaceError, match=r"`model.head.dropout` = 0.9 lies outside"):
        resolve(exp, {**params, "model.head.dropout": 0.9})
    with pytest.raises(SearchSpaceError, match=r"No value for parameter `ft_lr`"):
        resolve(exp, {k: v for k, v in params.items() if k != "ft_lr"})


def test_resolving_a_tree_without_spaces_returns_it_unchanged():
    exp = Experiment(name="fixed")
    assert resolve(exp, {}) is exp
    assert resolve(exp, optuna.create_study().ask()) is exp


def test_get_and_set_path_by_name_or_index():
    exp = deep_experiment()
    assert get_path(exp, "training.phases.warmup.lr") == get_path(exp, "training.phases.0.lr")
    new = set_path(exp, "training.phases.finetune.epochs", 5)
    assert new.training.phases[1].epochs == 5 and exp.training.phases[1].epochs == hp.int(1, 3)
    new = set_path(exp, "training.batch_size", 8)
    assert new.training.batch_size == 8 and exp.training.batch_size == 32


def test_unknown_path_names_close_matches():
    with pytest.raises(
        ConfigError,
        match=r"`trainin`: the experiment \(Experiment\) has no field `trainin`\. Did you mean `training`\?",
    ):
        set_path(deep_experiment(), "trainin.batch_size", 1)
    with pytest.raises(ConfigError, match=r"has no field `lrr`.*`lr`"):
        set_path(deep_experiment(), "training.phases.warmup.lrr", 1)


def test_json_round_trip_of_a_whole_tree():
    exp = deep_experiment()
    again = from_jsonable(to_jsonable(exp))
    assert again == exp
    assert dataclasses.is_dataclass(again.training.phases[0])
