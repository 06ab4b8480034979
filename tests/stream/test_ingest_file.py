"""OTLP/JSON spans -> ``driftwatch ingest --input`` -> ``driftwatch replay`` at defaults."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from stream.cli import main

STREAMS = ["--services", "billing-agent", "--models", "gpt-4o-mini,claude-sonnet-4"]


def spans_to_events(tmp_path: Path, *drift: str) -> Path:
    spans, events = tmp_path / "spans.jsonl", tmp_path / "events.jsonl"
    assert (
        main(
            [
                "simulate",
                "--format",
                "otlp_json",
                "--output",
                str(spans),
                "--count",
                "8000",
                "--rate",
                "0",
                "--seed",
                "3",
                "--start-ms",
                "1764547200000",
                *STREAMS,
                *drift,
            ]
        )
        == 0
    )
    assert (
        main(["ingest", "--input", str(spans), "--format", "otlp_json", "--output", str(events)])
        == 0
    )
    return events


@pytest.fixture
def genai_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTWATCH_KEY_FIELDS", "service.name,gen_ai.request.model")
    monkeypatch.setenv(
        "DRIFTWATCH_FEATURES", "gen_ai.usage.output_tokens,gen_ai.usage.input_tokens"
    )


@pytest.mark.usefixtures("genai_settings")
def test_replay_finds_an_injected_token_drift_on_its_stream_only(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    drift = [
        "--genai-drift",
        "output_tokens",
        "--drift-service",
        "billing-agent",
        "--drift-model",
        "gpt-4o-mini",
        "--drift-magnitude",
        "0.3",
        "--drift-at-event",
        "4000",
    ]
    events = spans_to_events(tmp_path, *drift)
    err = capsys.readouterr().err
    assert "8000 spans -> " in err and "skipped: filtered" in err
    assert main(["replay", str(events), "--quiet"]) == 1
    out = [msgspec.json.decode(line) for line in capsys.readouterr().out.splitlines()]
    started = [(e["key"], e["feature"]) for e in out if e["type"] == "drift_started"]
    assert started == [("billing-agent/gpt-4o-mini", "gen_ai.usage.output_tokens")]


@pytest.mark.usefixtures("genai_settings")
def test_replay_of_a_null_stream_does_not_flood(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    events = spans_to_events(tmp_path)
    capsys.readouterr()
    main(["replay", str(events), "--quiet"])
    out = [msgspec.json.decode(line) for line in capsys.readouterr().out.splitlines()]
    # 2 streams x 2 features x ~1,600 tested observations at the default ERT of 10,000: about
    # 0.6 false episodes are expected (this seed has one)
    assert sum(e["type"] == "drift_started" for e in out) <= 1


def test_ingest_file_exits_2_when_nothing_valid(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"resourceSpans": 1}\n{not json\n\n')
    assert (
        main(
            [
                "ingest",
                "--input",
                str(bad),
                "--format",
                "otlp_json",
                "--output",
                str(tmp_path / "out.jsonl"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "line 1: invalid_otlp" in err and "line 2: invalid_json" in err
    assert main(["ingest", "--input", str(bad)]) == 2  # otlp_proto is not line-based


def test_categorical_detector_finds_a_finish_reason_shift_in_ingested_events(
    tmp_path: Path,
) -> None:
    from detectors.categorical import CategoricalDetector

    drift = [
        "--genai-drift",
        "finish_reasons",
        "--drift-service",
        "billing-agent",
        "--drift-model",
        "claude-sonnet-4",
        "--drift-magnitude",
        "0.25",
        "--drift-at-event",
        "4000",
    ]
    events = [
        msgspec.json.decode(line)
        for line in spans_to_events(tmp_path, *drift).read_bytes().splitlines()
    ]
    by_stream: dict[str, list[object]] = {}
    for e in events:
        by_stream.setdefault(f"{e['service.name']}/{e['gen_ai.request.model']}", []).append(
            e["gen_ai.response.finish_reasons"]
        )
    found = {}
    for key, values in by_stream.items():
        det = CategoricalDetector(values[:1000], 200, ert=10_000)
        det.update_many(values[1000:])
        found[key] = [t.largest_change for t in det.transitions if t.kind == "drift_started"]
    assert found["billing-agent/gpt-4o-mini"] == []
    (change,) = found["billing-agent/claude-sonnet-4"]
    assert change is not None and change.category == "length"
    assert change.window_share > 2 * change.reference_share
