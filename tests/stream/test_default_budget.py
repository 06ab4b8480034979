"""At default settings, a day of telemetry from three agents stays within the worker's budget.

The file comes from the project's simulator (3 agents, 60,000 events whose timestamps span
24 hours, one agent's latency shifted by +30 % from event 40,000 on) and goes through
``driftwatch replay`` in-process, with no setting given: the worker budget of
``DEFAULT_FALSE_ALARMS_PER_DAY`` false alarms a day, each stream's ERT derived from its rate
measured over its warm-up from the event timestamps (about 600,000 here: 15 streams at 0.23
events/s).

The budget is an average: a day-long file at 0.5 false alarms a day raises a Poisson-like count
of false starts with mean about 0.48 (the streams test for about 95 % of the day), so at most
one on about nine days in ten. Measured with bench/default_budget.py on the same kind of file:
seeds 1-6 gave 0, 0, 2, 0, 0, 0 false starts (3, 1, 3, 3, 2, 3 at a budget of 2). "At most one
other start" is a property of most days, not of every day; the test fails if the budget, the
rate measurement or the calibration drift.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import msgspec
import pytest

from detectors.budget import DEFAULT_FALSE_ALARMS_PER_DAY
from stream import cli
from tests.support.pipeline import START_MS

EVENTS = 60_000
DAY_S = 86_400
RATE = EVENTS / DAY_S  # events/s across the three agents
DRIFT_AT = 40_000  # index of the first drifted event (0-based; replay offsets are line numbers)
DRIFTED = ("agent-1", "response_latency_ms")


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


def _simulate(path: Path, seed: int) -> None:
    args = ["simulate", "--output", str(path), "--count", str(EVENTS), "--agents", "3"]
    args += ["--rate", repr(RATE), "--start-ms", str(START_MS), "--seed", str(seed)]
    args += ["--drift-agent", DRIFTED[0], "--drift-feature", DRIFTED[1]]
    args += ["--drift-kind", "shift", "--drift-magnitude", "0.3"]
    args += ["--drift-at-event", str(DRIFT_AT), "--quiet"]
    assert cli.main(args) == 0


# about 30-60 CPU seconds, nearly all calibration (15 streams at ERT about 600,000): room for a
# shared CI machine
@pytest.mark.timeout(900)
def test_a_day_at_defaults_finds_the_drift_and_raises_at_most_one_other_start(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "day.jsonl"
    _simulate(source, seed=7)
    lines = source.read_bytes().splitlines()
    assert len(lines) == EVENTS
    first, last = msgspec.json.decode(lines[0])["ts"], msgspec.json.decode(lines[-1])["ts"]
    assert (last - first) / 1000 == pytest.approx(DAY_S, rel=1e-3)
    capsys.readouterr()

    started, cpu = time.perf_counter(), time.process_time()
    code = cli.main(["replay", str(source), "--quiet"])
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    out = capsys.readouterr().out
    events = [msgspec.json.decode(line) for line in out.splitlines()]
    starts = [e for e in events if e["type"] == "drift_started"]
    found = [e for e in starts if (e["key"], e["feature"]) == DRIFTED]
    others = [e for e in starts if (e["key"], e["feature"]) != DRIFTED]
    print(f"replay of {EVENTS} events: {seconds:.1f} s ({cpu:.1f} CPU s), {len(starts)} starts")
    assert code == 1
    # the drift is found, after it begins: the alarming window ends on a drifted event
    assert found, starts
    assert found[0]["source"]["window_last_offset"] > DRIFT_AT
    # every other start is a false alarm; the budget allows one every two days
    assert DEFAULT_FALSE_ALARMS_PER_DAY == 0.5
    assert len(others) <= 1, others
