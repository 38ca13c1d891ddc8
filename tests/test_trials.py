"""Optuna's private names that reproai relies on (reproai/trials.py), each checked against its public
API, so that an Optuna release that changes them fails here, loudly, rather than somewhere in a study."""

import optuna

from reproai.runtime._storage import open_storage
from reproai.runtime._trials import cached_storage, quiet_optuna, trial_id


def test_trial_id_is_the_storages_id_of_the_trial(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'o.db'}")
    with quiet_optuna():
        study = optuna.create_study(storage=storage, study_name="s")
    asked = [study.ask() for _ in range(3)]
    study_id = storage.get_study_id_from_name("s")
    for trial in asked + study.get_trials(deepcopy=False):
        assert trial_id(trial) == storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
    storage.set_trial_user_attr(trial_id(asked[1]), "k", "v")
    assert study.trials[1].user_attrs == {"k": "v"}


def test_cached_storage_is_what_optuna_wraps_rdb_storages_in(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    with quiet_optuna():
        study = optuna.create_study(storage=url)
    wrapper = type(study._storage)  # what Optuna makes of a URL itself
    rdb = optuna.storages.RDBStorage(url)
    assert type(cached_storage(rdb)) is wrapper
    assert isinstance(cached_storage(rdb), optuna.storages.BaseStorage)


def test_quiet_optuna_restores_the_verbosity():
    optuna.logging.set_verbosity(optuna.logging.INFO)
    with quiet_optuna():
        assert optuna.logging.get_verbosity() == optuna.logging.WARNING
    assert optuna.logging.get_verbosity() == optuna.logging.INFO
