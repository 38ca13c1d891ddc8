"""Components: registries, Component objects in config trees, validation of names, import paths and
arguments, recording by name, and the checks made once the model is built."""

import re
import subprocess
import sys

import optuna
import pytest
import torch

import reproai
from reproai import Component, ConfigError, load_config
from reproai.config._registry import registry
from reproai.config._targets import import_path
from reproai.config._tree import from_jsonable, iter_parameters, resolve, set_path, to_jsonable
from tests.conftest import REPO

HEADER = """
from torch import nn
from reproai import Component, CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training, hp


def net(num_classes, width=4):
    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, num_classes))

"""


def experiment_text(
    model="Model(backbone='small_cnn', pretrained=False)",
    optimizer='"adamw"',
    scheduler='"cosine"',
    loss='"cross_entropy"',
    freeze=False,
    data="Data.digits(limit=120)",
):
    return (
        HEADER
        + f"""
experiment = Experiment(
    name="components",
    data={data},
    model={model},
    training=Training(batch_size=16, loss={loss}, phases=[
        Phase("warm", epochs=1, freeze_backbone={freeze}),
        Phase("train", epochs=1, optimizer={optimizer}, scheduler={scheduler}),
    ]),
    cv=CrossValidation(outer_folds=1, inner_folds=1, final_model=False),
    search=Search(pruner="none"),
)
"""
    )


def test_every_kind_has_a_registry_whose_names_resolve():
    for kind in (
        "dataset",
        "model",
        "backbone",
        "loss",
        "optimizer",
        "lr_scheduler",
        "augmentation",
        "sampler",
        "pruner",
        "metric",
        "config",
    ):
        reg = registry(kind)
        for name in reg.names():
            assert reg.entry(name).load() is not None, (kind, name)
    with pytest.raises(ConfigError, match=r"unknown kind of component 'optimiser'"):
        registry("optimiser")


def test_names_import_paths_and_objects_resolve_to_the_same_component():
    optimizers = registry("optimizer")
    assert optimizers.entry("SGD").load() is torch.optim.SGD  # any torch.optim class by name
    assert optimizers.entry("torch.optim:SGD").load() is torch.optim.SGD
    assert optimizers.entry(torch.optim.SGD).load() is torch.optim.SGD
    assert optimizers.entry("sgd").defaults == {"momentum": 0.9}  # today's string keeps its meaning
    assert registry("lr_scheduler").entry("OneCycleLR").load() is torch.optim.lr_scheduler.OneCycleLR
    assert registry("sampler").entry("CmaEsSampler").load() is optuna.samplers.CmaEsSampler


def test_a_user_registration_is_found_by_name():
    @reproai.register("loss", "my_test_loss")
    def my_loss(logits, targets):
        return logits.sum() * 0

    assert registry("loss").entry("my_test_loss").load() is my_loss
    with pytest.raises(ConfigError, match=r"Did you mean 'my_test_loss'"):
        registry("loss").entry("my_test_los")


def test_a_component_is_a_node_of_the_tree_named_by_its_path():
    spec = Component("SGD", momentum=reproai.hp.float(0.5, 0.99), nesterov=True)
    tree = {
        "optimizer": reproai.hp.choice(
            {"sgd": spec, "adamw": Component("AdamW", betas=(0.9, reproai.hp.float(0.9, 0.999)))}
        )
    }
    names = {p.name: p.condition for p in iter_parameters(tree)}
    assert names == {
        "optimizer": None,
        "optimizer.sgd.momentum": "optimizer == 'sgd'",
        "optimizer.adamw.betas.1": "optimizer == 'adamw'",
    }
    out = resolve(tree, {"optimizer": "adamw", "optimizer.adamw.betas.1": 0.95})
    assert out["optimizer"] == Component("AdamW", betas=(0.9, 0.95))
    assert set_path(out, "optimizer.betas", (0.8, 0.9))["optimizer"].kwargs["betas"] == (0.8, 0.9)
    again = from_jsonable(to_jsonable(tree))
    assert again == tree


