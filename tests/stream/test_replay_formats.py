"""``driftwatch replay``: ``--format json|otlp_json``, rejected and skipped counts by reason,
exit 2 when nothing valid was read, progress while the detectors calibrate."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest

from stream import cli
from stream.monitoring.processor import BatchOutcome, BatchProcessor, RawMessage

GENAI = ["--services", "billing-agent", "--models", "gpt-4o-mini,claude-sonnet-4"]


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


def test_a_file_with_nothing_valid_exits_2_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{not json\n["array"]\n{"response_latency_ms": 5}\n\n{also not json\n')
    assert cli.main(["replay", str(bad)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "4 lines, 0 valid events" in captured.err
    # sparse rules: a line without the key is skipped and counted, not rejected
    assert "rejected 3 (invalid_json 2, not_an_object 1); skipped 1 (missing_key 1)" in captured.err
    assert "no valid event in" in captured.err


def test_rejected_lines_are_counted_next_to_valid_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.jsonl"
    assert cli.main(["simulate", "--output", str(path), "--count", "300", "--quiet"]) == 0
    path.write_bytes(path.read_bytes() + b"{oops\n")
    capsys.readouterr()
    assert cli.main(["replay", str(path)]) == 0
    err = capsys.readouterr().err
    assert "301 lines, 300 valid events, 0 drift events; rejected 1 (invalid_json 1)" in err


def _spans(tmp_path: Path, *drift: str) -> Path:
    spans = tmp_path / "spans.jsonl"
    argv = ["simulate", "--format", "otlp_json", "--output", str(spans), "--count", "8000"]
    argv += ["--rate", "0", "--seed", "3", "--start-ms", "1764547200000", "--quiet"]
    assert cli.main([*argv, *GENAI, *drift]) == 0
    return spans


@pytest.fixture
def genai_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_KEY_FIELDS", "service.name,gen_ai.request.model")
    monkeypatch.setenv(
        "DRIFTWATCH_FEATURES", "gen_ai.usage.output_tokens,gen_ai.usage.input_tokens"
    )


@pytest.mark.usefixtures("genai_settings")
def test_replay_of_otlp_json_finds_the_injected_drift(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    drift = ["--genai-drift", "output_tokens", "--drift-service", "billing-agent"]
    drift += ["--drift-model", "gpt-4o-mini", "--drift-magnitude", "0.3"]
    spans = _spans(tmp_path, *drift, "--drift-at-event", "4000")
    path = tmp_path / "with-bad.jsonl"
    path.write_bytes(spans.read_bytes() + b'{"resourceSpans": 1}\n')
    capsys.readouterr()
    assert cli.main(["replay", str(path), "--format", "otlp_json"]) == 1
    captured = capsys.readouterr()
    out = [msgspec.json.decode(line) for line in captured.out.splitlines()]
    started = [(e["key"], e["feature"]) for e in out if e["type"] == "drift_started"]
    assert started == [("billing-agent/gpt-4o-mini", "gen_ai.usage.output_tokens")]
    # the generator's tool spans are filtered out by the GenAI span filter, and counted
    assert "rejected 1 (invalid_otlp 1)" in captured.err
    assert "skipped " in captured.err and "(filtered " in captured.err
    # the same file read as flat json is rejected whole: nothing valid, exit 2
    assert cli.main(["replay", str(spans), "--quiet"]) == 2


@pytest.mark.usefixtures("genai_settings")
def test_otlp_json_with_every_span_skipped_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spans = _spans(tmp_path)
    capsys.readouterr()
    argv = ["replay", str(spans), "--format", "otlp_json"]
    assert cli.main([*argv, "--span-filter", "gen_ai.operation.name=nothing"]) == 2
    err = capsys.readouterr().err
    assert "0 valid events" in err and "skipped 8000 (filtered 8000)" in err


def test_replay_says_it_is_waiting_for_calibrations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import stream.tools.progress as progress

    real_handle = BatchProcessor.handle
    real_progress = progress.Progress

    def slow(self: BatchProcessor, batch: list[RawMessage]) -> BatchOutcome:
        time.sleep(1.5)
        return real_handle(self, batch)

    def eager(*args: object, **kwargs: object) -> progress.Progress:
        kwargs["interval"] = 0
        return real_progress(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(BatchProcessor, "handle", slow)
    monkeypatch.setattr("stream.tools.replay.calibrations_pending", lambda: 3)
    monkeypatch.setattr("stream.tools.replay.Progress", eager)
    path = tmp_path / "t.jsonl"
    assert cli.main(["simulate", "--output", str(path), "--count", "200", "--quiet"]) == 0
    capsys.readouterr()
    assert cli.main(["replay", str(path)]) == 0
    captured = capsys.readouterr()
    assert "replay: calibrating detectors (3 more queued)" in captured.err
    assert captured.out == ""
