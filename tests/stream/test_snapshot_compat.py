"""Snapshot versions: a version 4 snapshot (rings written whole) reads back exactly in version 5.

The fixture ``data/snapshot-v4.bin`` holds two checkpoint records written by the version 4
writer (commit eebfd61) of the monitor fed :func:`stream_events` in batches of
:data:`BATCH`: the snapshot of every key after :data:`CUTS` events, ``"filling"`` (40 events:
every ring partly filled) and ``"full"`` (1,500 events: every ring full). It is a msgpack map
``{cut name: record value}`` and was made by this module run as a script from a checkout of
that commit (see ``data/README``)::

    cd <checkout of eebfd61> && PYTHONPATH=. python <this file> <out>/snapshot-v4.bin
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from detectors.registry import StateError
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.rings import RingError, ring_from_data, ring_to_data
from stream.monitoring.state import SNAPSHOT_VERSION, key_to_data
from stream.settings import Settings, load_settings
from stream.telemetry.records import DriftEvent, Telemetry
from stream.worker.checkpoints import CheckpointCodec

FIXTURE = Path(__file__).parent / "data" / "snapshot-v4.bin"
RECORD_KEY = b"0/k/all"
CODEC = CheckpointCodec()
EVENTS = 3_000
BATCH = 20
#: Where the snapshots are taken: every ring filling, every ring full.
CUTS = {"filling": 40, "full": 1_500}
KEYS = ("a", "b", "c")
LABELS = ("refund", "billing", "other")
REASONS = ("stop", "length", "tool_calls")


def settings() -> Settings:
    """Three numeric features (the third sparse), one categorical feature, a short window."""
    return load_settings(
        environ={},
        features=("latency", "tokens", "retries"),
        categorical_features=("finish",),
        window_size=100,
        reference_size=200,
        alpha=1e-4,
    )


def stream_events() -> list[Telemetry]:
    """A seeded stream of three keys: ``a`` drifts from event 800 (latency, errors), ``b``
    from event 2,000 (finish reasons); ``retries`` is missing from a third of the events, the
    labels from half of them, the finish reason from a fifth."""
    rng = np.random.default_rng(2024)
    out = []
    for i in range(EVENTS):
        key = KEYS[int(rng.integers(len(KEYS)))]
        shift = key == "a" and i >= 800
        moved = key == "b" and i >= 2_000
        retries = float(rng.poisson(1.0)) if rng.random() < 0.67 else math.nan
        values = (float(rng.lognormal(6.0 + (1.0 if shift else 0.0), 0.3)), float(rng.poisson(300)))
        truth = LABELS[int(rng.integers(3))]
        wrong = rng.random() < (0.5 if shift else 0.1)
        predicted = LABELS[(LABELS.index(truth) + 1) % 3] if wrong else truth
        labelled = rng.random() < 0.5
        p = [0.2, 0.6, 0.2] if moved else [0.8, 0.1, 0.1]
        reason = REASONS[int(rng.choice(3, p=p))] if rng.random() < 0.8 else None
        out.append(
            Telemetry(
                key,
                1_779_350_400.0 + i,
                (*values, retries),
                0,
                i,
                predicted if labelled else None,
                truth if labelled else None,
                (reason,),
            )
        )
    return out


def run(monitor: DriftMonitor, events: list[Telemetry]) -> list[DriftEvent]:
    """Feed ``events`` in batches of :data:`BATCH`; return the drift events."""
    out: list[DriftEvent] = []
    for lo in range(0, len(events), BATCH):
        out.extend(monitor.process(events[lo : lo + BATCH]))
    return out


def records() -> dict[str, bytes]:
    """The record of the whole monitor's snapshot at each cut, in this checkout's format."""
    events = stream_events()
    monitor = DriftMonitor(settings())
    out: dict[str, bytes] = {}
    done = 0
    for name, cut in sorted(CUTS.items(), key=lambda item: item[1]):
        run(monitor, events[done:cut])
        done = cut
        out[name] = CODEC.encode(RECORD_KEY, 1, monitor.snapshot())
    return out


def write_fixture(path: Path) -> None:
    """Write :data:`FIXTURE` (run it with the version 4 writer)."""
    if SNAPSHOT_VERSION != 4:
        raise SystemExit(f"this checkout writes snapshot version {SNAPSHOT_VERSION}, not 4")
    path.write_bytes(msgpack.packb(records()))


def plain(value: Any) -> Any:
    """``value`` with arrays as (dtype, values) and nan as a string, comparable with ``==``."""
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, plain(value.tolist()))
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def rings(monitor: DriftMonitor) -> dict[str, list[Any]]:
    """Every ring of every key, whole."""
    out: dict[str, list[Any]] = {}
    for key, st in monitor.keys.items():
        held: list[Any] = [st.offsets, *(fs.offsets for fs in st.features)]
        if st.accuracy is not None:
            held += [st.accuracy.wrong, st.accuracy.offsets]
        held += [cs.offsets for cs in st.categorical]
        out[key] = [plain(r) for r in held]
    return out


@pytest.fixture(scope="module")
def v4() -> dict[str, bytes]:
    loaded = msgpack.unpackb(FIXTURE.read_bytes())
    assert set(loaded) == set(CUTS)
    return loaded


@pytest.fixture(scope="module")
def live() -> dict[str, tuple[DriftMonitor, list[DriftEvent]]]:
    """Per cut: a monitor fed the events up to it, and the drift events after it."""
    events = stream_events()
    whole = DriftMonitor(settings())
    emitted: list[tuple[int, DriftEvent]] = []
    for lo in range(0, len(events), BATCH):
        emitted += [(lo, e) for e in whole.process(events[lo : lo + BATCH])]
    out = {}
    for name, cut in CUTS.items():
        monitor = DriftMonitor(settings())
        run(monitor, events[:cut])
        out[name] = (monitor, [e for lo, e in emitted if lo >= cut])
    return out


def restored(value: bytes) -> DriftMonitor:
    monitor = DriftMonitor(settings())
    claim, body = CODEC.decode(RECORD_KEY, value)
    assert claim == 1 and monitor.restore(body) == len(KEYS)
    return monitor


@pytest.mark.parametrize("cut", list(CUTS))
def test_a_v4_snapshot_restores_exactly_and_continues_alike(
    cut: str,
    v4: dict[str, bytes],
    live: dict[str, tuple[DriftMonitor, list[DriftEvent]]],
) -> None:
    assert CODEC.decode(RECORD_KEY, v4[cut])[1]["version"] == 4
    monitor, later = live[cut]
    old = restored(v4[cut])
    assert list(old.keys) == list(monitor.keys) and set(monitor.keys) == set(KEYS)
    for key, state in monitor.keys.items():
        assert plain(key_to_data(old.keys[key])) == plain(key_to_data(state))
    assert rings(old) == rings(monitor)
    events = stream_events()[CUTS[cut] :]
    assert later and any(e.type == "drift_started" for e in later)
    assert [e.to_dict() for e in run(old, events)] == [e.to_dict() for e in later]


@pytest.mark.parametrize("cut", list(CUTS))
def test_the_v5_record_restores_alike_and_is_not_larger(
    cut: str,
    v4: dict[str, bytes],
    live: dict[str, tuple[DriftMonitor, list[DriftEvent]]],
) -> None:
    monitor, later = live[cut]
    value = CODEC.encode(RECORD_KEY, 1, monitor.snapshot())
    assert CODEC.decode(RECORD_KEY, value)[1]["version"] == SNAPSHOT_VERSION == 5
    new, old = restored(value), restored(v4[cut])
    for key in KEYS:
        assert plain(key_to_data(new.keys[key])) == plain(key_to_data(old.keys[key]))
    assert rings(new) == rings(old)
    assert [e.to_dict() for e in run(new, stream_events()[CUTS[cut] :])] == [
        e.to_dict() for e in later
    ]
    assert len(value) <= len(v4[cut])
    if cut == "filling":
        assert len(value) < len(v4[cut])


def test_the_filling_rings_are_written_as_their_prefix(
    live: dict[str, tuple[DriftMonitor, list[DriftEvent]]],
) -> None:
    monitor, _ = live["filling"]
    own = 0
    for state in monitor.keys.values():
        data = key_to_data(state)
        assert 0 < state.seen < 100 and data["offsets"].shape == (state.seen,)
        acc = data["accuracy"]
        assert acc["wrong"].shape == acc["offsets"].shape == (acc["labelled"],)
        (cat,) = data["categorical"]
        assert cat["offsets"].shape == (cat["seen"],)
        sparse = data["features"][2]  # its own ring once an event lacked it
        if sparse["offsets"] is not None:
            own += 1
            assert 0 < sparse["seen"] < 100 and sparse["offsets"].shape == (sparse["seen"],)
    assert own


def test_rings_round_trip_whole_or_as_their_prefix() -> None:
    ring = np.full(5, -1, dtype=np.int64)
    assert ring_to_data(ring, 0, -1).shape == (0,)
    ring[:3] = [10, 11, 12]
    assert ring_to_data(ring, 3, -1).tolist() == [10, 11, 12]
    back = ring_from_data(ring_to_data(ring, 3, -1), np.int64, 5, 3, -1, "offsets")
    assert back.tolist() == ring.tolist() and back.flags.writeable
    whole = ring_from_data(ring.copy(), np.int64, 5, 3, -1, "offsets")  # versions 3 and 4
    assert whole.tolist() == ring.tolist()
    ring[:] = [15, 16, 12, 13, 14]  # full: written whole
    assert ring_to_data(ring, 7, -1).tolist() == ring.tolist()
    odd = np.array([1, 2, 3, 9, -1], dtype=np.int64)  # a slot past seen written: kept whole
    assert ring_to_data(odd, 3, -1).tolist() == odd.tolist()


@pytest.mark.parametrize(
    ("value", "seen", "message"),
    [
        (np.zeros(3, dtype=np.int32), 3, "must be a 1-d int64 array, got a 1-d int32 array"),
        (np.zeros((3, 1), dtype=np.int64), 3, "got a 2-d int64 array"),
        ([1, 2, 3], 3, "got list"),
        (np.zeros(2, dtype=np.int64), 3, "must hold 5 entries or its 3 filled ones, got 2"),
        (np.zeros(3, dtype=np.int64), 9, "must hold 5 entries or its 5 filled ones, got 3"),
    ],
)
def test_bad_rings_are_refused_naming_the_field(value: Any, seen: int, message: str) -> None:
    with pytest.raises(RingError, match=message) as info:
        ring_from_data(value, np.int64, 5, seen, -1, "key offsets")
    assert isinstance(info.value, StateError)
    assert info.value.name == "key offsets" and str(info.value).startswith("key offsets ")


def test_a_snapshot_with_a_short_ring_is_not_restored(
    live: dict[str, tuple[DriftMonitor, list[DriftEvent]]],
) -> None:
    monitor, _ = live["filling"]
    snap = monitor.snapshot()
    state = snap["keys"][0][1]
    state["accuracy"]["wrong"] = state["accuracy"]["wrong"][:-1]
    with pytest.raises(StateError, match="accuracy ring must hold 100 entries"):
        DriftMonitor(settings()).restore(snap)


if __name__ == "__main__":
    write_fixture(Path(sys.argv[1]))
