"""reproai: trustworthy, repeatable machine-learning experiments.

A config file defines one :class:`Experiment` whose fields may hold search spaces (``hp``);
:func:`run_experiment` runs it with tracked, seeded, leak-checked splits.
"""

from typing import Any

from reproai.config import (
    CrossValidation,
    Data,
    Experiment,
    Head,
    Intensity,
    LoadedConfig,
    Model,
    Phase,
    Search,
    Training,
    config_hash,
    hp,
    load_config,
    load_experiment,
    resolve,
)
from reproai.config._registry import Component, register, registry
from reproai.errors import ConfigError, DataError, ReproaiError, SearchSpaceError, TrackingError, UntrustedConfigError

__version__ = "0.1.0"

__all__ = [
    "Component",
    "ConfigError",
    "CrossValidation",
    "Data",
    "DataError",
    "Experiment",
    "Head",
    "Intensity",
    "LoadedConfig",
    "Model",
    "Phase",
    "ReproaiError",
    "Search",
    "SearchSpaceError",
    "TrackingError",
    "Training",
    "UntrustedConfigError",
    "__version__",
    "config_hash",
    "hp",
    "load_config",
    "load_experiment",
    "register",
    "registry",
    "resolve",
    "run_experiment",
]


def __getattr__(name: str) -> Any:
    # The study pulls in torch and MLflow; import it on first use so that `import reproai` and
    # config files stay fast.
    if name == "run_experiment":
        from reproai.nested._study import run_experiment

        return run_experiment
    raise AttributeError(f"module 'reproai' has no attribute {name!r}")
