"""Nested cross-validation: the splits and the leakage check, the search inside each outer fold, the
refit and test, the final model, the study that runs them, its provenance, and reruns."""

from reproai.nested._final import FINAL_ALIAS, quote, trained_on
from reproai.nested._fits import weights_sha256
from reproai.nested._rerun import RerunReport, rerun
from reproai.nested._splits import (
    InnerFold,
    LeakageError,
    OuterFold,
    Splits,
    check_splits,
    final_fold,
    has_final_stage,
    make_splits,
    splits_from_file,
)
from reproai.nested._study import StudyResult, prepare_data, prepare_splits, run_experiment

__all__ = [
    "run_experiment",
    "StudyResult",
    "prepare_data",
    "prepare_splits",
    "Splits",
    "OuterFold",
    "InnerFold",
    "make_splits",
    "splits_from_file",
    "final_fold",
    "has_final_stage",
    "check_splits",
    "LeakageError",
    "rerun",
    "RerunReport",
    "weights_sha256",
    "FINAL_ALIAS",
    "quote",
    "trained_on",
]
