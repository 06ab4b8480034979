"""Reading reference and production data from tabular files.

Three formats are supported, chosen by file extension:

==========  =============================  ==========================================
Format      Extensions                     Notes
==========  =============================  ==========================================
Parquet     ``.parquet``, ``.pq``          only the requested columns are read
CSV         ``.csv``                       header row required; may end in ``.gz``,
                                           ``.bz2`` or ``.zst`` (compressed)
JSON Lines  ``.jsonl``, ``.ndjson``        one JSON object per line; may be compressed
                                           like CSV
==========  =============================  ==========================================

Everything goes through pyarrow straight into numpy (no pandas). Numeric columns come back
as ``float64`` arrays with missing values as NaN; label columns come back as strings. Every
problem with a file raises :class:`stream.exceptions.InputFileError` naming the file and
what is wrong with it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from stream.exceptions import InputFileError

__all__ = [
    "LABEL_COLUMNS",
    "PREDICTED_LABEL",
    "TRUE_LABEL",
    "FileFormat",
    "TableData",
    "TabularFile",
    "detect_format",
    "read_columns",
    "read_labels",
    "read_text_columns",
]

FileFormat = Literal["parquet", "csv", "jsonl"]

PREDICTED_LABEL = "predicted_label"
TRUE_LABEL = "true_label"
LABEL_COLUMNS: tuple[str, str] = (PREDICTED_LABEL, TRUE_LABEL)

_FORMATS_BY_SUFFIX: dict[str, FileFormat] = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zst")
_FORMAT_NAMES: dict[FileFormat, str] = {
    "parquet": "Parquet",
    "csv": "CSV",
    "jsonl": "JSON Lines",
}

PathLike = str | os.PathLike[str]


def detect_format(path: PathLike) -> FileFormat:
    """Return the format of `path` from its extension (case-insensitive).

    Parameters
    ----------
    path : str or os.PathLike
        File name; the file itself is not opened.

    Returns
    -------
    {"parquet", "csv", "jsonl"}
        The format the extension stands for. CSV and JSON Lines names may carry a
        compression suffix (``data.csv.gz``, ``events.jsonl.zst``).

    Raises
    ------
    InputFileError
        If the extension is not one of the supported ones.

    Examples
    --------
    >>> detect_format("reference.parquet"), detect_format("prod.CSV")
    ('parquet', 'csv')
    >>> detect_format("events.ndjson.gz")
    'jsonl'
    """
    suffixes = [suffix.lower() for suffix in Path(path).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION_SUFFIXES:
        inner = suffixes[-2] if len(suffixes) >= 2 else ""
        fmt = _FORMATS_BY_SUFFIX.get(inner)
        if fmt in ("csv", "jsonl"):
            return fmt
    elif suffixes and suffixes[-1] in _FORMATS_BY_SUFFIX:
        return _FORMATS_BY_SUFFIX[suffixes[-1]]
    found = "".join(suffixes[-2:]) if suffixes else "none"
    raise InputFileError(
        str(path),
        f"unsupported file extension ({found}); expected .parquet or .pq (Parquet), "
        ".csv (CSV) or .jsonl or .ndjson (JSON Lines); CSV and JSON Lines may be "
        "compressed with .gz, .bz2 or .zst",
    )


@dataclass(frozen=True, eq=False)
class TableData:
    """Columns read from one file by :meth:`TabularFile.read`.

    Attributes
    ----------
    path : str
        The file, as it was named by the caller.
    num_rows : int
        Number of data rows in the file (at least 1).
    columns : dict of str to numpy.ndarray
        Requested numeric columns, in request order, each a ``float64`` array of length
        `num_rows` with NaN where the value is missing.
    labels : tuple of (numpy.ndarray, numpy.ndarray) or None
        ``(predicted, true)`` label strings on the rows where both are present, or None if
        labels were not requested or the file lacks either label column.
    """

    path: str
    num_rows: int
    columns: dict[str, npt.NDArray[np.float64]]
    labels: tuple[npt.NDArray[np.str_], npt.NDArray[np.str_]] | None = None


class TabularFile:
    """A Parquet, CSV or JSON Lines file, checked and ready for column reads.

    Opening validates the extension, that the file exists, can be parsed and has at least
    one data row, and learns the column names. Parquet and CSV columns are read only when
    requested; JSON Lines files are parsed once, on opening.

    Parameters
    ----------
    path : str or os.PathLike
        File to open. Its format is chosen by :func:`detect_format`.

    Attributes
    ----------
    path : str
        The file, as given.
    format : {"parquet", "csv", "jsonl"}
        Its format.
    column_names : tuple of str
        All top-level column names, in file order.

    Raises
    ------
    InputFileError
        If the extension is unsupported, the file is missing, unreadable or corrupt, or it
        holds no data rows.
    """

    def __init__(self, path: PathLike) -> None:
        self.path = str(path)
        self._fs_path = Path(path)
        self.format: FileFormat = detect_format(path)
        if not self._fs_path.exists():
            raise InputFileError(self.path, "file not found")
        if self._fs_path.is_dir():
            raise InputFileError(self.path, "is a directory, not a file")
        if self._fs_path.stat().st_size == 0:
            raise InputFileError(self.path, "file is empty (0 bytes)")
        self._json_table: Any = None
        with self._arrow_errors():
            if self.format == "parquet":
                with pq.ParquetFile(self._fs_path) as parquet:
                    names = list(parquet.schema_arrow.names)
                    num_rows = parquet.metadata.num_rows
            elif self.format == "csv":
                names, num_rows = self._peek_csv()
            else:
                self._json_table = pa_json.read_json(self._fs_path)
                names = list(self._json_table.column_names)
                num_rows = self._json_table.num_rows
        if num_rows == 0:
            raise InputFileError(self.path, "file has no data rows")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise InputFileError(self.path, f"duplicate column names {_quoted(duplicates)}")
        self.column_names: tuple[str, ...] = tuple(names)

    def __repr__(self) -> str:
        return f"TabularFile({self.path!r}, format={self.format!r})"

    def read(self, columns: Sequence[str] | None = None, *, labels: bool = False) -> TableData:
        """Read numeric columns (and optionally the label columns).

        Parameters
        ----------
        columns : sequence of str, optional
            Columns to read; each must exist and be numeric (integer, floating point or
            decimal; a column with no values at all counts as numeric). Duplicates are read
            once. None reads every numeric column and skips the others (and the label
            columns, when `labels` is true).
        labels : bool, default False
            Also read ``predicted_label`` and ``true_label`` (see :func:`read_labels`).

        Returns
        -------
        TableData
            The columns as ``float64`` arrays (missing values as NaN), the row count and,
            if requested and present, the labels.

        Raises
        ------
        InputFileError
            If requested columns are missing or not numeric (all of them are named), or the
            file cannot be parsed.
        """
        wanted = None if columns is None else list(dict.fromkeys(columns))
        if wanted is not None:
            missing = [name for name in wanted if name not in self.column_names]
            if missing:
                raise InputFileError(
                    self.path,
                    f"missing column{'s' if len(missing) > 1 else ''} "
                    f"{_quoted(missing)}; the file has {_quoted(self.column_names, limit=20)}",
                )
        label_columns = (
            list(LABEL_COLUMNS)
            if labels and all(name in self.column_names for name in LABEL_COLUMNS)
            else []
        )
        to_read = None if wanted is None else list(dict.fromkeys([*wanted, *label_columns]))
        table = self._read_arrow(to_read)

        if wanted is None:
            numeric_names = [
                name
                for name in table.column_names
                if name not in label_columns and _is_numeric(table.schema.field(name).type)
            ]
        else:
            not_numeric = [
                f"{name!r} ({_describe_non_numeric(table.column(name))})"
                for name in wanted
                if not _is_numeric(table.schema.field(name).type)
            ]
            if not_numeric:
                raise InputFileError(
                    self.path,
                    f"non-numeric column{'s' if len(not_numeric) > 1 else ''} "
                    f"{', '.join(not_numeric)}; only integer or floating-point columns can "
                    "be compared",
                )
            numeric_names = wanted

        with self._arrow_errors():
            arrays = {name: _to_float64(table.column(name)) for name in numeric_names}
            label_pair = (
                _label_pair(table.column(PREDICTED_LABEL), table.column(TRUE_LABEL))
                if label_columns
                else None
            )
        if table.num_rows == 0:
            raise InputFileError(self.path, "file has no data rows")
        return TableData(self.path, int(table.num_rows), arrays, label_pair)

    def _read_arrow(self, columns: list[str] | None) -> Any:
        with self._arrow_errors():
            if self.format == "parquet":
                with pq.ParquetFile(self._fs_path) as parquet:
                    return parquet.read(columns=columns)
            if self.format == "csv":
                # An empty include list means "all columns" to pyarrow; read one column
                # instead so that the row count is still known.
                options = pa_csv.ConvertOptions()
                if columns is not None:
                    options.include_columns = columns or [self.column_names[0]]
                return pa_csv.read_csv(self._fs_path, convert_options=options)
            table = self._json_table
            return table if columns is None else table.select(columns)

    def _peek_csv(self) -> tuple[list[str], int]:
        """Column names and whether the CSV has rows, from its first block only."""
        reader = pa_csv.open_csv(self._fs_path)
        try:
            names = list(reader.schema.names)
            for batch in reader:
                if batch.num_rows:
                    return names, int(batch.num_rows)
            return names, 0
        finally:
            reader.close()

    def _arrow_errors(self) -> AbstractContextManager[None]:
        return _arrow_errors(self.path, _FORMAT_NAMES[self.format])


@contextmanager
def _arrow_errors(path: str, format_name: str) -> Iterator[None]:
    """Turn pyarrow and I/O failures inside the block into :class:`InputFileError`."""
    try:
        yield
    except InputFileError:
        raise
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        detail = str(exc).strip() or type(exc).__name__
        raise InputFileError(path, f"cannot read as {format_name}: {detail}") from exc


def read_columns(
    path: PathLike, columns: Sequence[str] | None = None
) -> dict[str, npt.NDArray[np.float64]]:
    """Read numeric columns of a Parquet, CSV or JSON Lines file as ``float64`` arrays.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its format is chosen by extension (see :func:`detect_format`).
    columns : sequence of str, optional
        Columns to read, all of which must exist and be numeric. None reads every numeric
        column (non-numeric ones are skipped).

    Returns
    -------
    dict of str to numpy.ndarray
        One ``float64`` array per column, in request (or file) order, all of the file's
        row count, with missing values as NaN.

    Raises
    ------
    InputFileError
        If the file is missing, unreadable, corrupt or has no data rows, has an unsupported
        extension, or lacks a requested column or holds non-numeric values in one (every
        offending column is named).

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.csv
    >>> path = getfixture("tmp_path") / "latency.csv"
    >>> pa.csv.write_csv(pa.table({"ms": [12.5, None, 40.0], "tool": ["a", "b", "c"]}), path)
    >>> read_columns(path)
    {'ms': array([12.5,  nan, 40. ])}
    """
    return TabularFile(path).read(columns).columns


def read_labels(path: PathLike) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.str_]] | None:
    """Read the ``predicted_label`` and ``true_label`` columns, as strings.

    Labels are compared as text: numbers are formatted by pyarrow (``1`` and ``1.0`` both
    become ``"1"``), surrounding whitespace is stripped, and null, NaN or empty values
    count as missing.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its format is chosen by extension (see :func:`detect_format`).

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray) or None
        ``(predicted, true)`` string arrays of equal length holding only the rows where both
        labels are present (possibly zero rows), or None if either column is absent.

    Raises
    ------
    InputFileError
        If the file cannot be read (see :func:`read_columns`) or a label column cannot be
        turned into text.

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.parquet
    >>> path = getfixture("tmp_path") / "labels.parquet"
    >>> table = pa.table({"predicted_label": [1, 0, 1], "true_label": ["1", None, "0"]})
    >>> pa.parquet.write_table(table, path)
    >>> predicted, true = read_labels(path)
    >>> predicted, true
    (array(['1', '1'], dtype='<U1'), array(['1', '0'], dtype='<U1'))
    >>> float((predicted == true).mean())
    0.5
    """
    return TabularFile(path).read([], labels=True).labels


def read_text_columns(
    source: PathLike | TabularFile, columns: Sequence[str]
) -> dict[str, npt.NDArray[np.object_]]:
    """Read columns of any type as text, for example key columns.

    Values are turned into text like labels (see :func:`read_labels`): numbers are formatted
    by pyarrow, surrounding whitespace is stripped, and null, NaN or empty values are None.

    Parameters
    ----------
    source : str, os.PathLike or TabularFile
        The file (or an already opened :class:`TabularFile`, which is not read again on
        opening).
    columns : sequence of str
        Columns to read; each must exist.

    Returns
    -------
    dict of str to numpy.ndarray
        One ``object`` array per column (``str`` or None per row), all of the file's row count.

    Raises
    ------
    InputFileError
        If the file cannot be read, a column is missing or cannot be turned into text.

    Examples
    --------
    >>> import pyarrow as pa, pyarrow.csv
    >>> path = getfixture("tmp_path") / "keys.csv"
    >>> pa.csv.write_csv(pa.table({"agent_id": ["a", "", "b"], "ms": [1.0, 2.0, 3.0]}), path)
    >>> read_text_columns(path, ["agent_id"])
    {'agent_id': array(['a', None, 'b'], dtype=object)}
    """
    table_file = source if isinstance(source, TabularFile) else TabularFile(source)
    wanted = list(dict.fromkeys(columns))
    missing = [name for name in wanted if name not in table_file.column_names]
    if missing:
        raise InputFileError(
            table_file.path,
            f"missing column{'s' if len(missing) > 1 else ''} {_quoted(missing)}; "
            f"the file has {_quoted(table_file.column_names, limit=20)}",
        )
    table = table_file._read_arrow(wanted)
    out: dict[str, npt.NDArray[np.object_]] = {}
    with table_file._arrow_errors():
        for name in wanted:
            text = _label_strings(table.column(name)).to_pylist()
            values = np.empty(len(text), dtype=object)
            values[:] = text
            out[name] = values
    return out


def _is_numeric(arrow_type: Any) -> bool:
    if pa.types.is_dictionary(arrow_type):
        arrow_type = arrow_type.value_type
    return bool(
        pa.types.is_integer(arrow_type)
        or pa.types.is_floating(arrow_type)
        or pa.types.is_decimal(arrow_type)
        or pa.types.is_null(arrow_type)
    )


def _describe_non_numeric(column: Any) -> str:
    non_null = column.drop_null()
    if len(non_null) == 0:
        return f"type {column.type}"
    example = non_null[0].as_py()
    return f"type {column.type}, e.g. {str(example)[:40]!r}"


def _to_float64(column: Any) -> npt.NDArray[np.float64]:
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    floats = column.cast(pa.float64(), safe=False).fill_null(np.nan)
    return np.asarray(floats.to_numpy(), dtype=np.float64)


def _label_strings(column: Any) -> Any:
    """Label column as a pyarrow string column, with every missing value as null."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_floating(column.type):
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    try:
        text = column.cast(pa.large_string())
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid) as exc:
        raise pa.ArrowInvalid(
            f"label column {column.type} values cannot be turned into text: {exc}"
        ) from exc
    text = pc.utf8_trim_whitespace(text)
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.large_string()), text)


def _label_pair(predicted: Any, true: Any) -> tuple[npt.NDArray[np.str_], npt.NDArray[np.str_]]:
    predicted_text = _label_strings(predicted)
    true_text = _label_strings(true)
    both = pc.and_(pc.is_valid(predicted_text), pc.is_valid(true_text))
    return (
        np.array(predicted_text.filter(both).to_pylist(), dtype=np.str_),
        np.array(true_text.filter(both).to_pylist(), dtype=np.str_),
    )


def _quoted(names: Sequence[str], limit: int | None = None) -> str:
    shown = list(names) if limit is None else list(names)[:limit]
    text = ", ".join(repr(name) for name in shown)
    if limit is not None and len(names) > limit:
        text += f" and {len(names) - limit} more"
    return text or "no columns"
