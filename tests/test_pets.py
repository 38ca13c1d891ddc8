"""The flagship task on the real Oxford-IIIT Pet sample with the real pretrained backbone."""

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from reproai.cli import main
from tests.conftest import PETS_ROOT, REPO, WEIGHTS, model_server, needs_shared

pytestmark = [needs_shared(), needs_shared(WEIGHTS), pytest.mark.slow]


def test_pets_config_fine_tunes_the_pretrained_backbone(tmp_path):
    uri = f"sqlite:///{tmp_path / 'runs.db'}"
    args = [
        "run",
        str(REPO / "configs" / "pets.py"),
        "--tracking-uri",
        uri,
        "--quiet",
        "--set",
        f"data.root={PETS_ROOT}",
        "--set",
        f"model.pretrained={WEIGHTS}",
        # a small, fast version of the real run: 100 images at 128 px, one epoch per phase
        "--set",
        "data.limit=100",
        "--set",
        "model.image_size=128",
        "--set",
        "training.phases.warmup.epochs=1",
        "--set",
        "training.phases.finetune.epochs=1",
    ]
    with pytest.warns(UserWarning, match="labelled from their file names"):
        assert main(args) == 0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("pets-species")
    (study,) = client.search_runs([exp.experiment_id], "tags.`reproai.level` = 'study'")
    # Pretrained ImageNet features separate cats from dogs almost perfectly, even after one epoch.
    assert study.data.metrics["test_roc_auc_mean"] > 0.9
    phases = client.search_runs([exp.experiment_id], "tags.`reproai.level` = 'phase'")
    assert sorted(p.data.params["freeze_backbone"] for p in phases) == ["False", "True"]

    # One outer fold: its refit is the final model. It predicts the sample's odd files, a GIF and a PNG
    # named .jpg, through `reproai predict` and through the served model alike.
    odd = [
        PETS_ROOT / "oxford-iiit-pet" / "images" / n
        for n in ("Abyssinian_34.jpg", "Abyssinian_5.jpg", "american_bulldog_10.jpg")
    ]
    assert (
        main(
            [
                "predict",
                "models:/pets-species@final",
                *map(str, odd),
                "--tracking-uri",
                uri,
                "--out",
                str(tmp_path / "p.csv"),
                "--strict",
                "--quiet",
            ]
        )
        == 0
    )
    predicted = pd.read_csv(tmp_path / "p.csv", dtype={"predicted": str})
    assert predicted["error"].isna().all() and list(predicted["predicted"]) == ["cat", "cat", "dog"]
    with model_server("models:/pets-species@final", uri, tmp_path) as post:
        served = post(odd)
    columns = ["probability_cat", "probability_dog"]
    assert served["error"].isna().all()
    assert np.array_equal(served[columns].to_numpy(), predicted[columns].to_numpy())
