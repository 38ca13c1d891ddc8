import re

import pytest

from reproai import ConfigError, config_hash, load_config, load_experiment
from tests.conftest import tiny_config_text

HEADER = "from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training, hp\n"


def test_loads_the_one_experiment_by_isinstance(write_config):
    path = write_config(tiny_config_text() + "\nalias = experiment\nclass Experiment2: pass\n")
    loaded = load_config(path)
    assert loaded.experiment.name == "tiny" and loaded.path == path
    assert 'Phase("warmup"' in loaded.source


@pytest.mark.parametrize(
    "body, path_re, what",
    [
        (
            'experiment = Experiment(name="x", model=Model(head=Head(dropout=hp.float(0.0, 1.0, log=True))))',
            r"`model\.head\.dropout` \(at .*config\.py:2\)",
            r"`low > 0` must hold when log=True",
        ),
        (
            'experiment = Experiment(name="x", training=Training(phases=[Phase("a", lr=hp.float(1e-2, 1e-4))]))',
            r"`training\.phases\.a\.lr` \(at .*config\.py:2\)",
            r"`low < high` must hold",
        ),
        (
            'experiment = Experiment(name="x", model=Model(head=Head(hidden=hp.categorical([]))))',
            r"`model\.head\.hidden`",
            r"`choices` must not be empty",
        ),
        (
            'experiment = Experiment(name="x", training=Training(batch_size=0))',
            r"`training\.batch_size`",
            r"must be an integer >= 1, but got 0",
        ),
        (
            'experiment = Experiment(name="x", model=Model(head=Head(dropout=hp.float(0.0, 1.5))))',
            r"`model\.head\.dropout`",
            r"must lie in \[0\.0, 1\.0\), but got 1\.5",
        ),
        (
            'experiment = Experiment(name="x", search=Search(metric="roc_uac"))',
            r"`search\.metric`",
            r"unknown metric 'roc_uac'\. Did you mean 'roc_auc'\?",
        ),
        ('experiment = Experiment(name="x", data=Data(kind="digitz"))', r"`data\.kind`", r"Did you mean 'digits'\?"),
        (
            'experiment = Experiment(name="x", model=Model(pretrained="nowhere/weights.pth"))',
            r"`model\.pretrained`",
            r"the weights file 'nowhere/weights\.pth' does not exist",
        ),
        (
            'experiment = Experiment(name="x", training=Training(phases=[Phase("a"), Phase("a")]))',
            r"`training\.phases`",
            r"phase names must be unique",
        ),
    ],
)
def test_invalid_values_name_file_and_field(write_config, body, path_re, what):
    path = write_config(HEADER + body + "\n")
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert str(path) in message
    assert re.search(path_re, message), message
    assert re.search(what, message), message


def test_every_problem_names_the_line_of_its_config_node_and_a_bad_space_is_one_problem(write_config):
    body = """experiment = Experiment(
    name="x",
    training=Training(
        batch_size=0,
        phases=[
            Phase("a", lr=hp.float(0.0, 0.1, log=True)),
            Phase("b", optimizer="SDG"),
        ],
    ),
)
"""
    path = write_config(HEADER + body)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert f"`training.batch_size` (at {path}:4): must be an integer >= 1" in message
    assert f"`training.phases.a.lr` (at {path}:7): `low > 0` must hold when log=True" in message
    assert f"`training.phases.b.optimizer` (at {path}:8): unknown optimizer 'SDG'" in message
    assert message.count("training.phases.a.lr") == 1 and "3 problems" in message


def test_unknown_field_names_file_line_and_close_match(write_config):
    path = write_config(
        HEADER + 'experiment = Experiment(\n    name="x",\n    training=Training(phases=[Phase("a", lrr=0.1)]),\n)\n'
    )
    with pytest.raises(
        ConfigError, match=re.escape(f"{path}:4") + r".*unexpected keyword argument 'lrr'.*Did you mean `lr`\?"
    ):
        load_experiment(path)


def test_syntax_error_names_file_and_line(write_config):
    path = write_config(HEADER + 'experiment = Experiment(\n    name="x"\n    seed=1)\n')
    with pytest.raises(ConfigError, match=re.escape(f"{path}:") + r"[34]: syntax error"):
        load_experiment(path)


def test_no_experiment(write_config):
    path = write_config(HEADER + "x = 1\n")
    with pytest.raises(ConfigError, match=re.escape(str(path)) + r": the config file defines no Experiment"):
        load_experiment(path)


def test_two_experiments(write_config):
    path = write_config(HEADER + 'a = Experiment(name="a")\nb = Experiment(name="b")\n')
    with pytest.raises(ConfigError, match=r"defines 2 Experiments \(a, b\); it must define exactly one"):
        load_experiment(path)


def test_missing_file():
    with pytest.raises(ConfigError, match=r"Config file 'nope\.py' not found"):
        load_experiment("nope.py")


def test_an_exception_inside_the_config_names_its_line(write_config):
    path = write_config(HEADER + "\nraise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match=re.escape(f"{path}:3") + r": the config file raised RuntimeError: boom"):
        load_experiment(path)


def test_overrides_set_any_field_and_are_validated(write_config):
    path = write_config(tiny_config_text())
    exp = load_experiment(
        path,
        [
            "training.batch_size=8",
            "training.phases.finetune.lr=0.5",
            "data.limit=None",
            "model.head.hidden=none",
            "search.metric=accuracy",
            "name=renamed",
        ],
    )
    assert exp.training.batch_size == 8 and exp.training.phases[1].lr == 0.5
    assert exp.data.limit is None and exp.model.head.hidden is None
    assert exp.search.metric == "accuracy" and exp.name == "renamed"
    # `none` stays a string where the field holds one (a pruner named 'none'), and is None elsewhere
    assert load_experiment(path, ["search.pruner=none"]).search.pruner == "none"
    with pytest.raises(ConfigError, match=r"config\.py: --set training\.batchsize=8: .*Did you mean `batch_size`"):
        load_experiment(path, ["training.batchsize=8"])
    with pytest.raises(ConfigError, match=r"`training\.batch_size`: must be an integer >= 1, but got -1"):
        load_experiment(path, ["training.batch_size=-1"])
    with pytest.raises(ConfigError, match=r"expected `dotted\.path=value`"):
        load_experiment(path, ["training.batch_size"])


def test_config_hash_is_stable_and_ignores_where_it_runs(write_config):
    path = write_config(tiny_config_text())
    a = load_experiment(path)
    assert config_hash(a) == config_hash(load_experiment(path))
    assert config_hash(a) == config_hash(load_experiment(path, ["data.root=/elsewhere", "training.device=cpu"]))
    assert config_hash(a) != config_hash(load_experiment(path, ["training.batch_size=16"]))
    assert re.fullmatch(r"[0-9a-f]{16}", config_hash(a))
