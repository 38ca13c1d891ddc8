"""Item 7: a disk that fills up while a cache or an artifact is written gives a clear error, keeps
nothing half-written, and the same command works once there is room again.

The full disk is real: a small tmpfs mounted in a private mount namespace (``unshare -rm``), so
nothing outside the test's own processes sees it, and nothing is left mounted if the test dies.
"""

import json
import shutil
import subprocess
import sys
import textwrap

import pytest
from mlflow import MlflowClient

from tests.conftest import REPO, tiny_config_text


def _namespaces_work() -> bool:
    try:
        return (
            shutil.which("unshare") is not None
            and subprocess.run(["unshare", "-rm", "true"], capture_output=True, timeout=30).returncode == 0
        )
    except OSError:
        return False


pytestmark = pytest.mark.skipif(
    not _namespaces_work(),
    reason="needs `unshare -rm` (user and mount namespaces) to mount a small tmpfs as a full disk",
)


def in_namespace(script: str, *args: str, timeout: float = 600) -> dict:
    """Run a Python script as root of a private mount namespace; it prints one JSON line last."""
    proc = subprocess.run(
        ["unshare", "-rm", sys.executable, "-c", textwrap.dedent(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_image_cache_on_a_full_disk(tmp_path):
    out = in_namespace(
        """
        import json, subprocess, sys
        from pathlib import Path
        import numpy as np
        from reproai.data._cache import cached_decode
        from reproai.data._images import decode_files
        from reproai.errors import DiskFullError
        from tests.conftest import make_image_folder

        tmp = Path(sys.argv[1]); cache = tmp / "cache"; cache.mkdir()
        paths = sorted(make_image_folder(tmp / "imgs", n_per_class=20, size=64).rglob("*.png"))
        # 40 images of 64 x 64 x 3 bytes (492 kB) do not fit in 200 kB
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(cache)], check=True)
        try:
            cached_decode(paths, 64, cache_dir=cache, progress=False)
            error = None
        except DiskFullError as e:
            error = str(e)
        left = sorted(p.name for p in cache.iterdir())
        subprocess.run(["mount", "-o", "remount,size=4m", str(cache)], check=True)
        images, _, _, reused = cached_decode(paths, 64, cache_dir=cache, progress=False)
        expected = decode_files(paths, 64, progress=False)[0]
        again = cached_decode(paths, 64, cache_dir=cache, progress=False)[3]
        print(json.dumps({"error": error, "left": left, "reused": [reused, again],
                          "equal": bool(np.array_equal(images, expected))}))
    """,
        str(tmp_path),
    )
    assert out["error"] is not None and "Cannot write the image cache" in out["error"]
    assert "No space left on device" in out["error"] and "Free some disk space" in out["error"]
    assert "nothing half-written was kept" in out["error"]
    assert all(name.endswith(".lock") for name in out["left"])  # no array, no metadata, no temporary file
    assert out["reused"] == [False, True]  # rebuilt once there was room (not trusted half-written), then reused
    assert out["equal"]


@pytest.mark.slow
def test_artifacts_on_a_disk_that_fills_up_mid_study(write_config, tmp_path):
    text = tiny_config_text(name="full", cv="CrossValidation(outer_folds=2, inner_folds=2)")
    text += (
        "experiment.model.head.dropout = hp.float(0.0, 0.5)\nexperiment.search.n_trials = 3\n"
        "experiment.search.pruner = 'none'\n"
    )
    write_config(text)
    out = in_namespace(
        """
        import json, os, shutil, subprocess, sys, time
        from pathlib import Path
        import optuna
        from optuna.trial import TrialState
        from reproai.runtime import is_claims_study

        work = Path(sys.argv[1]); mlruns = work / "mlruns"; mlruns.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mlruns)], check=True)
        cmd = [sys.executable, "-m", "reproai", "run", "config.py", "--tracking-uri", f"sqlite:///{work}/mlflow.db",
               "--storage", f"sqlite:///{work}/optuna.db", "--quiet"]

        def trials():
            storage = optuna.storages.RDBStorage(f"sqlite:///{work}/optuna.db")
            return [(s.study_name, t) for s in optuna.get_all_study_summaries(storage)
                    if not is_claims_study(s.study_name)
                    for t in optuna.load_study(study_name=s.study_name, storage=storage).trials]

        first = subprocess.Popen(cmd, cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and first.poll() is None:
            time.sleep(0.5)
            try:
                if any(t.state == TrialState.COMPLETE for _, t in trials()):
                    break
            except Exception:  # the storage is still being created
                pass
        # The disk fills up: another program takes all the space left.
        fd = os.open(mlruns / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            while True:
                os.write(fd, b"\\0" * 65536)
        except OSError:
            pass
        os.close(fd)
        err = first.communicate(timeout=300)[1]
        before = {(s, t.number, t.value) for s, t in trials() if t.state == TrialState.COMPLETE}
        (mlruns / "filler").unlink()
        second = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=300)
        after = {(s, t.number, t.value) for s, t in trials() if t.state == TrialState.COMPLETE}
        files = sorted(str(p.relative_to(mlruns)) for p in mlruns.rglob("*") if p.is_file())
        print(json.dumps({"rc": [first.returncode, second.returncode], "err": err, "err2": second.stderr[-2000:],
                          "before": sorted(before), "after": sorted(after), "files": files}))
    """,
        str(tmp_path),
    )
    assert out["rc"] == [2, 0], out["err2"]
    assert "Cannot write artifact" in out["err"] and "No space left on device" in out["err"]
    assert "Free disk space there and run the same command again" in out["err"]
    before, after = map(lambda rows: {tuple(r) for r in rows}, (out["before"], out["after"]))
    assert before and before <= after and len(after) == 2 * 3  # finished trials kept, not run again
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("full").experiment_id], max_results=1000)
    assert not [r for r in runs if r.info.status == "RUNNING"]
    study = [r for r in runs if r.data.tags["reproai.level"] == "study"]
    assert len(study) == 1 and study[0].info.status == "FINISHED"
    # every fit that finished has its artifacts; the one the full disk interrupted ended FAILED
    fits = [r for r in runs if r.data.tags["reproai.level"] == "fit"]
    done = {r.info.run_id for r in fits if r.info.status == "FINISHED"}
    assert any(r.info.status == "FAILED" for r in fits)
    with_fit_json = {f.split("/")[1] for f in out["files"] if f.endswith("/artifacts/fit.json")}
    assert done <= with_fit_json