def test_classes_and_functions_are_recorded_by_import_path():
    assert import_path(torch.optim.SGD) == "torch.optim.sgd:SGD"
    assert to_jsonable(Component(torch.optim.SGD, momentum=0.5)) == {
        "__component__": "torch.optim.sgd:SGD",
        "kwargs": {"momentum": 0.5},
    }


def test_the_config_hash_is_the_same_in_two_processes():
    code = "from reproai import load_config; print(load_config('configs/custom_components.py').hash)"
    hashes = {
        subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
        for _ in range(2)
    }
    assert len(hashes) == 1 and re.fullmatch(r"[0-9a-f]{16}\n", hashes.pop())


def test_the_config_hash_covers_a_function_defined_in_the_config(write_config):
    a = load_config(write_config(experiment_text(model="Model(factory=net)"), "a.py")).hash
    changed = HEADER.replace("nn.Linear(3 * 8 * 8, num_classes)", "nn.Linear(3 * 8 * 8, num_classes, bias=False)")
    b = load_config(write_config(experiment_text(model="Model(factory=net)").replace(HEADER, changed), "b.py")).hash
    assert a != b


@pytest.mark.parametrize(
    "kwargs, path_re, what",
    [
        (
            {"optimizer": '"adamx"'},
            r"`training\.phases\.train\.optimizer`",
            r"unknown optimizer 'adamx'\. Did you mean .*'adamw'.*torch\.optim",
        ),
        (
            {"optimizer": '"no_such_module.sub:Opt"'},
            r"`training\.phases\.train\.optimizer`",
            r"cannot import 'no_such_module\.sub:Opt': ModuleNotFoundError",
        ),
        (
            {"scheduler": '"torch.optim.lr_scheduler:CosineAnealingLR"'},
            r"`training\.phases\.train\.scheduler`",
            r"has no attribute 'CosineAnealingLR'\. Did you mean 'CosineAnnealingLR'",
        ),
        (
            {"optimizer": 'Component("SGD", momentun=0.9)'},
            r"`training\.phases\.train\.optimizer`",
            r"SGD\(\) does not accept the keyword `momentun`\. Did you mean `momentum`\? It accepts: lr, momentum,",
        ),
        (
            {"scheduler": 'Component("StepLR")'},
            r"`training\.phases\.train\.scheduler`",
            r"StepLR\(\) needs the argument `step_size`, which is not given",
        ),
        (
            {"model": "Model(factory=net, kwargs={'widht': 3})"},
            r"`model\.factory`",
            r"net\(\) does not accept the keyword `widht`\. Did you mean `width`\?",
        ),
        (
            {"loss": "lambda logits, y: logits.sum()"},
            r"`training\.loss`",
            r"a lambda .* cannot be recorded by name.* Define it with `def` at module level",
        ),
        (
            {"model": "Model(backbone='small_cnn', pretrained='nowhere.pth')"},
            r"`model\.pretrained`",
            r"the weights file 'nowhere\.pth' does not exist",
        ),
        (
            {"optimizer": 'Component("SGD", lr=0.1)'},
            r"`training\.phases\.train\.optimizer`",
            r"`lr` is a field of the phase",
        ),
    ],
)
def test_component_errors_name_file_field_and_fix(write_config, kwargs, path_re, what):
    path = write_config(experiment_text(**kwargs))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert re.search(path_re + r" \(at " + re.escape(str(path)) + r":\d+\)", message), message  # file and line
    assert re.search(what, message), message


def test_a_missing_required_argument_says_where_to_add_it(write_config):
    text = experiment_text(model="Model(factory=needs_depth)").replace(
        "\nexperiment", "\ndef needs_depth(num_classes, depth):\n    return None\n\nexperiment"
    )
    with pytest.raises(
        ConfigError,
        match=r"`model\.factory` \(at \S+\.py:\d+\): needs_depth\(\) needs the argument `depth`, which is "
        r"not given; add it to model\.kwargs",
    ):
        load_config(write_config(text))


def test_a_closure_is_refused(write_config):
    text = experiment_text(loss="make_loss()").replace(
        "\nexperiment",
        "\ndef make_loss():\n    def inner(logits, y):\n        return logits.sum()\n    return inner\n\nexperiment",
    )
    with pytest.raises(
        ConfigError,
        match=r"`training\.loss` \(at \S+\.py:\d+\): make_loss\.<locals>\.inner is defined inside a function",
    ):
        load_config(write_config(text))


