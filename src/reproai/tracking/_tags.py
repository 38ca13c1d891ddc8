"""The MLflow tag keys reproai writes and the levels of its run tree, in one place.

Analysis finds runs by these tags, never by run names: study -> outer fold (or the final fold) -> trial ->
fit -> phase.
"""

from __future__ import annotations

__all__ = ["PREFIX", "Tag", "Level"]

PREFIX = "reproai."


class Tag:
    """Tag keys (all prefixed ``reproai.``)."""

    LEVEL = PREFIX + "level"
    STUDY_ID = PREFIX + "study_id"
    OUTER_FOLD = PREFIX + "outer_fold"
    REPEAT = PREFIX + "repeat"
    TRIAL = PREFIX + "trial"
    INNER_FOLD = PREFIX + "inner_fold"
    PHASE = PREFIX + "phase"
    REFIT = PREFIX + "refit"
    WORKER = PREFIX + "worker"
    STATE = PREFIX + "state"
    ERROR = PREFIX + "error"
    INNER_FOLDS_RUN = PREFIX + "inner_folds_run"
    RETRIED_TRIALS = PREFIX + "retried_trials"
    BEST_PARAMS = PREFIX + "best_params"
    BEST_TRIAL = PREFIX + "best_trial"
    OPTUNA_STUDY = PREFIX + "optuna_study"
    OPTUNA_PREFIX = PREFIX + "optuna_prefix"
    OPTUNA_STORAGE = PREFIX + "optuna_storage"
    DISTRIBUTIONS = PREFIX + "distributions"
    METRIC = PREFIX + "metric"
    DIRECTION = PREFIX + "direction"
    CI_METHOD = PREFIX + "ci_method"
    CONFIG_FILE = PREFIX + "config_file"
    CONFIG_HASH = PREFIX + "config_hash"
    DATA_FINGERPRINT = PREFIX + "data_fingerprint"
    CLASSES = PREFIX + "classes"
    N_EXAMPLES = PREFIX + "n_examples"
    N_GROUPS = PREFIX + "n_groups"
    SEED = PREFIX + "seed"
    SEARCH = PREFIX + "search"
    GIT_COMMIT = PREFIX + "git_commit"
    RERUN_OF = PREFIX + "rerun_of"
    MODEL_URI = PREFIX + "model_uri"
    MODEL_ERROR = PREFIX + "model_error"
    FINAL_MODEL = PREFIX + "final_model"
    FINAL_MODEL_RUN = PREFIX + "final_model_run"
    IDENTICAL = PREFIX + "identical"
    DETERMINISTIC = PREFIX + "deterministic"
    USE_DETERMINISTIC_ALGORITHMS = PREFIX + "use_deterministic_algorithms"
    CUBLAS_WORKSPACE_CONFIG = PREFIX + "cublas_workspace_config"


class Level:
    """Values of :attr:`Tag.LEVEL`: where a run sits in the run tree."""

    STUDY = "study"
    OUTER_FOLD = "outer_fold"
    TRIAL = "trial"
    FIT = "fit"
    PHASE = "phase"
    FINAL = "final"
    RERUN = "rerun"
