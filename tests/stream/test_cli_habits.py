"""Command-line habits: unpaced files with the drift placed by index, clear errors with exit 2,
``--version``, connection timeouts against a listener that does not speak Kafka, progress."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from stream import cli
from stream.tools.progress import Progress
from stream.tools.simulation import DriftSpec, TelemetrySimulator
from tests.support.listener import GARBAGE, listener

START_MS = 1_764_547_200_000


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


# ----------------------------------------------------------------- simulate --output
def test_output_file_is_written_unpaced(tmp_path: Path) -> None:
    out = tmp_path / "x.jsonl"
    started = time.monotonic()
    # paced at 200 events/s this would take 100 s
    code = cli.main(["simulate", "--output", str(out), "--count", "20000", "--quiet"])
    assert code == 0
    assert time.monotonic() - started < 30
    lines = out.read_bytes().splitlines()
    assert len(lines) == 20_000
    # timestamps still follow --rate (200/s: 5 ms apart)
    ts = [msgspec.json.decode(line)["ts"] for line in lines[:3]]
    assert ts[1] - ts[0] == 5 and ts[2] - ts[1] == 5


def _expected(count: int, start_event: int) -> list[dict[str, object]]:
    sim = TelemetrySimulator(3, seed=4)
    sim.drift = DriftSpec("agent-1", "response_latency_ms", "shift", 0.5, start_event=start_event)
    return list(sim.events(count, start_ms=START_MS, step_ms=1000.0 / 50))


@pytest.mark.parametrize(
    "placement", [["--drift-at", "20"], ["--drift-at-event", "1000"]], ids=["seconds", "index"]
)
def test_drift_is_placed_by_event_index(tmp_path: Path, placement: list[str]) -> None:
    out = tmp_path / "x.jsonl"
    args = ["simulate", "--output", str(out), "--count", "2000", "--rate", "50", "--agents"]
    args += ["3", "--seed", "4", "--start-ms", str(START_MS), "--drift-agent", "agent-1"]
    args += ["--drift-magnitude", "0.5", "--quiet", *placement]
    assert cli.main(args) == 0
    got = [msgspec.json.decode(line) for line in out.read_bytes().splitlines()]
    # 20 s at 50 events/s is event 1000, the same as --drift-at-event 1000 ...
    assert got == _expected(2000, 1000)
    # ... and not one drifted event later: the first agent-1 event from 1000 on is drifted
    first = next(i for i in range(1000, 2000) if got[i]["agent_id"] == "agent-1")
    assert got != _expected(2000, first + 1)
    assert got[:first] == _expected(2000, 2000)[:first]


def test_drift_in_seconds_with_rate_zero_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "x.jsonl"
    args = ["simulate", "--output", str(out), "--count", "10", "--rate", "0"]
    assert cli.main([*args, "--drift-agent", "agent-1", "--drift-at", "5"]) == 2
    err = capsys.readouterr().err
    assert "--rate 0" in err and "--drift-at-event" in err and "Traceback" not in err
    genai = ["--format", "otlp_json", "--genai-drift", "output_tokens"]
    assert cli.main([*args, *genai]) == 2
    # without a drift, or with an index, --rate 0 is fine
    assert cli.main(args) == 0
    assert cli.main([*args, *genai, "--drift-at-event", "3"]) == 0


def test_output_into_a_missing_directory_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing" / "dir" / "x.jsonl"
    assert cli.main(["simulate", "--output", str(missing), "--count", "5"]) == 2
    err = capsys.readouterr().err
    assert "cannot write --output" in err and str(missing) in err
    assert "Traceback" not in err


# ----------------------------------------------------------------- --version and help
def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib import metadata

    with pytest.raises(SystemExit) as exc:
        cli.main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"driftwatch {metadata.version('driftwatch')}"


def test_replay_help_lists_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["replay", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "Exit codes:" in out and "2 usage or input error" in out


# ----------------------------------------------------------------- connection timeouts
@pytest.fixture(params=["silent", "garbage"])
def not_kafka(request: pytest.FixtureRequest) -> Iterator[str]:
    """A TCP listener on 127.0.0.1 that accepts and then says nothing (or sends garbage)."""
    with listener(GARBAGE if request.param == "garbage" else None) as address:
        yield address


def _timed(argv: list[str]) -> tuple[int, float]:
    started = time.monotonic()
    code = cli.main(argv)
    return code, time.monotonic() - started


def test_tail_timeout_bounds_connecting(not_kafka: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, took = _timed(["tail", "--bootstrap-servers", not_kafka, "--timeout", "3"])
    assert code == 2
    assert took < 3 + 2
    err = capsys.readouterr().err
    assert f"cannot reach Kafka at {not_kafka}" in err and "Traceback" not in err


def test_simulate_timeout_bounds_connecting(
    not_kafka: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["simulate", "--bootstrap-servers", not_kafka, "--timeout", "3", "--count", "5"]
    code, took = _timed(argv)
    assert code == 2
    assert took < 3 + 2
    assert f"cannot reach Kafka at {not_kafka}" in capsys.readouterr().err


def test_simulate_default_timeout_is_bounded(
    not_kafka: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, took = _timed(["simulate", "--bootstrap-servers", not_kafka, "--count", "5"])
    assert code == 2 and took < 10 + 2


def test_rebaseline_timeout_bounds_connecting(
    not_kafka: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["rebaseline", "--bootstrap-servers", not_kafka, "--timeout", "3", "--key", "a"]
    code, took = _timed(argv)
    assert code == 2
    assert took < 3 + 3
    out = capsys.readouterr()
    assert not out.out  # nothing claims the command was sent
    assert f"cannot reach Kafka at {not_kafka}" in out.err and "Traceback" not in out.err


def test_non_positive_timeouts_are_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["tail", "--timeout", "0"]) == 2
    assert cli.main(["simulate", "--timeout", "-1", "--count", "1"]) == 2
    assert cli.main(["rebaseline", "--timeout", "0"]) == 2
    assert "--timeout must be > 0" in capsys.readouterr().err


# ----------------------------------------------------------------- progress
class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_bar_on_a_tty_and_lines_otherwise() -> None:
    tty = _Tty()
    bar = Progress("replay", total=100, unit="bytes", stream=tty, interval=0)
    bar.update(50)
    bar.status("calibrating detectors")
    bar.close(100)
    text = tty.getvalue()
    assert "\r" in text and "[############............] 50/100 bytes (50%" in text
    assert "calibrating detectors" in text
    last = text.rsplit("\r\x1b[2K", 1)[1]
    assert last.startswith("replay: [########################] 100/100 bytes (100%")
    assert last.endswith("\n")
    plain = io.StringIO()
    lines = Progress("simulate", unit="events", stream=plain, interval=0)
    lines.update(7, "agent-1.token_count drifting")
    lines.close(7)
    assert "\r" not in plain.getvalue()
    assert plain.getvalue().startswith("simulate: 7 events (")
    assert plain.getvalue().endswith("; agent-1.token_count drifting\n")


def test_progress_lines_are_throttled() -> None:
    plain = io.StringIO()
    p = Progress("simulate", stream=plain, interval=60)
    for i in range(1000):
        p.update(i)
    assert plain.getvalue() == ""  # a run shorter than one interval stays silent
    p.update(1000, force=True)
    assert plain.getvalue().startswith("simulate: 1000 events (")
    quiet = io.StringIO()
    q = Progress("simulate", stream=quiet, quiet=True, interval=0)
    q.update(1)
    q.status("x")
    q.close(1)
    assert quiet.getvalue() == ""


def test_simulate_reports_progress_on_stderr_not_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import stream.tools.progress as progress

    real = progress.Progress

    def eager(*args: object, **kwargs: object) -> progress.Progress:
        kwargs["interval"] = 0
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("stream.tools.simulate.Progress", eager)
    out = tmp_path / "x.jsonl"
    assert cli.main(["simulate", "--output", str(out), "--count", "1000"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "simulate: 512/1000 events (51%" in captured.err


def test_compare_reports_progress_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import stream.tools.progress as progress

    real = progress.Progress

    def eager(*args: object, **kwargs: object) -> progress.Progress:
        kwargs["interval"] = 0
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("stream.tools.compare.Progress", eager)
    ref, prod = tmp_path / "ref.jsonl", tmp_path / "prod.jsonl"
    for path, seed in ((ref, "1"), (prod, "2")):
        argv = ["simulate", "--output", str(path), "--count", "500", "--seed", seed, "--quiet"]
        assert cli.main(argv) == 0
    capsys.readouterr()
    code = cli.main(["compare", str(ref), str(prod), "--format", "json"])
    captured = capsys.readouterr()
    assert code in (0, 1)
    msgspec.json.decode(captured.out)  # stdout holds the report only
    assert f"compare: reading {ref}" in captured.err
    assert "compare: 0/4 features (0%" in captured.err and "; testing " in captured.err
