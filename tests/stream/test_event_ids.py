"""Event ids: unique per deployment (``app_id``) and input, stable across replays."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import pytest

from stream import cli
from stream.telemetry.records import file_identity
from stream.tools.simulation import DriftSpec, TelemetrySimulator
from tests.support.pipeline import START_MS

STRICT = ["--alpha", "1e-7", "--window-size", "300", "--reference-size", "600", "--quiet"]


@pytest.fixture(autouse=True)
def _no_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("DRIFTWATCH_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def drifting(tmp_path_factory: pytest.TempPathFactory) -> Path:
    sim = TelemetrySimulator(3, seed=4)
    sim.drift = DriftSpec("agent-1", "response_latency_ms", "shift", 0.5, start_event=3000)
    path = tmp_path_factory.mktemp("ids") / "telemetry.jsonl"
    docs = sim.events(6000, start_ms=START_MS, step_ms=10)
    path.write_bytes(b"".join(msgspec.json.encode(d) + b"\n" for d in docs))
    return path


def _replay(
    path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, app_id: str
) -> list[dict[str, object]]:
    monkeypatch.setenv("DRIFTWATCH_APP_ID", app_id)
    assert cli.main(["replay", str(path), *STRICT]) == 1
    return [msgspec.json.decode(line) for line in capsys.readouterr().out.splitlines()]


def test_file_identity_is_the_sha256_of_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    data = b'{"a": 1}\n' * 300_000  # several read chunks
    path.write_bytes(data)
    assert file_identity(path) == "sha256:" + hashlib.sha256(data).hexdigest()


def test_the_same_deployment_and_file_give_the_same_ids_again(
    drifting: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    first = _replay(drifting, capsys, monkeypatch, "fleet-a")
    again = _replay(drifting, capsys, monkeypatch, "fleet-a")
    assert first and [e["event_id"] for e in first] == [e["event_id"] for e in again]
    assert len({e["event_id"] for e in first}) == len(first)
    identity = "sha256:" + hashlib.sha256(drifting.read_bytes()).hexdigest()
    assert all(e["source"]["input"] == identity for e in first)  # type: ignore[index]
    assert all(e["app_id"] == "fleet-a" for e in first)


def test_two_deployments_give_disjoint_ids(
    drifting: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _replay(drifting, capsys, monkeypatch, "fleet-a")
    b = _replay(drifting, capsys, monkeypatch, "fleet-b")
    # the same events otherwise: same keys, features, types and offsets
    strip = [{k: v for k, v in e.items() if k not in ("event_id", "app_id")} for e in a]
    assert strip == [{k: v for k, v in e.items() if k not in ("event_id", "app_id")} for e in b]
    assert not {e["event_id"] for e in a} & {e["event_id"] for e in b}


def test_another_input_gives_disjoint_ids(
    drifting: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the same telemetry with a trailing blank line: the same events at the same offsets,
    # but other bytes, so another input
    other = tmp_path / "copy.jsonl"
    other.write_bytes(drifting.read_bytes() + b"\n")
    a = _replay(drifting, capsys, monkeypatch, "fleet-a")
    b = _replay(other, capsys, monkeypatch, "fleet-a")
    assert [(e["type"], e["key"], e["source"]["window_last_offset"]) for e in a] == [  # type: ignore[index]
        (e["type"], e["key"], e["source"]["window_last_offset"])
        for e in b  # type: ignore[index]
    ]
    assert not {e["event_id"] for e in a} & {e["event_id"] for e in b}
