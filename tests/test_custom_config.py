"""configs/custom_components.py end to end: a network, loss, optimizer and scheduler of one's own, with a
conditional search over the optimizer's arguments; and a choice between two whole phases."""

import re
import shutil

import pytest
from mlflow import MlflowClient

from reproai.cli import main
from tests.conftest import REPO, tiny_config_text

pytestmark = pytest.mark.slow


def runs_by_level(tmp_path, name):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name(name).experiment_id], max_results=5000)
    out = {}
    for r in runs:
        out.setdefault(r.data.tags.get("reproai.level"), []).append(r)
    return out


def test_the_custom_components_config_lists_runs_resumes_and_reruns(tmp_path, capsys):
    config = tmp_path / "custom_components.py"
    shutil.copy(REPO / "configs" / "custom_components.py", config)
    assert main(["space", str(config)]) == 0
    space = capsys.readouterr().out
    for line in [
        r"model\.kwargs\.width +hp\.categorical",
        r"model\.kwargs\.depth +hp\.int",
        r"training\.phases\.train\.lr +hp\.float",
        r"training\.phases\.train\.optimizer +hp\.choice\(sgd \| adamw\)",
        r"training\.phases\.train\.optimizer\.sgd\.momentum .* if training\.phases\.train\.optimizer == 'sgd'",
        r"training\.phases\.train\.optimizer\.sgd\.nesterov .* if training\.phases\.train\.optimizer == 'sgd'",
        r"training\.phases\.train\.optimizer\.adamw\.betas\.1 .* if training\.phases\.train\.optimizer == 'adamw'",
        r"training\.loss\.label_smoothing +hp\.float",
    ]:
        assert re.search(line, space), (line, space)

    assert main(["run", str(config), "--quiet"]) == 0
    first = capsys.readouterr().out
    auc = re.search(r"test roc_auc: (0\.\d+), 95% CI", first)
    assert auc and float(auc.group(1)) > 0.95, first  # the example learns: chance is 0.5
    before = runs_by_level(tmp_path, "custom-components")
    outer_trials = [r for r in before["trial"] if r.data.tags["reproai.outer_fold"] != "final"]
    assert len(before["outer_fold"]) == 2 and len(outer_trials) == 8
    assert len(before["final"]) == 1 and len(before["trial"]) == 12  # the final model's search: 4 more trials
    assert "final model: models:/custom-components@final" in first

    assert main(["run", str(config), "--quiet"]) == 0  # the same command again: nothing is recomputed
    again = capsys.readouterr().out
    after = runs_by_level(tmp_path, "custom-components")
    assert {k: len(v) for k, v in after.items()} == {k: len(v) for k, v in before.items()}
    assert "resumed and finished" in again and first.splitlines()[1:] == again.splitlines()[1:]

    refit = next(
        r
        for r in after["fit"]
        if r.data.tags.get("reproai.refit") == "true" and r.data.tags["reproai.outer_fold"] == "0"
    )
    assert main(["rerun", refit.info.run_id, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "refit: test predictions identical, byte for byte" in out and "reproduced exactly" in out


def test_a_choice_between_two_whole_phases_runs(write_config, tmp_path, capsys):
    text = (
        tiny_config_text(name="phase-choice", cv="CrossValidation(outer_folds=2, inner_folds=2)").replace(
            'Phase("finetune", epochs=2, lr=3e-3, early_stopping_patience=2),',
            'hp.choice({"sgd": Phase("finetune", epochs=2, optimizer="sgd", momentum=hp.float(0.0, 0.99)),'
            ' "adamw": Phase("finetune", epochs=2, lr=hp.float(1e-4, 1e-2, log=True))}),',
        )
        + "\nexperiment.search.n_trials = 4\nexperiment.search.pruner = 'none'\nexperiment.search.sampler = 'random'\n"
    )
    path = write_config(text)
    assert main(["space", str(path)]) == 0
    space = capsys.readouterr().out
    assert re.search(r"training\.phases\.1\.sgd\.momentum .* if training\.phases\.1 == 'sgd'", space), space
    assert re.search(r"training\.phases\.1\.adamw\.lr .* if training\.phases\.1 == 'adamw'", space), space
    assert main(["run", str(path), "--quiet"]) == 0
    runs = runs_by_level(tmp_path, "phase-choice")
    chosen = {r.data.params["training.phases.1"] for r in runs["trial"]}
    assert chosen == {"sgd", "adamw"}  # both branches were tried (random sampler, seeded)
    for r in runs["trial"]:  # each trial has the parameters of its branch only
        branch = r.data.params["training.phases.1"]
        other = "adamw" if branch == "sgd" else "sgd"
        assert any(k.startswith(f"training.phases.1.{branch}.") for k in r.data.params)
        assert not any(k.startswith(f"training.phases.1.{other}.") for k in r.data.params)


# Issue 18's config, character for character as the issue wrote it ("this config must run as written"):
# no batch norm, 3 epochs, OneCycleLR with its own max_lr. configs/custom_components.py is the same search
# on a network and schedule that learn the digits well; this one only has to run.
AS_WRITTEN = """
import torch
from torch import nn
from reproai import CrossValidation, Data, Experiment, Model, Phase, Search, Training, Component, hp


def tiny_net(num_classes: int, width: int = 16, depth: int = 2) -> nn.Module:
    layers, c = [], 3
    for _ in range(depth):
        layers += [nn.Conv2d(c, width, 3, padding=1), nn.ReLU()]
        c = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(width, 1 if num_classes == 2 else num_classes))


experiment = Experiment(
    name="custom-components",
    data=Data.digits(),
    model=Model(factory=tiny_net, kwargs={"width": hp.categorical([8, 16]), "depth": hp.int(1, 3)}),
    training=Training(
        batch_size=64,
        loss=Component("cross_entropy", class_weight="balanced", label_smoothing=hp.float(0.0, 0.2)),
        phases=[Phase("train", epochs=3, lr=hp.float(1e-3, 1e-1, log=True),
                      optimizer=hp.choice({
                          "sgd": Component("SGD", momentum=hp.float(0.5, 0.99), nesterov=hp.categorical([True, False])),
                          "adamw": Component("AdamW", betas=(0.9, hp.float(0.9, 0.999))),
                      }),
                      scheduler=Component("OneCycleLR", max_lr=0.1))],
    ),
    cv=CrossValidation(outer_folds=2, inner_folds=2),
    search=Search(n_trials=4),
    seed=3,
)
"""


def test_the_issues_config_runs_as_written(tmp_path, capsys):
    config = tmp_path / "config.py"
    config.write_text(AS_WRITTEN)
    assert main(["space", str(config)]) == 0
    space = capsys.readouterr().out
    assert re.search(r"training\.phases\.train\.optimizer\.sgd\.momentum .* if .*== 'sgd'", space), space
    assert re.search(r"training\.phases\.train\.optimizer\.adamw\.betas\.1 .* if .*== 'adamw'", space), space
    assert main(["run", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"test roc_auc: 0\.\d+, 95% CI", out) and "final model: models:/custom-components@final" in out
    runs = runs_by_level(tmp_path, "custom-components")
    assert len([r for r in runs["trial"] if r.data.tags["reproai.outer_fold"] != "final"]) == 2 * 4
