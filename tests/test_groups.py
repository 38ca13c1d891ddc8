"""Subjects kept together: a table over the real sample with synthetic subject ids (several images per
subject, every subject one class), a 3 x 2 nested study on it, and its splits read back from MLflow."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from mlflow import MlflowClient

from reproai.cli import main
from tests.conftest import PETS_IMAGES, needs_shared

pytestmark = [needs_shared(), pytest.mark.slow]

CONFIG = """
from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training, hp

experiment = Experiment(
    name={name!r},
    data=Data.table({table!r}, image="file", label="species", {group}root={root!r}),
    model=Model(backbone="small_cnn", pretrained=False, head=Head(hidden=hp.categorical([8, 16])), image_size=32),
    training=Training(batch_size=32, phases=[Phase("train", epochs=1, lr=3e-3)]),
    cv=CrossValidation(outer_folds=3, inner_folds=2, final_model=False),
    search=Search(n_trials=2, pruner="none"),
    seed=11,
)
"""


def write_table(path):
    """Four consecutive images of a breed make one subject, of one class (the species)."""
    images = sorted(PETS_IMAGES.glob("*.jpg"), key=lambda p: (p.stem.rsplit("_", 1)[0], int(p.stem.rsplit("_", 1)[1])))
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["file", "species", "subject"])
        for k, p in enumerate(images):
            breed = p.stem.rsplit("_", 1)[0]
            out.writerow([p.name, "cat" if breed[0].isupper() else "dog", f"{breed}-{k // 4}"])
    return {row[0]: row[2] for row in csv.reader(path.read_text().splitlines())}


def logged_splits(tmp_path, name):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    study = client.search_runs([experiment.experiment_id], "tags.`reproai.level` = 'study'")[0]
    path = client.download_artifacts(study.info.run_id, "splits.json", str(tmp_path / name))
    return json.loads(Path(path).read_text()), study, client


def parts(fold):
    yield "outer-test", fold["test"], "outer-train", fold["train"]
    for j, inner in enumerate(fold["inner"]):
        yield f"inner {j} train", inner["train"], f"inner {j} dev", inner["dev"]
        yield f"inner {j} train", inner["train"], "outer-test", fold["test"]
        yield f"inner {j} dev", inner["dev"], "outer-test", fold["test"]


def test_a_grouped_table_gives_group_disjoint_nested_splits_and_group_metrics(write_config, tmp_path, capsys):
    subject = write_table(tmp_path / "pets.csv")
    for name, group in (("grouped", 'group="subject", '), ("ungrouped", "")):
        config = write_config(
            CONFIG.format(name=name, table=str(tmp_path / "pets.csv"), group=group, root=str(PETS_IMAGES)), f"{name}.py"
        )
        assert main(["run", str(config), "--quiet"]) == 0

    splits, study, client = logged_splits(tmp_path, "grouped")
    ids = splits["ids"]
    assert splits["groups"] == [subject[i] for i in ids]  # the splits file records each example's group
    assert len(splits["outer"]) == 3 and all(len(f["inner"]) == 2 for f in splits["outer"])
    for fold in splits["outer"]:
        for a_name, a, b_name, b in parts(fold):
            shared = {subject[ids[i]] for i in a} & {subject[ids[i]] for i in b}
            assert not shared, f"outer fold {fold['fold']}: {sorted(shared)[:3]} in {a_name} and {b_name}"
    assert study.data.tags["reproai.n_groups"] == "100"
    summary = client.download_artifacts(study.info.run_id, "splits/summary.json", str(tmp_path / "summary"))
    table = json.loads(Path(summary).read_text())
    assert table["columns"][:5] == ["repeat", "outer_fold", "part", "images", "groups"]
    assert sum(row[3] for row in table["data"] if row[2] == "outer-test") == len(ids)

    # The same table without its group column puts some subject on both sides: the checks above would notice.
    plain, _, _ = logged_splits(tmp_path, "ungrouped")
    assert "groups" not in plain
    assert any(
        {subject[plain["ids"][i]] for i in f["test"]} & {subject[plain["ids"][i]] for i in f["train"]}
        for f in plain["outer"]
    )

    capsys.readouterr()
    assert main(["analyze", "grouped", "--by-group", "--bootstrap", "100", "--out", str(tmp_path / "report")]) == 0
    out = capsys.readouterr().out
    assert "group level (100 group predictions" in out
    group_folds = (tmp_path / "report" / "group_fold_metrics.csv").read_text().splitlines()
    assert len(group_folds) == 4 and sum(int(line.split(",")[2]) for line in group_folds[1:]) == 100
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Group level" in html and "Mandelkern" in html and "groups" in html
    assert np.isfinite(float(out.split("roc_auc")[1].split()[0]))
