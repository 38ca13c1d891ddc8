"""A decoded-image cache: each image decoded and resized once, kept as a memory-mapped uint8 array.

The cache is keyed by the files (path, size, modification time), the target size and the intensity
policy, so it is rebuilt when a file, the size or the policy changes and reused otherwise. It is written
to a temporary file and renamed into place, under a lock: a crash or a full disk (a
:class:`DiskFullError`) never leaves a half-written cache that a later run would trust, and two processes
building it at once build it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from reproai.config._schema import Intensity
from reproai.data._intensity import intensity_key
from reproai.errors import DataError, DiskFullError, is_disk_full

__all__ = ["default_cache_dir", "files_key", "cached_decode"]


def default_cache_dir() -> Path:
    """``$REPROAI_CACHE_DIR``, else ``$XDG_CACHE_HOME/reproai``, else ``~/.cache/reproai``."""
    if os.environ.get("REPROAI_CACHE_DIR"):
        return Path(os.environ["REPROAI_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "reproai"


def files_key(paths: Sequence[Path], size: int, on_error: str, intensity: str = "") -> str:
    """A key that changes whenever a file is added, removed, replaced or touched, or the size or the
    intensity policy (:func:`reproai.data._intensity.intensity_key`) changes."""
    h = hashlib.sha256(f"v2|{size}|{on_error}|{intensity}".encode())
    for p in paths:
        try:
            st = p.stat()
        except OSError as e:
            raise DataError(f"Cannot read image file {p}: {e}.") from e
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _write_atomically(target: Path, write: Callable[[Path], object], nbytes: int) -> None:
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        write(tmp)
        os.replace(tmp, target)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if not is_disk_full(e):
            raise DataError(
                f"Cannot write the image cache {target}: {e}. Check the folder's permissions, or set "
                "data.cache_dir (or $REPROAI_CACHE_DIR) to another folder."
            ) from e
        free = shutil.disk_usage(target.parent).free
        raise DiskFullError(
            f"Cannot write the image cache {target}: {e}. It needs {nbytes / 1e6:.1f} MB and "
            f"{free / 1e6:.1f} MB are free there. Free some disk space, or set data.cache_dir (or "
            "$REPROAI_CACHE_DIR) to a folder with room; nothing half-written was kept."
        ) from e
    finally:
        tmp.unlink(missing_ok=True)


def cached_decode(
    paths: Sequence[Path],
    size: int,
    *,
    cache_dir: str | Path | None = None,
    on_error: str = "raise",
    progress: bool = True,
    intensity: Intensity | None = None,
) -> tuple[np.ndarray, list[str], np.ndarray, bool]:
    """Like :func:`reproai.data._images.decode_files`, through the cache.

    Returns the images (a read-only memory map), the files' digests, the mask of files kept, and
    whether the cache was reused.
    """
    from reproai.data._images import decode_files

    folder = Path(cache_dir) if cache_dir else default_cache_dir()
    key = files_key(paths, size, on_error, intensity_key(intensity))
    array_path, meta_path = folder / f"images-{key}.npy", folder / f"images-{key}.json"
    with _locked(folder / f"images-{key}.lock"):
        if not (array_path.exists() and meta_path.exists()):
            images, digests, keep = decode_files(paths, size, on_error=on_error, progress=progress, intensity=intensity)

            def write_array(tmp: Path) -> None:
                # Plain writes, not a memory map: on a full disk a write raises ENOSPC, whereas a page of
                # a memory-mapped file that cannot be allocated kills the process with SIGBUS.
                # Not np.save either: its tofile() reports a short write without the errno.
                with open(tmp, "wb") as f:
                    fmt = np.lib.format
                    fmt.write_array_header_1_0(f, fmt.header_data_from_array_1_0(images))
                    if images.size:  # (a memoryview of an empty array cannot be cast)
                        data = np.ascontiguousarray(images).data.cast("B")  # the array's buffer, as a memoryview
                        for start in range(0, len(data), 1 << 24):
                            f.write(data[start : start + (1 << 24)])
                    f.flush()
                    os.fsync(f.fileno())  # on disk before the rename makes it the cache

            meta = json.dumps({"digests": digests, "keep": keep.tolist(), "size": size, "n": len(paths)})
            # The array first, the metadata last: the metadata's presence marks a complete cache.
            _write_atomically(array_path, write_array, images.nbytes)
            _write_atomically(meta_path, lambda tmp: tmp.write_text(meta), len(meta))
            reused = False
        else:
            reused = True
        meta = json.loads(meta_path.read_text())
        images = np.load(array_path, mmap_mode="r")
    if images.shape[0] != sum(meta["keep"]):
        raise DataError(f"The image cache {array_path} is inconsistent; delete it and run again.")
    return images, meta["digests"], np.asarray(meta["keep"], dtype=bool), reused