def test_a_choice_is_checked_branch_by_branch(write_config):
    text = experiment_text(optimizer='hp.choice({"sgd": "sgd", "bad": Component("AdamW", momentum=0.9)})')
    with pytest.raises(ConfigError) as info:
        load_config(write_config(text))
    assert re.search(
        r"`training\.phases\.train\.optimizer\.bad` \(at \S+\.py:\d+\): "
        r"AdamW\(\) does not accept the keyword `momentum`",
        str(info.value),
    ), info.value
    assert "optimizer.sgd" not in str(info.value)


def test_a_choice_between_whole_phases_validates_and_is_listed(write_config, capsys):
    from reproai.cli import main

    text = experiment_text().replace(
        'Phase("train", epochs=1, optimizer="adamw", scheduler="cosine"),',
        'hp.choice({"sgd": Phase("train", epochs=1, optimizer="sgd", momentum=hp.float(0.0, 0.99)),'
        ' "adamw": Phase("train", epochs=1, lr=hp.float(1e-4, 1e-2, log=True))}),',
    )
    path = write_config(text)
    load_config(path)
    assert main(["space", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"training\.phases\.1\.sgd\.momentum .* if training\.phases\.1 == 'sgd'", out), out
    assert re.search(r"training\.phases\.1\.adamw\.lr .* if training\.phases\.1 == 'adamw'", out), out
    bad = text.replace('"adamw": Phase(', '"adamw": Head(hidden=3), "x": Phase(')
    with pytest.raises(
        ConfigError, match=r"`training\.phases\.1\.adamw` \(at \S+\.py:\d+\): must be a Phase\(\.\.\.\), but got Head"
    ):
        load_config(write_config(bad, "bad.py"))


@pytest.mark.parametrize(
    "model, freeze, what",
    [
        (
            "Model(factory=net)",
            True,
            r"`training\.phases\.warm\.freeze_backbone`: the phase freezes the backbone, but the model '<config>:net' "
            r"\(Sequential\) declares no backbone",
        ),
        (
            "Model(factory=wrong_shape)",
            False,
            r"`model\.factory`: the model '<config>:wrong_shape' returned outputs of shape \(2, 3\) for a batch of 2 "
            r"images, but 10 classes need logits of shape \(n, 10\)",
        ),
    ],
)
def test_the_model_is_built_and_checked_before_any_work(write_config, model, freeze, what):
    from reproai.nested._study import run_experiment

    text = experiment_text(model=model, freeze=freeze).replace(
        "\nexperiment",
        "\ndef wrong_shape(num_classes):\n    return nn.Sequential(nn.Flatten(), nn.Linear(192, 3))\n\nexperiment",
    )
    path = write_config(text)
    with pytest.raises(ConfigError) as info:
        run_experiment(load_config(path), progress=False)
    assert str(path) in str(info.value) and re.search(what, str(info.value)), info.value
    assert not (path.parent / "mlflow.db").exists() or "components" not in _experiments(path.parent)


def _experiments(folder):
    from mlflow import MlflowClient

    return [e.name for e in MlflowClient(f"sqlite:///{folder / 'mlflow.db'}").search_experiments()]


def test_a_model_of_ones_own_declares_its_backbone_and_trains(write_config):
    from reproai.nested._study import run_experiment

    text = (
        experiment_text(model="Model(factory=TwoParts, kwargs={'width': 8})", freeze=True)
        .replace(
            "\nexperiment",
            """
class TwoParts(nn.Module):
    def __init__(self, num_classes, width):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten())
        self.head = nn.Linear(width, 2)  # two logits for 10 classes is wrong: see below

    def forward(self, x):
        return self.head(self.backbone(x))

experiment""",
        )
        .replace("nn.Linear(width, 2)", "nn.Linear(width, num_classes)")
    )
    result = run_experiment(load_config(write_config(text)), progress=False)
    assert 0.0 <= result.summary["roc_auc"]["mean"] <= 1.0
