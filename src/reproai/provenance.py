"""What a run was made with: package versions, Python, platform, hardware, git state."""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["environment", "git_state"]

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


def environment(config_path: str | Path | None = None) -> dict[str, Any]:
    """A JSON-compatible description of the software and hardware this process runs on."""
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
    }
