"""Shared fixtures and small fakes: real sample paths, tiny image folders, tiny experiments."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    import optuna

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
PETS_ROOT = SHARED / "data"
PETS_IMAGES = PETS_ROOT / "oxford-iiit-pet" / "images"
WEIGHTS = SHARED / "weights" / "efficientnet_lite0_imagenet.pth"


def needs_shared(path: Path = PETS_IMAGES):
    """Skip (with the reason) when the real sample in ../shared is absent."""
    return pytest.mark.skipif(not path.exists(), reason=f"needs the real sample at {path} (../shared), absent here")


@pytest.fixture(autouse=True)
def _quiet_env(monkeypatch, tmp_path):
    # Tests never write into the repository or the user's MLflow store.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("REPROAI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


def make_image_folder(root: Path, n_per_class: int = 12, size: int = 24, classes=("cat", "dog"), seed: int = 0) -> Path:
    """A learnable two-class image folder: class 0 is dark with a bright square, class 1 the opposite."""
    rng = np.random.default_rng(seed)
    for k, name in enumerate(classes):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            base = 40 if k == 0 else 200
            a = np.clip(rng.normal(base, 25, (size, size, 3)), 0, 255).astype(np.uint8)
            a[size // 4 : size // 2, size // 4 : size // 2] = 255 - base
            Image.fromarray(a).save(folder / f"{name}_{i}.png")
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "images")


def tiny_config_text(
    name: str = "tiny",
    extra: str = "",
    data: str = "Data.digits(limit=240)",
    epochs: int = 2,
    cv: str = "CrossValidation(outer_folds=1, inner_folds=1)",
    final_model: bool = False,
) -> str:
    """The text of a config file for a fit that takes a couple of seconds on a CPU. The final model
    (on by default for users) is off unless asked for: the tests of other behaviour stay fast."""
    return f"""
from reproai import CrossValidation, Data, Experiment, Head, Model, Phase, Search, Training, hp

experiment = Experiment(
    name={name!r},
    data={data},
    model=Model(backbone="small_cnn", pretrained=False, head=Head(hidden=16, dropout=0.1)),
    training=Training(batch_size=32, phases=[
        Phase("warmup", epochs=1, freeze_backbone=True, lr=1e-2),
        Phase("finetune", epochs={epochs}, lr=3e-3, early_stopping_patience=2),
    ]),
    cv={cv},
    search=Search(metric="roc_auc"),
    seed=7,
)
experiment.cv.final_model = {final_model}{extra}
"""


def fold_studies(storage: str | optuna.storages.BaseStorage) -> dict[str, optuna.Study]:
    """Each outer fold's search study in ``storage`` (a URL or an opened storage), keyed by its fold
    (``"0"``, ``"r1-2"``, ``"final"``, as :func:`reproai.runtime.search_fold_key` reads it), sorted by name."""
    import optuna

    from reproai.runtime import open_storage, search_fold_key

    store = open_storage(storage) if isinstance(storage, str) else storage
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(store))
    return {
        key: optuna.load_study(study_name=name, storage=store)
        for name in names
        if (key := search_fold_key(name)) is not None
    }


@pytest.fixture
def write_config(tmp_path):
    def write(text: str, name: str = "config.py") -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return write


def spawn_reproai(
    args: Sequence[str], *, cwd: str | Path, env: Mapping[str, str] | None = None, **popen_kwargs: Any
) -> subprocess.Popen:
    """Start ``python -m reproai ARGS`` in ``cwd``, importing this checkout's ``src`` (not an installed copy),
    with ``env`` added to the environment; ``popen_kwargs`` go to :class:`subprocess.Popen`."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "reproai", *args], cwd=cwd, env=full_env, **popen_kwargs)


@pytest.fixture
def workers():
    """Start ``reproai run`` worker processes; any still running when the test ends are killed."""
    started = []

    def start(path, uri, storage, n, cwd):
        args = ["run", str(path), "--tracking-uri", uri, "--storage", storage, "--quiet"]
        procs = [
            spawn_reproai(
                args,
                cwd=cwd,
                env={"OMP_NUM_THREADS": "1"},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(n)
        ]
        started.extend(procs)
        return procs

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
            p.wait()


@pytest.fixture
def tracking_server(tmp_path):
    """A real ``mlflow server`` on 127.0.0.1 over SQLite, for the test's duration: its URI."""
    from reproai.cluster._local import local_tracking_server

    with local_tracking_server(f"sqlite:///{tmp_path / 'server.db'}", tmp_path / "artifacts") as uri:
        assert uri.startswith("http://127.0.0.1:")
        yield uri


@contextlib.contextmanager
def model_server(model_uri: str, tracking_uri: str, cwd: Path):
    """``mlflow models serve`` of a registered model on a free loopback port, for the block: yields a function
    that posts images (file paths) to it and returns its predictions as a DataFrame. The server is stopped."""
    import base64
    import json
    import socket
    import time
    import urllib.request

    import pandas as pd

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, "PYTHONPATH": str(REPO / "src")}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            model_uri,
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 180
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    pytest.fail(f"the model server did not start: {server.stderr.read().decode()[-3000:]}")
                time.sleep(1)

        def post(paths: list[Path]) -> pd.DataFrame:
            rows = [[base64.b64encode(Path(p).read_bytes()).decode(), Path(p).name] for p in paths]
            body = {"dataframe_split": {"columns": ["image", "id"], "data": rows}}
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/invocations",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )

            def not_json(constant: str) -> None:
                raise ValueError(f"the server's answer has {constant}, which is not JSON")

            answer = urllib.request.urlopen(request, timeout=120).read()
            return pd.DataFrame(json.loads(answer, parse_constant=not_json)["predictions"])

        yield post
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
