import numpy as np
import pytest

from reproai import CrossValidation
from reproai.cv import LeakageError, Splits, check_splits, make_splits
from reproai.errors import DataError

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
