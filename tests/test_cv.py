import re

import numpy as np
import pytest

from reproai import CrossValidation
from reproai.errors import DataError, LeakageError
from reproai.nested._folds import Splits
from reproai.nested._leakage import check_splits
from reproai.nested._splits import make_splits

LABELS = np.array([0] * 30 + [1] * 20 + [2] * 10)


@pytest.mark.parametrize(
    "cv",
    [
        CrossValidation(outer_folds=1, inner_folds=1),
        CrossValidation(outer_folds=1, inner_folds=3),
        CrossValidation(outer_folds=5, inner_folds=1),
        CrossValidation(outer_folds=4, inner_folds=3, repeats=2),
    ],
)
def test_splits_are_disjoint_cover_the_data_and_are_stratified(cv):
    splits = make_splits(LABELS, cv, seed=0)
    assert len(splits.outer) == cv.outer_folds * cv.repeats
    for f in splits.outer:
        assert set(f.train) | set(f.test) == set(range(len(LABELS)))
        assert not set(f.train) & set(f.test)
        assert len(f.inner) == cv.inner_folds
        for inner in f.inner:
            assert set(inner.train) | set(inner.dev) == set(f.train)
            assert not set(inner.train) & set(inner.dev)
        # stratified: every class is in every test set, in proportion (within one example)
        counts = np.bincount(LABELS[f.test], minlength=3)
        expected = np.bincount(LABELS) * len(f.test) / len(LABELS)
        assert np.all(np.abs(counts - expected) <= 1)


def test_splits_repeat_with_a_seed_and_differ_across_seeds():
    cv = CrossValidation(outer_folds=3, inner_folds=2)
    a, b = make_splits(LABELS, cv, seed=1), make_splits(LABELS, cv, seed=1)
    assert a.to_dict() == b.to_dict()
    assert a.to_dict() != make_splits(LABELS, cv, seed=2).to_dict()
    assert (
        make_splits(LABELS, CrossValidation(outer_folds=3, seed=5), seed=1).to_dict()
        == make_splits(LABELS, CrossValidation(outer_folds=3, seed=5), seed=2).to_dict()
    )


def test_repeats_use_different_partitions():
    s = make_splits(LABELS, CrossValidation(outer_folds=3, repeats=2), seed=0)
    assert [f.test.tolist() for f in s.outer[:3]] != [f.test.tolist() for f in s.outer[3:]]


def test_json_round_trip(tmp_path):
    s = make_splits(LABELS, CrossValidation(outer_folds=3, inner_folds=2), seed=0, ids=[f"f{i}" for i in range(60)])
    s.save(tmp_path / "splits.json")
    again = Splits.load(tmp_path / "splits.json")
    assert again.to_dict() == s.to_dict() and again.ids[0] == "f0"


def test_the_leakage_check_fires_on_a_corrupted_split():
    s = make_splits(LABELS, CrossValidation(outer_folds=3, inner_folds=2), seed=0)
    leaked = s.outer[1].test[0]
    s.outer[1].inner[0].dev = np.append(s.outer[1].inner[0].dev, leaked)
    with pytest.raises(
        LeakageError,
        match=rf"outer fold 1, inner fold 0: 1 test index\(es\) are in the inner dev set, e\.g\. \[{leaked}\]",
    ):
        check_splits(s)


def test_the_leakage_check_fires_when_outer_folds_do_not_partition():
    s = make_splits(LABELS, CrossValidation(outer_folds=3), seed=0)
    s.outer[0].test = s.outer[0].test[1:]
    s.outer[0].train = np.setdiff1d(s.outer[0].train, [])  # the dropped example is now tested nowhere
    with pytest.raises(LeakageError, match=r"do not partition the data"):
        check_splits(s)


def test_too_few_examples_per_class_for_the_folds():
    with pytest.raises(DataError, match=r"Cannot make 12 stratified outer folds: the smallest class has only 10"):
        make_splits(LABELS, CrossValidation(outer_folds=12), seed=0)


def grouped_labels(n_groups=24, per_group=3, seed=0):
    """Labels and groups: each group (a patient) has several images, all of one class."""
    rng = np.random.default_rng(seed)
    group_class = rng.integers(0, 2, n_groups)
    group_class[:2] = [0, 1]
    groups = np.repeat([f"p{g:02d}" for g in range(n_groups)], per_group)
    labels = np.repeat(group_class, per_group)
    return labels, groups


@pytest.mark.parametrize(
    "cv",
    [
        CrossValidation(outer_folds=3, inner_folds=2),
        CrossValidation(outer_folds=1, inner_folds=1),
        CrossValidation(outer_folds=4, inner_folds=3, repeats=2),
    ],
)
def test_with_groups_every_split_outer_and_inner_is_group_disjoint(cv):
    labels, groups = grouped_labels()
    splits = make_splits(labels, cv, seed=3, groups=groups)
    assert splits.groups == groups.tolist()
    for fold in splits.outer:
        parts = [fold.test, fold.train] + [p for inner in fold.inner for p in (inner.train, inner.dev)]
        assert set(groups[fold.test]).isdisjoint(groups[fold.train])
        for inner in fold.inner:
            for a, b in ((inner.train, inner.dev), (inner.train, fold.test), (inner.dev, fold.test)):
                assert set(groups[a]).isdisjoint(groups[b])
        assert all(len(p) for p in parts)
    again = make_splits(labels, cv, seed=3, groups=groups)
    assert again.to_dict() == splits.to_dict()  # seeded
    assert Splits.from_dict(splits.to_dict()).groups == splits.groups


