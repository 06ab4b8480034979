from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from prometheus_client import CollectorRegistry
from scipy import stats

from detectors import IncrementalKS
from stream import cli
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, RawMessage
from stream.monitoring.references import reference_loader, reference_source
from stream.settings import DEFAULT_FEATURES, Settings, load_settings
from stream.telemetry.records import (
    CONTROL_INVALID_REASONS,
    ControlCommand,
    ControlParser,
    DriftEvent,
    Invalid,
    Telemetry,
    TelemetryParser,
)
from stream.tools.rebaseline import build_command
from stream.tools.simulation import DriftSpec
from stream.worker.checkpoints import CheckpointCodec
from stream.worker.control import ControlHandler
from tests.support.pipeline import simulated_messages

LATENCY = "response_latency_ms"


class Harness:
    """A monitor, its processor and control handler, as the worker wires them."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.monitor = DriftMonitor(
            settings,
            references=reference_source(settings),
            metrics=self.metrics,
            metrics_interval=0.0,
            reload_references=reference_loader(settings),
        )
        self.processor = BatchProcessor(
            TelemetryParser(settings), self.monitor, self.metrics, settings.telemetry_topic
        )
        self.control = ControlHandler(ControlParser(settings), self.monitor, self.metrics)
        self.parser = TelemetryParser(settings)
        self.fed: list[Telemetry] = []

    def feed(self, messages: list[RawMessage], batch: int = 500) -> list[DriftEvent]:
        out: list[DriftEvent] = []
        for i in range(0, len(messages), batch):
            out.extend(self.processor.handle(messages[i : i + batch]).drift_events)
        for m in messages:
            t = self.parser.parse(m.value, offset=m.offset)
            assert isinstance(t, Telemetry)
            self.fed.append(t)
        return out

    def values(self, key: str, feature: str) -> np.ndarray:
        j = self.settings.features.index(feature)
        return np.array([t.values[j] for t in self.fed if t.key == key])

    def detector(self, key: str, feature: str) -> IncrementalKS:
        det = self.monitor.keys[key].features[self.settings.features.index(feature)].detector
        assert isinstance(det, IncrementalKS)
        return det


def command(**fields: Any) -> RawMessage:
    return RawMessage(b"k", msgspec.json.encode({"action": "rebaseline", **fields}), 0, 7)


def test_rebaseline_from_the_window_takes_the_drifted_window_as_reference() -> None:
    h = Harness(load_settings(environ={}, alpha=1e-7, window_size=300, reference_size=600))
    drift = DriftSpec("agent-2", LATENCY, "shift", 0.5, start_event=6000)
    messages = simulated_messages(16000, drift=drift)
    events = h.feed(messages[:12000])
    assert [(e.key, e.feature) for e in events if e.type == "drift_started"] == [
        ("agent-2", LATENCY)
    ]
    det = h.detector("agent-2", LATENCY)
    new_reference, old_reference = det.window, det.reference

    outcome = h.control.handle(command(key="agent-2", feature=LATENCY, source="window"))
    assert outcome.dead_letters == []
    # the refresh closes the open episode visibly, with the command's id
    closed, refresh = outcome.drift_events
    assert (closed.type, closed.reason, closed.key, closed.feature) == (
        "drift_resolved",
        "rebaselined",
        "agent-2",
        LATENCY,
    )
    assert closed.command_id == refresh.command_id == "control-0-7"
    assert closed.to_dict()["reason"] == "rebaselined" and refresh.to_dict()["reason"] is None
    closing = stats.ks_2samp(old_reference, new_reference)
    assert closed.statistic == pytest.approx(closing.statistic, abs=1e-12)
    assert (refresh.type, refresh.key, refresh.feature) == (
        "reference_refreshed",
        "agent-2",
        LATENCY,
    )
    assert refresh.reference_size == refresh.window_size == 300
    assert refresh.statistic == 0.0 and refresh.p_value == 1.0
    latency = h.values("agent-2", LATENCY)
    assert np.array_equal(np.sort(latency[-300:]), det.reference)
    doc = refresh.to_dict()
    assert doc["type"] == "reference_refreshed" and doc["reference_source"] == "window"
    assert doc["kind"] == "distribution" and doc["threshold"] is None
    assert doc["source"]["window_last_offset"] == max(t.offset for t in h.fed if t.key == "agent-2")
    assert (
        h.registry.get_sample_value(
            "driftwatch_drift_events_total", {"type": "reference_refreshed", "feature": LATENCY}
        )
        == 1.0
    )

    # afterwards the statistic is scipy's against the new reference, and the episode resolves
    later = h.feed(messages[12000:])
    window = h.values("agent-2", LATENCY)[-300:]
    expected = stats.ks_2samp(new_reference, window)
    assert det.statistic == pytest.approx(expected.statistic, abs=1e-12)
    assert det.p_value == pytest.approx(expected.pvalue, rel=1e-9)
    labels = {"key": "agent-2", "feature": LATENCY}
    assert h.registry.get_sample_value("driftwatch_ks_statistic", labels) == pytest.approx(
        expected.statistic, abs=1e-12
    )
    # the detector's own end of the closed episode is not reported again
    assert [(e.type, e.key, e.feature) for e in later] == []
    assert h.registry.get_sample_value("driftwatch_drift_active", labels) == 0.0
    # other streams were left alone
    other = h.detector("agent-0", LATENCY)
    assert other.reference.size == 600


def test_rebaseline_every_key_and_feature() -> None:
    h = Harness(load_settings(environ={}, alpha=1e-7, window_size=100, reference_size=200))
    h.feed(simulated_messages(2000, agents=3, seed=1))
    events = h.monitor.rebaseline(None, None, "window")
    streams = {(e.key, e.feature) for e in events}
    features = (*DEFAULT_FEATURES, "accuracy")
    assert streams == {(f"agent-{i}", f) for i in range(3) for f in features}
    assert len(events) == len(streams)
    for e in events:
        assert e.statistic == 0.0 and e.reference_size == 100
    accuracy = [e for e in events if e.feature == "accuracy"]
    for e in accuracy:
        assert e.kind == "performance" and e.rolling_accuracy == e.reference_accuracy
    assert len({e.event_id for e in events}) == len(events)


def reference_file(tmp_path: Path, seed: int = 3) -> tuple[Path, dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    per_key = {
        "agent-0": np.round(rng.lognormal(6.0, 0.3, 250), 1),
        "agent-1": np.round(rng.lognormal(7.0, 0.3, 350), 1),
    }
    keys = ["agent-0"] * 250 + ["agent-1"] * 350
    latency = np.concatenate([per_key["agent-0"], per_key["agent-1"]])
    table = {
        "agent_id": keys,
        LATENCY: latency,
        "token_count": rng.poisson(500, 600).astype(float),
        "retry_count": rng.poisson(0.4, 600).astype(float),
        "error_rate": np.round(rng.beta(2, 50, 600), 4),
    }
    path = tmp_path / "reference.parquet"
    pq.write_table(pa.table(table), path)
    return path, {**per_key, "all": latency}


def test_rebaseline_from_the_file_gives_each_key_its_reference(tmp_path: Path) -> None:
    path, refs = reference_file(tmp_path)
    settings = load_settings(
        environ={}, alpha=1e-7, window_size=150, reference_size=300, reference_file=str(path)
    )
    h = Harness(settings)  # warm-up mode: the file is read on request only
    h.feed(simulated_messages(3000, agents=3, seed=2))
    assert h.detector("agent-0", LATENCY).reference.size == 300

    outcome = h.control.handle(command(source="file", feature=LATENCY))
    assert outcome.dead_letters == []
    assert sorted(e.key for e in outcome.drift_events) == ["agent-0", "agent-1", "agent-2"]
    expected_refs = {"agent-0": refs["agent-0"], "agent-1": refs["agent-1"], "agent-2": refs["all"]}
    for e in outcome.drift_events:
        assert e.reference_source == "file" and e.feature == LATENCY
        reference = expected_refs[e.key]
        window = h.values(e.key, LATENCY)[-150:]
        expected = stats.ks_2samp(reference, window)
        assert e.reference_size == reference.size and e.window_size == 150
        assert e.statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert e.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert np.array_equal(h.detector(e.key, LATENCY).reference, np.sort(reference))
    # the other features kept their warm-up references
    assert h.detector("agent-0", "token_count").reference.size == 300

    # afterwards: still scipy's statistic against the file reference
    h.feed(simulated_messages(500, agents=3, seed=8))
    window = h.values("agent-1", LATENCY)[-150:]
    expected = stats.ks_2samp(refs["agent-1"], window)
    assert h.detector("agent-1", LATENCY).statistic == pytest.approx(expected.statistic, abs=1e-12)


def test_a_file_rebaseline_also_serves_new_keys_in_file_mode(tmp_path: Path) -> None:
    path, refs = reference_file(tmp_path)
    settings = load_settings(
        environ={},
        alpha=1e-7,
        window_size=100,
        reference_mode="file",
        reference_file=str(path),
    )
    h = Harness(settings)
    h.feed(simulated_messages(300, agents=1, seed=2))
    new_path, _ = reference_file(tmp_path, seed=9)  # the file is replaced on disk
    assert new_path == path
    events = h.monitor.rebaseline("agent-0", LATENCY, "file")
    refreshed = [(e.key, e.reference_source) for e in events if e.type == "reference_refreshed"]
    assert refreshed == [("agent-0", "file")]
    assert all(e.reason == "rebaselined" for e in events if e.type == "drift_resolved")
    assert not np.array_equal(h.detector("agent-0", LATENCY).reference, np.sort(refs["agent-0"]))
    assert h.monitor.references is not None
    assert h.monitor.references("agent-1", LATENCY).size == 350  # type: ignore[union-attr]


def test_rebaseline_accuracy_from_the_window() -> None:
    h = Harness(load_settings(environ={}, alpha=1e-7, window_size=300, reference_size=600))
    drift = DriftSpec("agent-1", "accuracy", "accuracy", 0.3, start_event=6000)
    messages = simulated_messages(14000, drift=drift, seed=3)
    events = h.feed(messages[:12000])
    assert [(e.key, e.kind) for e in events if e.type == "drift_started"] == [
        ("agent-1", "performance")
    ]
    closed, refresh = h.monitor.rebaseline("agent-1", "accuracy", "window", command_id="c7")
    assert (closed.type, closed.reason, closed.kind) == (
        "drift_resolved",
        "rebaselined",
        "performance",
    )
    assert refresh.kind == "performance" and refresh.type == "reference_refreshed"
    right = [t.predicted_label == t.true_label for t in h.fed if t.key == "agent-1"]
    assert refresh.rolling_accuracy == pytest.approx(np.mean(right[-300:]), abs=1e-12)
    assert refresh.reference_accuracy == refresh.rolling_accuracy
    assert refresh.to_dict()["reference_accuracy"] == refresh.reference_accuracy
    later = h.feed(messages[12000:])
    assert [(e.type, e.key, e.feature) for e in later] == []


def test_rebaseline_of_an_unreported_accuracy_episode_starts_afresh() -> None:
    settings = load_settings(
        environ={}, alpha=1e-3, window_size=1000, reference_size=2000, features=(LATENCY,)
    )
    h = Harness(settings)
    drift = DriftSpec("agent-0", "accuracy", "accuracy", -0.1, start_event=3000)
    h.feed(simulated_messages(7000, agents=1, drift=drift))
    acc = h.monitor.keys["agent-0"].accuracy
    assert acc is not None and acc.suppressed is not None
    seen = acc.n_base + acc.detector.n_seen  # type: ignore[union-attr]
    (refresh,) = h.monitor.rebaseline("agent-0", "accuracy", "window")
    assert acc.suppressed is None and not acc.detector.in_drift  # type: ignore[union-attr]
    assert refresh.observations == seen and refresh.reference_accuracy == 1.0


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{nope", "invalid_json"),
        (b"[1]", "not_an_object"),
        (msgspec.json.encode({"action": "reset"}), "unknown_action"),
        (msgspec.json.encode({"action": "rebaseline", "fature": LATENCY}), "bad_field"),
        (msgspec.json.encode({"action": "rebaseline", "key": 3}), "bad_field"),
        (msgspec.json.encode({"action": "rebaseline", "key": ""}), "bad_field"),
        (msgspec.json.encode({"action": "rebaseline", "feature": "colour"}), "unknown_feature"),
        (msgspec.json.encode({"action": "rebaseline", "source": "disk"}), "bad_source"),
        (msgspec.json.encode({"action": "rebaseline", "source": "file"}), "no_reference_file"),
        (b"x" * 70_000, "oversized"),
    ],
)
def test_bad_commands_are_rejected_with_a_reason(raw: bytes, reason: str) -> None:
    parser = ControlParser(load_settings(environ={}))
    r = parser.parse(raw, partition=1, offset=9)
    assert isinstance(r, Invalid) and r.reason == reason
    assert reason in CONTROL_INVALID_REASONS and (r.partition, r.offset) == (1, 9)


def test_accuracy_has_no_file_reference(tmp_path: Path) -> None:
    parser = ControlParser(load_settings(environ={}, reference_file=str(tmp_path / "r.parquet")))
    r = parser.parse(
        msgspec.json.encode({"action": "rebaseline", "feature": "accuracy", "source": "file"})
    )
    assert isinstance(r, Invalid) and r.reason == "bad_source"


def test_good_commands_parse() -> None:
    parser = ControlParser(load_settings(environ={}))
    r = parser.parse(msgspec.json.encode({"action": "rebaseline"}), offset=4)
    assert r == ControlCommand("rebaseline", None, None, "window", 0, 4)
    raw = msgspec.json.encode(build_command("agent-1", "accuracy", "window", command_id="abc"))
    r = parser.parse(raw)
    assert isinstance(r, ControlCommand)
    assert (r.key, r.feature, r.source, r.command_id) == ("agent-1", "accuracy", "window", "abc")


def test_the_handler_dead_letters_bad_commands_and_applies_copies_once(tmp_path: Path) -> None:
    path, _ = reference_file(tmp_path)
    h = Harness(
        load_settings(
            environ={}, alpha=1e-7, window_size=50, reference_size=50, reference_file=str(path)
        )
    )
    h.feed(simulated_messages(400, agents=2))
    bad = RawMessage(b"k", b'{"action": "rebaseline", "feature": "colour"}', 2, 11)
    out = h.control.handle(bad)
    assert out.drift_events == []
    (dl,) = out.dead_letters
    assert (dl.reason, dl.message.value) == ("unknown_feature", bad.value)
    headers = dict(dl.headers("driftwatch.control"))
    assert headers["driftwatch-source"] == b"driftwatch.control/2/11"
    labels = {"reason": "unknown_feature"}
    assert h.registry.get_sample_value("driftwatch_invalid_events_total", labels) == 1.0

    raw = msgspec.json.encode(build_command("agent-0", LATENCY, "window", command_id="c1"))
    first = h.control.handle(RawMessage(b"agent-0", raw, 0, 1))
    copy = h.control.handle(RawMessage(b"agent-0", raw, 3, 1))
    assert len(first.drift_events) == 1 and copy.drift_events == [] and copy.duplicate
    assert first.applied and not copy.applied and not out.applied
    # a second command inside the same window refreshes nothing (rate limit), yet the key
    # remembers it: the worker must checkpoint it like one that refreshed
    raw2 = msgspec.json.encode(build_command("agent-0", LATENCY, "window", command_id="c2"))
    limited = h.control.handle(RawMessage(b"agent-0", raw2, 0, 2))
    assert limited.drift_events == [] and limited.applied
    assert h.monitor.keys["agent-0"].applied[-2:] == ["c1", "c2"]

    # an unknown key is dead-lettered; a file that disappeared is a failed rebaseline
    unknown = h.control.handle(command(key="agent-9"))
    assert unknown.drift_events == [] and [d.reason for d in unknown.dead_letters] == [
        "unknown_key"
    ]
    path.unlink()
    out = h.control.handle(
        RawMessage(b"k", msgspec.json.encode({"action": "rebaseline", "source": "file"}), 0, 8)
    )
    assert [d.reason for d in out.dead_letters] == ["rebaseline_failed"]
    assert "file not found" in out.dead_letters[0].detail


def test_monitor_rebaseline_validates_its_arguments() -> None:
    monitor = DriftMonitor(load_settings(environ={}, alpha=1e-3))
    with pytest.raises(ValueError, match="source"):
        monitor.rebaseline(None, None, "disk")
    with pytest.raises(ValueError, match="feature"):
        monitor.rebaseline(None, "colour", "window")
    with pytest.raises(ValueError, match="reference_file"):
        monitor.rebaseline(None, None, "file")
    assert monitor.rebaseline() == []  # nothing tracked yet


class FakeFuture:
    def get(self, timeout: float | None = None) -> None:
        return None


class FakeProducer:
    instances: ClassVar[list[FakeProducer]] = []

    def __init__(self, **config: Any) -> None:
        self.config = config
        self.sent: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.closed = False
        FakeProducer.instances.append(self)

    def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2}

    def send(
        self, topic: str, *, key: bytes | None = None, value: bytes, partition: int | None = None
    ) -> FakeFuture:
        self.sent.append((topic, key, value, partition))
        return FakeFuture()

    def flush(self, timeout: float | None = None) -> None:
        pass

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def test_cli_sends_the_command_to_every_partition(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import kafka

    FakeProducer.instances.clear()
    monkeypatch.setattr(kafka, "KafkaProducer", FakeProducer)
    code = cli.main(
        [
            "rebaseline",
            "--bootstrap-servers",
            "b1:9092,b2:9092",
            "--key",
            "agent-1",
            "--source",
            "file",
        ]
    )
    assert code == 0
    (producer,) = FakeProducer.instances
    assert producer.config["bootstrap_servers"] == ["b1:9092", "b2:9092"] and producer.closed
    assert [(t, k, p) for t, k, _v, p in producer.sent] == [
        ("driftwatch.control", b"agent-1", p) for p in (0, 1, 2)
    ]
    values = {v for _t, _k, v, _p in producer.sent}
    assert len(values) == 1  # one command (one id) on every partition
    doc = msgspec.json.decode(values.pop())
    assert doc["action"] == "rebaseline" and doc["key"] == "agent-1" and doc["feature"] is None
    assert doc["source"] == "file" and doc["id"]
    assert msgspec.json.decode(capsys.readouterr().out) == doc
    # and the worker accepts it
    parser = ControlParser(load_settings(environ={}, reference_file="ref.parquet"))
    assert isinstance(parser.parse(msgspec.json.encode(doc)), ControlCommand)


def test_cli_rejects_an_empty_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rebaseline", "--key", " "]) == 2
    assert "--key must not be empty" in capsys.readouterr().err


def test_a_control_flood_during_a_shift_cannot_silence_it() -> None:
    settings = load_settings(environ={}, alpha=1e-7, window_size=200, reference_size=400)
    h = Harness(settings)
    drift = DriftSpec("agent-1", LATENCY, "shift", 0.6, start_event=4000)
    messages = simulated_messages(14000, drift=drift, seed=5)
    events: list[DriftEvent] = []
    for i in range(0, len(messages), 50):  # one command every 50 events (0.2 s at 250/s)
        events += h.feed(messages[i : i + 50], batch=50)
        raw = msgspec.json.encode(build_command("agent-1", LATENCY, "window"))
        events += h.control.handle(RawMessage(b"agent-1", raw, 0, i)).drift_events
    stream = [e for e in events if (e.key, e.feature) == ("agent-1", LATENCY)]
    started = [e for e in stream if e.type == "drift_started"]
    closed = [e for e in stream if e.type == "drift_resolved"]
    refreshes = [e for e in stream if e.type == "reference_refreshed"]
    assert started, "the shift was never reported"
    # every reported episode ends visibly, by the re-baseline that silenced it
    assert len(closed) == len(started)
    assert all(e.reason == "rebaselined" and e.command_id for e in closed)
    for a, b in zip(started, closed, strict=True):
        assert a.observations <= b.observations
    # at most one refresh per window
    gaps = np.diff([e.observations for e in refreshes])
    assert len(refreshes) >= 2 and gaps.min() >= settings.window_size
    assert len({e.event_id for e in refreshes}) == len(refreshes)
    labels = {"reason": "rate_limited"}
    limited = h.registry.get_sample_value("driftwatch_rebaseline_skipped_total", labels)
    assert limited is not None and limited > len(messages) // 50 // 2  # most commands


def test_identical_commands_get_distinct_event_ids_and_apply_once_across_a_restore() -> None:
    settings = load_settings(environ={}, alpha=1e-7, window_size=50, reference_size=100)
    h = Harness(settings)
    messages = simulated_messages(2000, agents=2)
    h.feed(messages[:1000])
    first = h.monitor.rebaseline("agent-0", LATENCY, "window", command_id="a")
    h.feed(messages[1000:])
    second = h.monitor.rebaseline("agent-0", LATENCY, "window", command_id="b")
    ids = {e.event_id for e in first} | {e.event_id for e in second}
    assert len(ids) == len(first) + len(second) == 2
    # a monitor restored from the checkpointed state does not apply "b" again
    restored = DriftMonitor(settings, metrics=h.metrics)
    codec = CheckpointCodec()
    restored.restore(codec.decode(b"0/k/x", codec.encode(b"0/k/x", 1, h.monitor.snapshot()))[1])
    assert restored.keys["agent-0"].applied == ["a", "b"]
    assert restored.rebaseline("agent-0", LATENCY, "window", command_id="b") == []
    assert (
        h.registry.get_sample_value(
            "driftwatch_rebaseline_skipped_total", {"reason": "already_applied"}
        )
        == 1.0
    )


def test_fan_out_is_bounded_and_counted() -> None:
    h = Harness(load_settings(environ={}, alpha=1e-7, window_size=50, reference_size=100))
    h.feed(simulated_messages(2000, agents=4))
    events = h.monitor.rebaseline(None, None, "window", command_id="all", max_streams=3)
    assert len([e for e in events if e.type == "reference_refreshed"]) == 3
    streams = 4 * (len(DEFAULT_FEATURES) + 1)
    skipped = h.registry.get_sample_value(
        "driftwatch_rebaseline_skipped_total", {"reason": "fan_out"}
    )
    assert skipped == streams - 3


def test_signed_commands(tmp_path: Path) -> None:
    key_file = tmp_path / "control.key"
    key_file.write_text("a-control-signing-key-0123\n")
    settings = load_settings(
        environ={},
        alpha=1e-7,
        window_size=50,
        reference_size=100,
        control_signing_key_file=str(key_file),
    )
    h = Harness(settings)
    h.feed(simulated_messages(1000, agents=1))
    key = b"a-control-signing-key-0123"
    signed = build_command("agent-0", LATENCY, "window", signing_key=key)
    forged = {**signed, "feature": "token_count"}
    for doc, reason in (
        (build_command("agent-0", LATENCY, "window"), "unsigned"),
        (forged, "bad_signature"),
        (
            build_command("agent-0", LATENCY, "window", signing_key=b"another-key-456789"),
            "bad_signature",
        ),
    ):
        out = h.control.handle(RawMessage(b"k", msgspec.json.encode(doc), 0, 1))
        assert [d.reason for d in out.dead_letters] == [reason] and out.drift_events == []
    out = h.control.handle(RawMessage(b"k", msgspec.json.encode(signed), 0, 2))
    assert (
        out.dead_letters == [] and [e.type for e in out.drift_events][-1] == "reference_refreshed"
    )
