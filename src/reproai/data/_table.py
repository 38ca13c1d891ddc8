"""Table manifests: a CSV, TSV or Parquet file (or a pandas DataFrame) with one row per image: its path,
its label and, optionally, its group (a patient, subject, lesion or site)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from reproai.config._schema import Data
from reproai.data._dicom import DICOM_PREFIX
from reproai.data._source import Source, is_hidden
from reproai.errors import DataError

__all__ = ["table", "read_table", "TABLE_READERS"]

# File extension -> how pandas reads it.
TABLE_READERS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def _is_frame(value: Any) -> bool:
    return type(value).__name__ == "DataFrame" and hasattr(value, "columns")


def read_table(data: Data) -> tuple[Any, str, Path]:
    """The table of ``data``, how to name it in messages, and the folder relative paths resolve against.

    Raises:
        DataError: no table, a file that is missing or cannot be read, or an unknown extension.
    """
    import pandas as pd

    value = data.manifest
    if _is_frame(value):
        base = Path(data.root).expanduser() if data.root else Path.cwd()
        return value.copy(), "the DataFrame in data.manifest", base
    if not isinstance(value, (str, Path)) or not str(value):
        raise DataError("data.manifest is not set; give the path of a CSV, TSV or Parquet file (or a DataFrame).")
    path = Path(value).expanduser()
    name = f"the table {str(value)!r}"
    if not path.is_file():
        raise DataError(f"{name} does not exist (looked in {path.resolve()}); check data.manifest.")
    kind = TABLE_READERS.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"{name}: unknown extension {path.suffix!r}; a table is {', '.join(sorted(TABLE_READERS))}.")
    try:
        if kind == "parquet":
            frame = pd.read_parquet(path)
        else:
            frame = pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False)
    except Exception as e:  # noqa: BLE001 - pandas and its engines raise many types
        raise DataError(f"Cannot read {name} as {kind.upper()}: {type(e).__name__}: {e}.") from e
    base = Path(data.root).expanduser() if data.root else path.parent
    return frame, name, base


def _rows(frame: Any, positions: np.ndarray, from_file: bool) -> str:
    """Rows by their line in the file (the header is line 1), or by the DataFrame's index."""
    shown = [str(p + 2) if from_file else str(frame.index[p]) for p in positions[:5]]
    more = f" and {len(positions) - 5} more" if len(positions) > 5 else ""
    return f"{'line' if from_file else 'row'}{'s' if len(positions) > 1 else ''} {', '.join(shown)}{more}"


def _text(values: Any) -> np.ndarray:
    """Cells as text, with missing ones (NaN, None) as ''."""
    return np.asarray(
        ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip() for v in values], dtype=object
    )


def table(data: Data) -> Source:
    """The examples a table lists: ids are the paths as written; relative paths resolve against
    ``data.root`` (default: the table's folder); classes are the sorted label values.

    Raises:
        DataError: a missing column (with the columns it has), empty labels or groups, duplicate rows or
            paths, image files that do not exist, or a single class; each names the table and the rows.
    """
    frame, name, base = read_table(data)
    from_file = not _is_frame(data.manifest)
    columns = [str(c) for c in frame.columns]
    group_column = None if data.group is None or data.group.startswith(DICOM_PREFIX) else data.group
    for role, column in (("image", data.image), ("label", data.label), ("group", group_column)):
        if column is not None and column not in columns:
            raise DataError(
                f"{name} has no column {column!r} (data.{role}); its columns are {columns}. Set "
                f"data.{role} to the column that holds the {role}{'s' if role != 'image' else ' paths'}."
            )
    if len(frame) == 0:
        raise DataError(f"{name} has no rows.")
    paths = _text(frame[data.image])
    labels_raw = frame[data.label].tolist()
    label_text = _text(labels_raw)
    for role, values in (("image path", paths), ("label", label_text)):
        empty = np.flatnonzero(values == "")
        if len(empty):
            column = data.image if role == "image path" else data.label
            raise DataError(
                f"{name}: {len(empty)} empty {role}(s) in column {column!r}, at "
                f"{_rows(frame, empty, from_file)}. Fill them in or remove those rows."
            )
    duplicate_rows = np.flatnonzero(frame.astype(str).duplicated().to_numpy())
    if len(duplicate_rows):
        raise DataError(
            f"{name}: {len(duplicate_rows)} duplicate row(s), at "
            f"{_rows(frame, duplicate_rows, from_file)}; each image must be listed once. Remove the repeats."
        )
    seen: dict[str, int] = {}
    repeated = []
    for i, p in enumerate(paths):
        if p in seen:
            repeated.append(i)
        seen.setdefault(p, i)
    if repeated:
        first = paths[repeated[0]]
        raise DataError(
            f"{name}: {len(repeated)} path(s) listed twice in column {data.image!r}, e.g. {first!r} at "
            f"{_rows(frame, np.array([seen[first], repeated[0]]), from_file)}; each image must be "
            "listed once (with one label)."
        )
    groups = None
    if group_column is not None:  # "dicom:<keyword>": read from the files (reproai.data._loading)
        groups = _text(frame[group_column])
        empty = np.flatnonzero(groups == "")
        if len(empty):
            raise DataError(
                f"{name}: {len(empty)} empty group(s) in column {data.group!r}, at "
                f"{_rows(frame, empty, from_file)}; every image needs its group (e.g. a patient id)."
            )
    hidden = np.asarray([any(is_hidden(part) for part in Path(p).parts) for p in paths], dtype=bool)
    if hidden.any():
        warnings.warn(
            f"{name}: left out {int(hidden.sum())} row(s) whose path is in a hidden folder or is a hidden "
            f"file (e.g. {paths[hidden][0]!r}); such files are never examples.",
            stacklevel=3,
        )
    keep = np.flatnonzero(~hidden)
    files = [Path(p).expanduser() if Path(p).expanduser().is_absolute() else base / p for p in paths[keep]]
    missing = [i for i, f in zip(keep, files, strict=True) if not f.is_file()]
    if missing:
        shown = ", ".join(repr(str(paths[i])) for i in missing[:3])
        raise DataError(
            f"{name}: {len(missing)} of {len(keep)} image files do not exist, e.g. {shown} (at "
            f"{_rows(frame, np.asarray(missing), from_file)}), looked for under {str(base)!r}. Set "
            "data.root to the folder the paths are relative to, or fix the paths."
        )
    label_values = [labels_raw[i] for i in keep]
    if from_file and all(isinstance(v, str) and v.strip().lstrip("-").isdigit() for v in label_values):
        label_values = [int(v) for v in label_values]  # integer labels sort as numbers, not as text
    try:
        classes_native = sorted(set(label_values))
    except TypeError:  # a mix of numbers and text: sort as text
        classes_native = sorted(set(label_values), key=str)
    classes = [str(c) for c in classes_native]
    if len(classes) < 2:
        raise DataError(
            f"{name}: every image has the label {classes[0]!r} (column {data.label!r}); a classifier needs "
            "at least two classes."
        )
    position = {c: k for k, c in enumerate(classes_native)}
    return Source(
        ids=[str(paths[i]) for i in keep],
        labels=np.asarray([position[v] for v in label_values], dtype=np.int64),
        classes=classes,
        paths=files,
        groups=None if groups is None else [str(groups[i]) for i in keep],
    )
