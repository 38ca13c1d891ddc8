"""Item 6: faults in the data stop ``reproai run`` with a clear error before any work starts (no run is
created, nothing is trained), or follow an explicit policy."""

import shutil

import pytest
from mlflow import MlflowClient

from reproai.cli import main
from tests.conftest import make_image_folder, tiny_config_text


def _run(path, tmp_path):
    return main(
        [
            "run",
            str(path),
            "--tracking-uri",
            f"sqlite:///{tmp_path / 'mlflow.db'}",
            "--storage",
            f"sqlite:///{tmp_path / 'optuna.db'}",
            "--quiet",
        ]
    )


def _config(write_config, root, cv="CrossValidation(outer_folds=2, inner_folds=2)", extra=""):
    text = tiny_config_text(name="faults", data=f"Data.image_folder({str(root)!r}{extra})", epochs=1, cv=cv)
    return write_config(text + "experiment.model.image_size = 16\nexperiment.training.batch_size = 2\n")


def _runs(tmp_path):
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("faults")
    return [] if experiment is None else client.search_runs([experiment.experiment_id], max_results=1000)


def _empty_class(root):
    (root / "bird").mkdir()


def _too_few_for_the_folds(root):
    for path in sorted((root / "dog").iterdir())[2:]:
        path.unlink()


def _missing_folder(root):
    shutil.rmtree(root)


def _unreadable_image(root):
    (root / "cat" / "cat_3.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")


def _identical_files(root):
    (root / "dog" / "dog_from_cat.png").write_bytes((root / "cat" / "cat_0.png").read_bytes())


CASES = {
    "empty class": (_empty_class, "", r"Class folder\(s\) \['bird'\] under data\.root='.*' hold no image files"),
    "class smaller than the folds": (
        _too_few_for_the_folds,
        "",
        r"Cannot make 2 stratified .*folds: the smallest "
        r"class has only",
    ),
    "missing data folder": (_missing_folder, "", r"data\.root='.*images' is not a folder"),
    "unreadable image": (_unreadable_image, "", r"Cannot decode image .*cat_3\.png.*data\.on_error='skip'"),
    "identical files, duplicates='error'": (
        _identical_files,
        ", duplicates='error'",
        r"1 group\(s\) of identical files .*cat/cat_0\.png \(cat\) = "
        r"dog/dog_from_cat\.png \(dog\)",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_data_stops_before_any_work(case, write_config, tmp_path, capsys):
    import re

    damage, extra, message = CASES[case]
    root = make_image_folder(tmp_path / "images", n_per_class=8, size=16)
    damage(root)
    assert _run(_config(write_config, root, extra=extra), tmp_path) == 2
    err = capsys.readouterr().err
    assert err.startswith("reproai: error: ") and re.search(message, err), err
    assert _runs(tmp_path) == []  # nothing started


@pytest.mark.slow
def test_policies_skip_unreadable_images_and_drop_identical_files(write_config, tmp_path):
    root = make_image_folder(tmp_path / "images", n_per_class=8, size=16)
    _unreadable_image(root)
    _identical_files(root)
    path = _config(write_config, root, extra=", on_error='skip'")
    with pytest.warns(UserWarning) as caught:
        assert _run(path, tmp_path) == 0
    said = " ".join(str(w.message) for w in caught)
    assert "cat_3.png" in said and "left out 2 file(s) of 1 group(s) of identical files" in said
    (study,) = [r for r in _runs(tmp_path) if r.data.tags["reproai.level"] == "study"]
    assert study.data.tags["reproai.n_examples"] == str(17 - 1 - 2)  # 17 files, one unreadable, two identical


@pytest.mark.slow
def test_data_changed_between_the_first_run_and_a_resume(write_config, tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", n_per_class=8, size=16)
    path = _config(write_config, root, cv="CrossValidation(outer_folds=2, inner_folds=1)")
    assert _run(path, tmp_path) == 0
    before = {(r.info.run_id, r.info.status) for r in _runs(tmp_path)}
    make_image_folder(root, n_per_class=1, size=16, seed=5)  # cat_0.png and dog_0.png replaced
    capsys.readouterr()
    assert _run(path, tmp_path) == 2
    err = capsys.readouterr().err
    assert "The data changed since study" in err and "resuming would mix results on different data" in err
    assert {(r.info.run_id, r.info.status) for r in _runs(tmp_path)} == before  # the finished study is untouched
