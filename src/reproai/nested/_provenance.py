"""What a run was made with: package versions, Python, platform, hardware, git state, and the files of
the user modules that the config's components come from."""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from reproai.config._registry import REGISTRIES, Component, registry
from reproai.config._targets import CONFIG_MODULE, import_object
from reproai.config._tree import Choice, child_items

__all__ = ["environment", "git_state", "component_sources"]

_PACKAGES = [
    "reproai",
    "torch",
    "torchvision",
    "timm",
    "mlflow",
    "mlflow-skinny",
    "optuna",
    "scikit-learn",
    "numpy",
    "pandas",
    "scipy",
    "pillow",
    "matplotlib",
]


def git_state(path: str | Path) -> dict[str, Any]:
    """The commit, branch and uncommitted diff of the git repository holding ``path`` (if any)."""
    folder = Path(path).resolve()
    folder = folder if folder.is_dir() else folder.parent

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, timeout=20)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None}
    diff = git("diff", "HEAD") or ""
    return {
        "commit": commit.strip(),
        "branch": (git("rev-parse", "--abbrev-ref", "HEAD") or "").strip(),
        "dirty": bool(diff.strip()),
        "diff": diff,
    }


def _named(target: Any) -> list[Any]:
    """The objects a component's target names: itself, what its import path imports, or what a
    registry holds under that name (user registrations; built-ins are reproai's own)."""
    if not isinstance(target, str):
        return [target]
    if ":" in target and not target.startswith("<"):
        with contextlib.suppress(Exception):  # validation reported it already
            return [import_object(target)]
        return []
    return [registry(kind).get(target).target for kind in REGISTRIES if target in registry(kind)]


def _objects(tree: Any) -> list[Any]:
    """The classes and functions a config tree names: given directly, or as a component's target."""
    if isinstance(tree, Choice):
        branches = tree.branches.values() if isinstance(tree.branches, dict) else []
        return [obj for branch in branches for obj in _objects(branch)]
    found: list[Any] = []
    if isinstance(tree, Component):
        found += _named(tree.target)
    elif callable(tree) and not child_items(tree):
        found.append(tree)
    for _, child in child_items(tree):
        found += _objects(child)
    return found


def component_sources(tree: Any) -> dict[str, dict[str, Any]]:
    """For each class or function the config names that comes from a module of the user's own (not an
    installed distribution, not the config file, which is logged as it is): its module's file and
    sha256, by ``module:qualname``."""
    distributions = metadata.packages_distributions()
    out: dict[str, dict[str, Any]] = {}
    for obj in _objects(tree):
        module_name = getattr(obj, "__module__", None)
        if not isinstance(module_name, str) or module_name == CONFIG_MODULE:
            continue
        top = module_name.split(".")[0]
        module = sys.modules.get(module_name)
        file = getattr(module, "__file__", None)
        if top in distributions or top in sys.stdlib_module_names or not file:
            continue
        data = Path(file).read_bytes()
        out[f"{module_name}:{getattr(obj, '__qualname__', '?')}"] = {
            "module": module_name,
            "file": str(Path(file).resolve()),
            "sha256": hashlib.sha256(data).hexdigest(),
        }
    return out


def environment(config_path: str | Path | None = None, experiment: Any = None) -> dict[str, Any]:
    """A JSON-compatible description of the software and hardware this process runs on, and (given the
    ``experiment``) of the user modules its components come from."""
    import torch

    versions = {}
    for name in _PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    gpus = (
        [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    )
    return {
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpus": gpus,
        "packages": versions,
        "argv": sys.argv,
        "git": git_state(config_path or os.getcwd()),
        "component_sources": component_sources(experiment) if experiment is not None else {},
    }
