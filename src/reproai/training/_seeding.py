"""One root seed, from which every random choice derives by name."""

from __future__ import annotations

import hashlib
import os
import random

import numpy as np
import torch

from reproai.tracking._tags import Tag

__all__ = ["derive_seed", "seed_everything", "configure_determinism"]


def derive_seed(root: int, *keys: object) -> int:
    """A seed for the random choice named by ``keys`` (e.g. ``"fit", 0, "init"``), stable across runs."""
    text = "/".join(map(str, (root, *keys)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (for code that uses them)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(enabled: bool, device: torch.device) -> dict[str, str]:
    """With ``enabled``, make PyTorch deterministic on ``device``; the tags that say what was set.

    On CUDA, cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` before CUDA starts; it is set here when CUDA has
    not started yet, and an error says to set it in the environment otherwise.
    """
    if not enabled:  # leave the process's setting as it is, and report it
        return {Tag.DETERMINISTIC: str(torch.are_deterministic_algorithms_enabled()).lower()}
    if device.type == "cuda" and not os.environ.get("CUBLAS_WORKSPACE_CONFIG"):
        if torch.cuda.is_initialized():
            from reproai.errors import ConfigError

            raise ConfigError(
                "training.deterministic=True on CUDA needs CUBLAS_WORKSPACE_CONFIG before CUDA starts, "
                "but CUDA has started already in this process. Set CUBLAS_WORKSPACE_CONFIG=:4096:8 in "
                "the environment before running."
            )
        os.environ["CUBLAS_WORKSPACE_CONFIG"] = ":4096:8"
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    return {
        Tag.DETERMINISTIC: "true",
        Tag.USE_DETERMINISTIC_ALGORITHMS: "true",
        Tag.CUBLAS_WORKSPACE_CONFIG: os.environ.get("CUBLAS_WORKSPACE_CONFIG", "")
        if device.type == "cuda"
        else "n/a (cpu)",
    }
