"""Tests for stream.tools.sources: reading Parquet, CSV and JSON Lines into numpy."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from stream.exceptions import InputFileError
from stream.tools.sources import TabularFile, detect_format, read_columns, read_labels

Writer = Callable[[pa.Table, Path], None]


def write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path)


def write_csv(table: pa.Table, path: Path) -> None:
    pa_csv.write_csv(table, path)


def write_jsonl(table: pa.Table, path: Path) -> None:
    with path.open("w") as out:
        for row in table.to_pylist():
            out.write(json.dumps(row) + "\n")


WRITERS: dict[str, Writer] = {
    ".parquet": write_parquet,
    ".pq": write_parquet,
    ".csv": write_csv,
    ".jsonl": write_jsonl,
    ".ndjson": write_jsonl,
}

SAMPLE = pa.table(
    {
        "latency": pa.array([12.5, None, 40.25, 7.0], pa.float64()),
        "tokens": pa.array([10, 20, None, 40], pa.int64()),
        "tool": ["search", "calc", "search", None],
        "predicted_label": ["a", "b", None, "a"],
        "true_label": ["a", "a", "b", " a "],
    }
)


@pytest.mark.parametrize("suffix", list(WRITERS))
def test_read_columns_every_format(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sample{suffix}"
    WRITERS[suffix](SAMPLE, path)
    columns = read_columns(path, ["tokens", "latency"])
    assert list(columns) == ["tokens", "latency"]
    np.testing.assert_array_equal(columns["latency"], [12.5, np.nan, 40.25, 7.0])
    np.testing.assert_array_equal(columns["tokens"], [10.0, 20.0, np.nan, 40.0])
    assert all(array.dtype == np.float64 for array in columns.values())


@pytest.mark.parametrize("suffix", [".csv.gz", ".jsonl.gz"])
def test_compressed_text_formats(tmp_path: Path, suffix: str) -> None:
    plain = tmp_path / f"plain{suffix.removesuffix('.gz')}"
    WRITERS[suffix.removesuffix(".gz")](SAMPLE, plain)
    path = tmp_path / f"sample{suffix}"
    path.write_bytes(gzip.compress(plain.read_bytes()))
    np.testing.assert_array_equal(read_columns(path, ["tokens"])["tokens"], [10, 20, np.nan, 40])


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_all_numeric_columns_by_default(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sample{suffix}"
    WRITERS[suffix](SAMPLE, path)
    assert list(read_columns(path)) == ["latency", "tokens"]


def test_tabular_file_metadata(tmp_path: Path) -> None:
    path = tmp_path / "sample.csv"
    write_csv(SAMPLE, path)
    source = TabularFile(path)
    assert source.format == "csv"
    assert source.path == str(path)
    assert source.column_names == tuple(SAMPLE.column_names)
    data = source.read(["tokens"], labels=True)
    assert data.num_rows == 4
    assert data.labels is not None


def test_detect_format() -> None:
    assert detect_format("a.PARQUET") == "parquet"
    assert detect_format("a.pq") == "parquet"
    assert detect_format("dir.v2/a.csv") == "csv"
    assert detect_format("a.ndjson") == "jsonl"
    assert detect_format("a.jsonl.zst") == "jsonl"
    assert detect_format("a.csv.bz2") == "csv"


@pytest.mark.parametrize("name", ["data.txt", "data", "data.json", "data.parquet.gz", "data.gz"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text("a,b\n1,2\n")
    with pytest.raises(InputFileError, match="unsupported file extension") as info:
        read_columns(path)
    assert info.value.path == str(path)
    assert ".parquet" in str(info.value) and ".jsonl" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.parquet"
    with pytest.raises(InputFileError, match="file not found") as info:
        read_columns(path)
    assert str(path) in str(info.value)


def test_directory(tmp_path: Path) -> None:
    path = tmp_path / "dir.csv"
    path.mkdir()
    with pytest.raises(InputFileError, match="is a directory"):
        read_columns(path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_zero_byte_file(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.touch()
    with pytest.raises(InputFileError, match="empty"):
        read_columns(path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_zero_rows(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"header_only{suffix}"
    WRITERS[suffix](SAMPLE.slice(0, 0), path)
    with pytest.raises(InputFileError, match="no data rows"):
        read_columns(path, ["latency"])


def test_header_only_csv(tmp_path: Path) -> None:
    path = tmp_path / "header.csv"
    path.write_text("latency,tokens\n")
    with pytest.raises(InputFileError, match="no data rows"):
        read_columns(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.parquet", b"this is not parquet at all"),
        ("bad.jsonl", b'{"a": 1}\n{"a": \n'),
        ("bad.csv", b"a,b\n1,2\n3,4,5\n"),
    ],
)
def test_corrupt_file(tmp_path: Path, name: str, content: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputFileError, match="cannot read as") as info:
        read_columns(path)
    assert info.value.path == str(path)


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_missing_columns_are_all_named(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sample{suffix}"
    WRITERS[suffix](SAMPLE, path)
    with pytest.raises(InputFileError, match="missing columns 'nope', 'other'") as info:
        read_columns(path, ["latency", "nope", "other"])
    assert "'latency'" in str(info.value)  # lists what the file does have


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_non_numeric_column(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sample{suffix}"
    WRITERS[suffix](SAMPLE, path)
    with pytest.raises(InputFileError, match=r"non-numeric columns 'tool' .*'predicted_label'"):
        read_columns(path, ["tool", "latency", "predicted_label"])
    with pytest.raises(InputFileError, match=r"non-numeric column 'tool' \(type string, e.g. "):
        read_columns(path, ["tool"])


def test_boolean_column_is_not_numeric(tmp_path: Path) -> None:
    path = tmp_path / "flags.parquet"
    write_parquet(pa.table({"flag": [True, False]}), path)
    with pytest.raises(InputFileError, match="non-numeric column 'flag'"):
        read_columns(path, ["flag"])


def test_all_null_column_reads_as_nan(tmp_path: Path) -> None:
    path = tmp_path / "nulls.csv"
    path.write_text("a,b\n,1\n,2\n")
    np.testing.assert_array_equal(read_columns(path, ["a"])["a"], [np.nan, np.nan])


def test_csv_type_change_after_first_block(tmp_path: Path) -> None:
    # Integers for far more than pyarrow's first 1 MiB block, then a float.
    path = tmp_path / "late_float.csv"
    n = 300_000
    path.write_text("x\n" + "".join(f"{i}\n" for i in range(n)) + "0.5\n")
    x = read_columns(path, ["x"])["x"]
    assert x.shape == (n + 1,)
    assert x[-1] == 0.5 and x[n - 1] == n - 1


def test_dictionary_and_decimal_columns(tmp_path: Path) -> None:
    import decimal

    path = tmp_path / "typed.parquet"
    table = pa.table(
        {
            "dict": pa.array([1.5, 2.5, 1.5]).dictionary_encode(),
            "dec": pa.array([decimal.Decimal("1.25"), None, decimal.Decimal("3")]),
            "small": pa.array([1, 2, 3], pa.uint8()),
        }
    )
    write_parquet(table, path)
    columns = read_columns(path)
    np.testing.assert_array_equal(columns["dict"], [1.5, 2.5, 1.5])
    np.testing.assert_array_equal(columns["dec"], [1.25, np.nan, 3.0])
    np.testing.assert_array_equal(columns["small"], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("suffix", [".parquet", ".csv", ".jsonl"])
def test_read_labels(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"sample{suffix}"
    WRITERS[suffix](SAMPLE, path)
    labels = read_labels(path)
    assert labels is not None
    predicted, true = labels
    # Row 3 has no prediction; the whitespace around " a " is stripped.
    assert predicted.tolist() == ["a", "b", "a"]
    assert true.tolist() == ["a", "a", "a"]


def test_labels_numbers_compare_as_text(tmp_path: Path) -> None:
    path = tmp_path / "mixed.parquet"
    table = pa.table(
        {
            "predicted_label": pa.array([1.0, 0.0, float("nan"), 2.5, 1.0]),
            "true_label": pa.array([1, 1, 0, None, 1], pa.int64()),
        }
    )
    write_parquet(table, path)
    labels = read_labels(path)
    assert labels is not None
    assert labels[0].tolist() == ["1", "0", "1"]
    assert labels[1].tolist() == ["1", "1", "1"]


def test_labels_empty_strings_are_missing(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("predicted_label,true_label\ncat,cat\n,dog\n  ,dog\ndog,\n")
    labels = read_labels(path)
    assert labels is not None
    assert labels[0].tolist() == ["cat"] and labels[1].tolist() == ["cat"]


def test_labels_absent(tmp_path: Path) -> None:
    path = tmp_path / "one_label.parquet"
    write_parquet(SAMPLE.drop_columns(["true_label"]), path)
    assert read_labels(path) is None
    path = tmp_path / "no_labels.jsonl"
    write_jsonl(SAMPLE.select(["latency"]), path)
    assert read_labels(path) is None


def test_read_without_labels_requested(tmp_path: Path) -> None:
    path = tmp_path / "sample.parquet"
    write_parquet(SAMPLE, path)
    assert TabularFile(path).read(["latency"]).labels is None


def test_duplicate_column_names(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,b,a\n1,2,3\n")
    with pytest.raises(InputFileError, match="duplicate column names 'a'"):
        read_columns(path, ["b"])
