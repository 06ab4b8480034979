from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats

from stream.exceptions import InputFileError
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor
from stream.monitoring.references import (
    FileReferences,
    load_reference_file,
    load_references,
    reference_loader,
    reference_source,
)
from stream.settings import DEFAULT_FEATURES, Settings, load_settings
from stream.telemetry.records import Telemetry, TelemetryParser
from stream.tools.sources import read_text_columns
from tests.support.pipeline import simulated_messages

WINDOW = 200


def reference_table(seed: int = 0) -> pa.Table:
    """Rows for agent-0 and agent-1 only, each with its own latency level; one null key."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[object]] = {"agent_id": [], **{f: [] for f in DEFAULT_FEATURES}}
    for agent, level, count in (("agent-0", 6.2, 400), ("agent-1", 6.9, 300), (None, 5.0, 50)):
        rows["agent_id"] += [agent] * count
        rows["response_latency_ms"] += np.round(rng.lognormal(level, 0.3, count), 1).tolist()
        rows["token_count"] += rng.poisson(500, count).astype(float).tolist()
        rows["retry_count"] += rng.poisson(0.3, count).astype(float).tolist()
        rows["error_rate"] += np.round(rng.beta(2, 60, count), 4).tolist()
    # agent-1 has no usable error_rate: that feature falls back to the whole file
    rows["error_rate"][400:700] = [None] * 300
    return pa.table(rows)


def write(table: pa.Table, path: Path) -> Path:
    if path.suffix == ".parquet":
        pq.write_table(table, path)
    else:
        pa_csv.write_csv(table, path)
    return path


def column(table: pa.Table, name: str, agent: str | None = None) -> np.ndarray:
    values = np.array(table.column(name).to_pylist(), dtype=object)
    if agent is not None:
        keys = np.array(table.column("agent_id").to_pylist(), dtype=object)
        values = values[keys == agent]
    out = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return out[np.isfinite(out)]


def run_file_mode(path: Path) -> tuple[Settings, DriftMonitor, CollectorRegistry, list[Telemetry]]:
    settings = load_settings(
        environ={},
        alpha=1e-7,
        window_size=WINDOW,
        reference_mode="file",
        reference_file=str(path),
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    monitor = DriftMonitor(
        settings, references=reference_source(settings), metrics=metrics, metrics_interval=0.0
    )
    proc = BatchProcessor(TelemetryParser(settings), monitor, metrics, settings.telemetry_topic)
    messages = simulated_messages(3000, agents=3, seed=5)
    for i in range(0, len(messages), 400):
        proc.handle(messages[i : i + 400])
    parser = TelemetryParser(settings)
    parsed = [parser.parse(m.value, offset=m.offset) for m in messages]
    return settings, monitor, registry, [p for p in parsed if isinstance(p, Telemetry)]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_per_key_references_from_a_file(tmp_path: Path, suffix: str) -> None:
    table = reference_table()
    path = write(table, tmp_path / f"reference{suffix}")
    settings, monitor, registry, events = run_file_mode(path)
    expected_refs = {
        ("agent-0", "response_latency_ms"): column(table, "response_latency_ms", "agent-0"),
        ("agent-1", "response_latency_ms"): column(table, "response_latency_ms", "agent-1"),
        ("agent-1", "token_count"): column(table, "token_count", "agent-1"),
        # no rows of agent-2 in the file: the whole file (null-key rows included)
        ("agent-2", "response_latency_ms"): column(table, "response_latency_ms"),
        ("agent-2", "retry_count"): column(table, "retry_count"),
        # agent-1's error_rate is all missing: the whole file
        ("agent-1", "error_rate"): column(table, "error_rate"),
        ("agent-0", "error_rate"): column(table, "error_rate", "agent-0"),
    }
    assert expected_refs["agent-0", "response_latency_ms"].size == 400
    for (key, feature), reference in expected_refs.items():
        j = settings.features.index(feature)
        window = np.array([e.values[j] for e in events if e.key == key])[-WINDOW:]
        expected = stats.ks_2samp(reference, window)
        labels = {"key": key, "feature": feature}
        got = registry.get_sample_value("driftwatch_ks_statistic", labels)
        assert got == pytest.approx(expected.statistic, abs=1e-12), labels
        p = registry.get_sample_value("driftwatch_p_value", labels)
        assert p == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300), labels
        detector = monitor.keys[key].features[j].detector
        assert np.array_equal(detector.reference, np.sort(reference))  # type: ignore[union-attr]


def test_a_file_without_key_columns_serves_every_key(tmp_path: Path) -> None:
    table = reference_table().drop_columns(["agent_id"])
    path = write(table, tmp_path / "reference.parquet")
    refs = load_references(str(path), DEFAULT_FEATURES, ("agent_id",))
    assert not refs.keyed
    latency = column(table, "response_latency_ms")
    for key in ("agent-0", "anyone"):
        assert np.array_equal(refs(key, "response_latency_ms"), latency)  # type: ignore[arg-type]
    assert refs("agent-0", "not-a-feature") is None


def test_multi_field_keys_are_joined_like_telemetry_keys(tmp_path: Path) -> None:
    table = pa.table(
        {
            "agent_id": ["a", "a", "b", "a"],
            "model": [1, 2, 1, 1],  # numbers become text, as in telemetry keys
            "x": [1.0, 2.0, 3.0, 4.0],
        }
    )
    path = write(table, tmp_path / "ref.csv")
    refs = load_references(str(path), ("x",), ("agent_id", "model"))
    assert sorted(refs.by_key) == ["a/1", "a/2", "b/1"]
    assert refs("a/1", "x").tolist() == [1.0, 4.0]  # type: ignore[union-attr]
    assert refs("c/1", "x").tolist() == [1.0, 2.0, 3.0, 4.0]  # type: ignore[union-attr]


def test_reference_policy_from_settings(tmp_path: Path) -> None:
    path = write(reference_table(), tmp_path / "reference.parquet")
    warmup = load_settings(environ={}, reference_file=str(path))
    assert reference_source(warmup) is None  # warm-up mode ignores the file at start ...
    loader = reference_loader(warmup)  # ... but a rebaseline from file can read it
    assert loader is not None and isinstance(loader(), FileReferences)
    assert reference_loader(load_settings(environ={})) is None
    filed = load_settings(environ={}, reference_mode="file", reference_file=str(path))
    source = reference_source(filed)
    assert isinstance(source, FileReferences) and source.keyed
    shared = load_reference_file(str(path), DEFAULT_FEATURES)
    assert set(shared) == set(DEFAULT_FEATURES)


def test_bad_reference_files_name_the_problem(tmp_path: Path) -> None:
    path = write(pa.table({"agent_id": ["a"], "x": [None]}, schema=None), tmp_path / "r.parquet")
    with pytest.raises(InputFileError, match="no finite values"):
        load_references(str(path), ("x",), ("agent_id",))
    with pytest.raises(InputFileError, match="missing column"):
        load_references(str(path), ("y",), ("agent_id",))
    with pytest.raises(InputFileError, match="missing column"):
        read_text_columns(path, ["nope"])


def test_read_text_columns_reads_any_type_as_text(tmp_path: Path) -> None:
    path = write(
        pa.table({"k": ["a ", "", None], "n": [1, 2, None], "f": [1.5, float("nan"), 3.0]}),
        tmp_path / "t.parquet",
    )
    out = read_text_columns(path, ["k", "n", "f"])
    assert out["k"].tolist() == ["a", None, None]
    assert out["n"].tolist() == ["1", "2", None]
    assert out["f"].tolist() == ["1.5", None, "3"]
