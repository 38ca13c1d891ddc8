"""Nested cross-validation: the splits and the leakage check, the search inside each outer fold, the
refit and test, the final model, the study that runs them, its provenance, and reruns."""

from reproai.errors import LeakageError
from reproai.nested._final import FINAL_ALIAS, quote, trained_on
from reproai.nested._fits import weights_sha256
from reproai.nested._folds import InnerFold, OuterFold, Splits
from reproai.nested._leakage import check_splits
from reproai.nested._plan import FitPlan, fit_seed
from reproai.nested._rerun import RerunReport, rerun
from reproai.nested._sampling import make_pruner, make_sampler
from reproai.nested._splits import final_fold, has_final_stage, make_splits, splits_from_file
from reproai.nested._study import StudyResult, prepare_data, prepare_splits, run_experiment

__all__ = [
    "FINAL_ALIAS",
    "FitPlan",
    "InnerFold",
    "LeakageError",
    "OuterFold",
    "RerunReport",
    "Splits",
    "StudyResult",
    "check_splits",
    "final_fold",
    "fit_seed",
    "has_final_stage",
    "make_pruner",
    "make_sampler",
    "make_splits",
    "prepare_data",
    "prepare_splits",
    "quote",
    "rerun",
    "run_experiment",
    "splits_from_file",
    "trained_on",
    "weights_sha256",
]