def test_without_groups_images_of_a_group_land_on_both_sides():
    """So that the group tests above would notice groups being ignored."""
    labels, groups = grouped_labels()
    splits = make_splits(labels, CrossValidation(outer_folds=3, inner_folds=2), seed=3)
    assert any(set(groups[f.test]) & set(groups[f.train]) for f in splits.outer)


def test_the_leakage_check_names_a_group_that_straddles_a_split():
    labels, groups = grouped_labels()
    splits = make_splits(labels, CrossValidation(outer_folds=3, inner_folds=2), seed=3, groups=groups)
    fold = splits.outer[1]
    moved = fold.test[0]  # one image of a test patient moves to outer-train (and its first inner train set)
    fold.test, fold.train = fold.test[1:], np.sort(np.append(fold.train, moved))
    fold.inner[0].train = np.sort(np.append(fold.inner[0].train, moved))
    with pytest.raises(
        LeakageError,
        match=rf"outer fold 1: group '{groups[moved]}' has examples in both outer-test "
        r"and outer-train \(2 and 1 of them\)",
    ):
        check_splits(splits)
    splits = make_splits(labels, CrossValidation(outer_folds=3, inner_folds=2), seed=3, groups=groups)
    inner = splits.outer[0].inner[1]
    moved = inner.dev[0]
    inner.dev, inner.train = inner.dev[1:], np.sort(np.append(inner.train, moved))
    with pytest.raises(
        LeakageError,
        match=rf"group '{groups[moved]}' has examples in both inner fold 1 train and "
        r"inner fold 1 dev",
    ):
        check_splits(splits)


def test_too_few_groups_for_the_folds_is_an_error_with_the_numbers():
    labels = np.array([0] * 12 + [1] * 6)
    groups = np.array([f"a{i // 2}" for i in range(12)] + ["b0"] * 3 + ["b1"] * 3)
    with pytest.raises(
        DataError,
        match=r"Cannot make 3 group-disjoint outer folds: class\(es\) \[1\] have only 2 "
        r"group\(s\) among these 18 examples \(groups per class: \{0: 6, 1: 2\}\).*Use at most 2 folds",
    ):
        make_splits(labels, CrossValidation(outer_folds=3, inner_folds=2), seed=0, groups=groups)


def test_poor_stratification_is_reported_with_the_numbers():
    from reproai.nested._split_summary import split_summary, stratification_problems

    labels = np.array([0] * 30 + [1] * 6)
    groups = np.array([f"a{i // 3}" for i in range(30)] + ["b0"] * 4 + ["b1"] * 1 + ["b2"] * 1)
    splits = make_splits(labels, CrossValidation(outer_folds=3, inner_folds=1, dev_size=0.3), seed=1, groups=groups)
    problems = stratification_problems(splits, labels, ["neg", "pos"])
    assert problems and all(re.search(r"outer fold \d+, \S+ \(\d+ images\) has", p) for p in problems), problems
    rows = split_summary(splits, labels, ["neg", "pos"])
    assert {"repeat", "outer_fold", "part", "images", "groups", "images_neg", "images_pos"} <= set(rows[0])
    first = [r for r in rows if r["outer_fold"] == 0]
    assert [r["part"] for r in first] == ["outer-train", "outer-test", "inner-0-train", "inner-0-dev"]


def test_a_splits_file_may_give_test_groups(tmp_path):
    import json

    from reproai.nested._splits import splits_from_file

    labels, groups = grouped_labels()
    ids = [f"img{i}" for i in range(len(labels))]
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"outer": [{"test_groups": ["p00", "p01", "p05"]}]}))
    splits = splits_from_file(path, labels, CrossValidation(inner_folds=2), seed=0, ids=ids, groups=groups)
    assert sorted(set(groups[splits.outer[0].test])) == ["p00", "p01", "p05"]
    text = tmp_path / "test_groups.txt"
    text.write_text("p00\np01\np05\n")
    again = splits_from_file(text, labels, CrossValidation(inner_folds=2), seed=0, ids=ids, groups=groups)
    assert np.array_equal(again.outer[0].test, splits.outer[0].test)


def test_a_final_stage_runs_with_more_than_one_outer_fold_or_repeat():
    from reproai.nested._splits import has_final_stage

    assert has_final_stage(CrossValidation(outer_folds=3, inner_folds=2))
    assert has_final_stage(CrossValidation(outer_folds=1, inner_folds=2, repeats=2))
    assert not has_final_stage(CrossValidation(outer_folds=1, inner_folds=2))  # the fold's refit is the model
    assert not has_final_stage(CrossValidation(outer_folds=3, inner_folds=2, final_model=False))
