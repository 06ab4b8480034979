from __future__ import annotations

from pathlib import Path

import msgspec
import numpy as np
import pytest
from scipy import stats

from stream import cli
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.processor import BatchProcessor, RawMessage
from stream.monitoring.streams import TransitionSnapshot
from stream.settings import load_settings
from stream.telemetry.records import TelemetryParser
from stream.tools.simulation import DriftSpec, TelemetrySimulator
from tests.support.pipeline import START_MS, simulated_messages

PNG = b"\x89PNG\r\n\x1a\n"
STRICT = ["--alpha", "1e-7", "--window-size", "300", "--reference-size", "600"]


def telemetry_file(path: Path, messages: list[RawMessage]) -> Path:
    path.write_bytes(b"".join((m.value or b"") + b"\n" for m in messages))
    return path


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


def test_replay_plots_every_drift_start(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = TelemetrySimulator(4, seed=1)
    # agent-1's latency shifts, then (once that is over) agent-3's accuracy drops
    sim.drift = DriftSpec("agent-1", "response_latency_ms", "shift", 0.5, start_event=6000)
    docs = list(sim.events(12000, start_ms=START_MS, step_ms=10))
    sim.drift = DriftSpec("agent-3", "accuracy", "accuracy", 0.3, start_event=12000)
    docs += list(sim.events(8000, start_ms=START_MS + 120_000, step_ms=10))
    source = tmp_path / "telemetry.jsonl"
    source.write_bytes(b"".join(msgspec.json.encode(d) + b"\n" for d in docs))
    plots = tmp_path / "plots" / "nested"
    code = cli.main(["replay", str(source), *STRICT, "--plot-dir", str(plots)])
    out = capsys.readouterr()
    assert code == 1
    events = [msgspec.json.decode(line) for line in out.out.splitlines()]
    started = [(e["key"], e["feature"]) for e in events if e["type"] == "drift_started"]
    assert ("agent-1", "response_latency_ms") in started and ("agent-3", "accuracy") in started
    names = sorted(p.name for p in plots.iterdir())
    assert len(names) == len(started)
    assert "agent-1-response_latency_ms-1.png" in names and "agent-3-accuracy-1.png" in names
    for name in names:
        data = (plots / name).read_bytes()
        assert data[:8] == PNG and len(data) > 10_000
    assert f"{len(names)} plot(s)" in out.err


def test_replay_without_drift_exits_0_and_plots_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = telemetry_file(tmp_path / "t.jsonl", simulated_messages(4000, seed=4))
    plots = tmp_path / "plots"
    assert cli.main(["replay", str(source), *STRICT, "--plot-dir", str(plots), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    assert list(plots.iterdir()) == []


def test_replay_reports_an_unwritable_plot_dir(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = telemetry_file(tmp_path / "t.jsonl", simulated_messages(10))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["replay", str(source), "--plot-dir", str(blocker / "sub"), "--quiet"]) == 2
    assert "cannot create --plot-dir" in capsys.readouterr().err


@pytest.mark.parametrize("batch", [1, 777, 5000])
def test_snapshots_are_taken_at_the_transition(batch: int) -> None:
    settings = load_settings(environ={}, alpha=1e-3, window_size=200, reference_size=400)
    snapshots: list[TransitionSnapshot] = []
    monitor = DriftMonitor(settings, on_transition=snapshots.append)
    processor = BatchProcessor(TelemetryParser(settings), monitor, _metrics(), "t")
    drift = DriftSpec("agent-0", "token_count", "shift", 0.1, start_event=4000)
    messages = simulated_messages(10000, drift=drift, seed=9)
    events = []
    for i in range(0, len(messages), batch):
        events.extend(processor.handle(messages[i : i + batch]).drift_events)
    assert events and [s.event for s in snapshots] == events
    for s in snapshots:
        e = s.event
        assert s.window.size == e.window_size and s.reference.size == e.reference_size
        expected = stats.ks_2samp(s.reference, s.window)
        assert e.statistic == pytest.approx(expected.statistic, abs=1e-12)
        assert e.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        if e.kind == "performance":
            assert e.rolling_accuracy == pytest.approx(1 - s.window.mean(), abs=1e-12)
    # the window is the stream's values up to the event that caused the transition
    parser = TelemetryParser(settings)
    first = next(s for s in snapshots if s.event.kind == "distribution")
    j = settings.features.index(first.event.feature)
    upto = [
        p.values[j]
        for m in messages
        if (p := parser.parse(m.value, offset=m.offset)).key == first.event.key  # type: ignore[union-attr]
        and m.offset <= first.event.window_last_offset
    ]
    assert np.array_equal(first.window, np.array(upto[-first.window.size :]))


def _metrics() -> object:
    from prometheus_client import CollectorRegistry

    from stream.metrics import Metrics

    return Metrics(CollectorRegistry())
