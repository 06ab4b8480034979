"""Where each (key, feature) stream's reference comes from.

``warmup`` (default): the first ``reference_size`` observations of each (key, feature) become its
reference; nothing is flagged until then. ``file``: the columns of ``reference_file`` (Parquet,
CSV or JSON Lines; e.g. the last training window), NaNs dropped. If the file has the key field
column(s) (``key_fields``), each key gets the rows of that key as its reference, and keys the
file does not mention (or whose rows hold no finite value of a feature) use the whole file;
otherwise the whole file serves every key.

The file is read once, at start, and again on a ``rebaseline`` command with source ``file``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from stream.exceptions import InputFileError
from stream.monitoring.streams import ReferenceSource
from stream.settings import Settings
from stream.telemetry.records import join_key
from stream.tools.sources import TabularFile, read_text_columns

__all__ = [
    "FileReferences",
    "load_reference_file",
    "load_references",
    "reference_loader",
    "reference_source",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class FileReferences:
    """References read from one file: per key where the file has keys, else shared.

    Calling it with ``(key, feature)`` gives that key's own reference if the file has one,
    else the whole file's (a :data:`~stream.monitoring.streams.ReferenceSource`).
    """

    path: str
    shared: dict[str, npt.NDArray[np.float64]]
    by_key: dict[str, dict[str, npt.NDArray[np.float64]]] = field(default_factory=dict)

    def __call__(self, key: str, feature: str) -> npt.NDArray[np.float64] | None:
        own = self.by_key.get(key)
        if own is not None:
            ref = own.get(feature)
            if ref is not None:
                return ref
        return self.shared.get(feature)

    @property
    def keyed(self) -> bool:
        """Whether the file held key columns (so some keys have their own reference)."""
        return bool(self.by_key)


def load_reference_file(path: str, features: tuple[str, ...]) -> dict[str, npt.NDArray[np.float64]]:
    """Read one reference sample per feature from ``path`` (NaNs dropped; none may be empty)."""
    return load_references(path, features).shared


def load_references(
    path: str, features: Sequence[str], key_fields: Sequence[str] = ()
) -> FileReferences:
    """Read the references of ``features`` from ``path``, per key if it has ``key_fields``.

    Raises
    ------
    InputFileError
        If the file cannot be read, lacks a feature column, or a feature column has no finite
        value at all.
    """
    table = TabularFile(path)
    columns = table.read(list(features)).columns
    shared: dict[str, npt.NDArray[np.float64]] = {}
    for name, values in columns.items():
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise InputFileError(path, f"column {name!r} has no finite values to use as reference")
        shared[name] = finite
    if not key_fields or not all(k in table.column_names for k in key_fields):
        return FileReferences(str(path), shared)
    by_key = _split_by_key(table, columns, list(key_fields))
    log.info("reference file %s: per-key references for %d key(s)", path, len(by_key))
    return FileReferences(str(path), shared, by_key)


def _split_by_key(
    table: TabularFile, columns: dict[str, npt.NDArray[np.float64]], key_fields: list[str]
) -> dict[str, dict[str, npt.NDArray[np.float64]]]:
    parts = read_text_columns(table, key_fields)
    n = table.read([]).num_rows if not columns else next(iter(columns.values())).shape[0]
    present = np.ones(n, dtype=bool)
    for part in parts.values():
        present &= part != None  # noqa: E711  (element-wise comparison on an object array)
    rows = np.flatnonzero(present)
    if rows.size == 0:
        return {}
    joined = np.array(
        [join_key(p) for p in zip(*(parts[k][rows] for k in key_fields), strict=True)],
        dtype=np.str_,
    )
    keys, inverse = np.unique(joined, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.searchsorted(inverse[order], np.arange(keys.shape[0] + 1))
    by_key: dict[str, dict[str, npt.NDArray[np.float64]]] = {}
    for i, key in enumerate(keys.tolist()):
        idx = rows[order[bounds[i] : bounds[i + 1]]]
        own: dict[str, npt.NDArray[np.float64]] = {}
        for name, column in columns.items():
            sample = column[idx]
            finite = sample[np.isfinite(sample)]
            if finite.size:
                own[name] = finite
        by_key[key] = own
    return by_key


def reference_loader(settings: Settings) -> Callable[[], FileReferences] | None:
    """A function that (re)reads ``reference_file``, or None when no file is configured."""
    path = settings.reference_file
    if not path:
        return None

    def load() -> FileReferences:
        return load_references(path, settings.features, settings.key_fields)

    return load


def reference_source(settings: Settings) -> ReferenceSource | None:
    """The reference policy of ``settings`` as a callable, or None for warm-up."""
    loader = reference_loader(settings)
    if settings.reference_mode != "file" or loader is None:
        return None
    return loader()
