import os
import time

import numpy as np
import pytest

from reproai.data._cache import cached_decode
from reproai.errors import DiskFullError
from tests.conftest import make_image_folder


def test_cache_is_reused_when_nothing_changed_and_rebuilt_when_a_file_changes(tmp_path):
    root = make_image_folder(tmp_path / "imgs", n_per_class=4)
    paths = sorted(root.rglob("*.png"))
    cache = tmp_path / "cache"
    first, d1, keep1, reused1 = cached_decode(paths, 12, cache_dir=cache, progress=False)
    again, d2, keep2, reused2 = cached_decode(paths, 12, cache_dir=cache, progress=False)
    assert (reused1, reused2) == (False, True)
    assert isinstance(again, np.memmap) and np.array_equal(first, again) and d1 == d2
    # Replace one image's content: the cache must be rebuilt, and hold the new pixels.
    target = paths[0]
    target.write_bytes(paths[-1].read_bytes())
    os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    changed, d3, _, reused3 = cached_decode(paths, 12, cache_dir=cache, progress=False)
    assert reused3 is False and d3[0] == d3[-1] != d1[0]
    assert np.array_equal(changed[0], changed[-1])
    # Another size is another cache entry.
    assert cached_decode(paths, 10, cache_dir=cache, progress=False)[3] is False


def test_a_half_written_cache_is_never_trusted(tmp_path, monkeypatch):
    root = make_image_folder(tmp_path / "imgs", n_per_class=2)
    paths = sorted(root.rglob("*.png"))
    cache = tmp_path / "cache"
    real_replace = os.replace

    def disk_full(src, dst):
        if str(dst).endswith(".json"):
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(DiskFullError, match=r"Cannot write the image cache .*No space left.*Free some disk space"):
        cached_decode(paths, 8, cache_dir=cache, progress=False)
    monkeypatch.setattr(os, "replace", real_replace)
    assert not list(cache.glob(".*tmp*"))  # no temporary file left behind
    _, _, _, reused = cached_decode(paths, 8, cache_dir=cache, progress=False)
    assert reused is False  # the array without its metadata was not trusted


def test_two_processes_building_at_once_build_it_once(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    root = make_image_folder(tmp_path / "imgs", n_per_class=6, size=64)
    script = (
        "import sys; from pathlib import Path; from reproai.data._cache import cached_decode;"
        f"paths = sorted(Path({str(root)!r}).rglob('*.png'));"
        f"print(cached_decode(paths, 32, cache_dir={str(tmp_path / 'cache')!r}, progress=False)[3])"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)
    ]
    outs = sorted(p.communicate(timeout=120)[0].strip() for p in procs)
    assert outs == ["False", "True"]  # one built it, the other waited and reused it
