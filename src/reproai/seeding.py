"""One root seed, from which every random choice derives by name."""

from __future__ import annotations

import hashlib
import random

import numpy as np
import torch

__all__ = ["derive_seed", "seed_everything"]


def derive_seed(root: int, *keys: object) -> int:
    """A seed for the random choice named by ``keys`` (e.g. ``"fit", 0, "init"``), stable across runs."""
    text = "/".join(map(str, (root, *keys)))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little") & 0x7FFFFFFF


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's global generators (for code that uses them)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
