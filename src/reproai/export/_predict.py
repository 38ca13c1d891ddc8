"""``reproai predict``: a logged model's predictions for image files, folders or a table of images.

The model is an MLflow model reproai logged (``models:/name@alias``, ``runs:/<run id>/model``), or a
study (its id, or its experiment's name), whose final model is used. Images are read as bytes and given
to the model, which decodes and preprocesses them exactly as in training; a file that cannot be read or
decoded gets an error row, and the others their predictions.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from reproai.data._datasets import is_image_file
from reproai.data._source import is_hidden
from reproai.errors import DataError, ReproaiError
from reproai.tracking import default_tracking_uri, existing_store
from reproai.tracking._tags import Tag

__all__ = ["predict", "resolve_model", "list_inputs"]

TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".pq")


def resolve_model(reference: str, tracking_uri: str | None = None) -> str:
    """The model URI ``reference`` names: a ``models:/`` or ``runs:/`` URI as it is, or a study (a run id
    in it, or its experiment's name), whose final model is used.

    Raises:
        ReproaiError: the study has no final model (it was switched off, or the study has not finished).
    """
    if reference.startswith(("models:/", "runs:/", "file:", "/")) or Path(reference).is_dir():
        return reference
    from reproai.tracking import find_study

    _, study = find_study(reference, tracking_uri)
    uri = study.tags.get(Tag.FINAL_MODEL) or study.tags.get(Tag.FINAL_MODEL_RUN)
    if not uri:
        raise ReproaiError(
            f"Study run {study.id} has no final model (cv.final_model was off, or the study has not "
            "finished): run it to the end, or give a model URI (models:/NAME@ALIAS, runs:/RUN/model)."
        )
    return uri


def _folder(path: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(path, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not is_hidden(d))
        for name in sorted(files):
            if is_image_file(Path(folder) / name):
                yield Path(folder) / name


def list_inputs(
    inputs: Sequence[str], *, image_column: str = "path", root: str | Path | None = None
) -> list[tuple[str, Path]]:
    """``(id, file)`` for every image the inputs name: files as given, folders searched recursively
    (hidden files and folders skipped), and tables (CSV, TSV, Parquet) by their ``image_column``, relative
    paths resolving against ``root`` (default: the table's folder). A path that does not exist is kept, as
    a file that cannot be read.

    Raises:
        DataError: a table without the column.
    """
    out: list[tuple[str, Path]] = []
    for text in inputs:
        path = Path(text).expanduser()
        if path.is_dir():
            out += [(str(p), p) for p in _folder(path)]
        elif path.suffix.lower() in TABLE_SUFFIXES and path.is_file():
            table = (
                pd.read_parquet(path)
                if path.suffix.lower() in (".parquet", ".pq")
                else pd.read_csv(path, sep="\t" if path.suffix.lower() == ".tsv" else ",", dtype=str)
            )
            if image_column not in table.columns:
                raise DataError(
                    f"the table {text!r} has no column {image_column!r}; its columns are "
                    f"{list(table.columns)}. Name the image column with --image-column."
                )
            base = Path(root).expanduser() if root is not None else path.parent
            for value in table[image_column].astype(str):
                file = Path(value).expanduser()
                out.append((value, file if file.is_absolute() else base / file))
        else:
            out.append((text, path))
    return out


def _download(uri: str, tracking_uri: str, folder: str) -> str:
    """The model ``uri`` names, downloaded into ``folder``: a registered model is looked up in the registry
    at ``tracking_uri`` (no global MLflow state is set)."""
    import mlflow.artifacts
    from mlflow import MlflowClient

    if uri.startswith("models:/"):
        client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        name, at, alias = uri[len("models:/") :].partition("@")
        try:
            if at:
                version = client.get_model_version_by_alias(name, alias).version
            else:
                name, _, version = name.partition("/")
            uri = client.get_model_version_download_uri(name, version)
        except Exception as e:  # MLflow's registry errors
            raise ReproaiError(
                f"No registered model {uri!r} at {tracking_uri!r}: {e}. Check the name and alias "
                "(`mlflow ui` lists them), or --tracking-uri."
            ) from e
    return str(mlflow.artifacts.download_artifacts(artifact_uri=uri, tracking_uri=tracking_uri, dst_path=folder))


def predict(
    model: str,
    inputs: Sequence[str],
    *,
    tracking_uri: str | None = None,
    out: str | Path | None = None,
    strict: bool = False,
    batch_size: int = 64,
    image_column: str = "path",
    root: str | Path | None = None,
    progress: bool = True,
) -> pd.DataFrame:
    """Predict every image ``inputs`` name with ``model``: one row per image, ``id``, ``predicted`` (a class
    name), ``probability_<class>`` for each class, and ``error`` (why an image could not be read, or None).
    A table's relative paths resolve against ``root`` (default: its folder). Written to ``out`` as CSV when
    given.

    Raises:
        DataError: with ``strict``, the first image that cannot be read or decoded.
    """
    import mlflow.pyfunc
    from tqdm.auto import tqdm

    uri = resolve_model(model, tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # ours is the one to watch
    store = tracking_uri or default_tracking_uri()
    if not Path(uri).is_dir():
        existing_store(store)
    items = list_inputs(inputs, image_column=image_column, root=root)
    if not items:
        raise DataError(f"No images in {list(inputs)}.")
    parts = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        tqdm(total=len(items), desc="predict", unit="img", disable=not progress, leave=False) as bar,
    ):
        # Downloaded first, with this tracking URI (no global MLflow state), then loaded from the folder.
        local = uri if Path(uri).is_dir() else _download(uri, store, tmp)
        loaded = mlflow.pyfunc.load_model(local)
        for start in range(0, len(items), batch_size):
            chunk = items[start : start + batch_size]
            files = [str(file.absolute()) for _, file in chunk]
            images, unread = [], {}
            for file in files:
                try:
                    images.append(base64.b64encode(Path(file).read_bytes()).decode())
                except OSError as e:
                    images.append("")
                    unread[file] = f"Cannot read image file {file}: {e.strerror or e}."
            # The model names each image by its file in its errors; the table keeps the ids as given.
            table = loaded.predict(pd.DataFrame({"image": images, "id": files}))
            table["id"] = [name for name, _ in chunk]
            if unread:
                table["error"] = [unread.get(f, e) for f, e in zip(files, table["error"], strict=True)]
            parts.append(table)
            bar.update(len(chunk))
            if strict:
                bad = table[table["error"].notna()]
                if len(bad):
                    raise DataError(
                        f"{bad['id'].iloc[0]}: {bad['error'].iloc[0]} (--strict stops at the first "
                        "image that cannot be read; without it, such images get an error row)."
                    )
    result = pd.concat(parts, ignore_index=True)
    if out is not None:
        result.to_csv(out, index=False)
    return result
