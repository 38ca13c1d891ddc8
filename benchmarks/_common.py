"""Shared helpers for the benchmarks: the real sample, timing, and the closing JSON line."""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("REPROAI_SHARED", REPO.parent / "shared"))
PETS_ROOT = SHARED / "data"
WEIGHTS = SHARED / "weights" / "efficientnet_lite0_imagenet.pth"


def require_shared() -> None:
    if not (PETS_ROOT / "oxford-iiit-pet").is_dir() or not WEIGHTS.is_file():
        sys.exit(f"This benchmark needs the real sample and weights under {SHARED} (set REPROAI_SHARED).")


def pets_setup(size: int, limit: int | None = None, *, hidden: int | None = None, dropout: float = 0.0):
    """The real Oxford-IIIT Pet sample decoded at ``size`` px through reproai's image cache, and
    efficientnet_lite0 with the real pretrained weights: ``(model spec, data, backbone info)``."""
    import warnings

    from reproai import Data, Head, Model
    from reproai.data import list_source, load_images
    from reproai.models import backbone_info

    spec = Model(
        backbone="efficientnet_lite0",
        pretrained=str(WEIGHTS),
        image_size=size,
        head=Head(hidden=hidden, dropout=dropout),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the two unannotated images, labelled from their names
        source = list_source(Data.oxford_pets(root=str(PETS_ROOT), download=False, limit=limit), seed=0)
    return spec, load_images(source, size, progress=False), backbone_info(spec)


def peak_memory_mb() -> float:
    """Peak resident memory of this process and its finished children, in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return own / 1024.0


class Timer:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def report(figures: dict) -> None:
    """Print the closing line of JSON that collects a benchmark's figures and goals."""
    print(json.dumps(figures, sort_keys=False))
