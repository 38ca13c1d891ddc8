"""Config files: the experiment schema, search spaces, and loading with overrides."""

from reproai.config import hp
from reproai.config._loader import LoadedConfig, apply_overrides, config_hash, load_config, load_experiment
from reproai.config._registry import Component
from reproai.config._schema import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training
from reproai.config._space import Categorical, Float, Int, Space
from reproai.config._tree import (
    Choice,
    Parameter,
    from_jsonable,
    get_path,
    has_search_space,
    iter_parameters,
    resolve,
    set_path,
    to_jsonable,
)
from reproai.config._validate import validate

__all__ = [
    "Component",
    "hp",
    "Space",
    "Float",
    "Int",
    "Categorical",
    "Choice",
    "Experiment",
    "Data",
    "Model",
    "Head",
    "Phase",
    "Training",
    "CrossValidation",
    "Search",
    "LoadedConfig",
    "load_config",
    "load_experiment",
    "apply_overrides",
    "config_hash",
    "validate",
    "Parameter",
    "iter_parameters",
    "has_search_space",
    "resolve",
    "get_path",
    "set_path",
    "to_jsonable",
    "from_jsonable",
]
