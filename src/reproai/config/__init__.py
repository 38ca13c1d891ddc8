"""Config files: the experiment schema, search spaces, and loading with overrides."""

from reproai.config import hp
from reproai.config._loader import LoadedConfig, apply_overrides, config_hash, load_config, load_experiment
from reproai.config._registry import Component
from reproai.config._schema import (
    CrossValidation,
    Data,
    Experiment,
    Head,
    Intensity,
    Model,
    Phase,
    Search,
    Training,
)
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
    "Categorical",
    "Choice",
    "Component",
    "CrossValidation",
    "Data",
    "Experiment",
    "Float",
    "Head",
    "Int",
    "Intensity",
    "LoadedConfig",
    "Model",
    "Parameter",
    "Phase",
    "Search",
    "Space",
    "Training",
    "apply_overrides",
    "config_hash",
    "from_jsonable",
    "get_path",
    "has_search_space",
    "hp",
    "iter_parameters",
    "load_config",
    "load_experiment",
    "resolve",
    "set_path",
    "to_jsonable",
    "validate",
]
