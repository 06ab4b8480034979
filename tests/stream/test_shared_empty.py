"""A warmed-up key holds no empty list of its own: its streams' warm-up values, its applied
commands and (without categorical features) its categorical streams are shared empty lists,
also after a restore from its state data and after a rollback. The oracle: the key's state data,
which must come back unchanged, and the detection of a monitor fed the same events."""

from __future__ import annotations

import numpy as np

from stream.monitoring.categorical import NO_STREAMS
from stream.monitoring.keys import NO_IDS, KeyState
from stream.monitoring.monitor import DriftMonitor
from stream.monitoring.rollback import restore_key, save_key
from stream.monitoring.state import key_to_data
from stream.monitoring.streams import NO_VALUES
from stream.settings import Settings, load_settings
from stream.telemetry.records import Telemetry
from tests.support.plain import same_plain


def _settings() -> Settings:
    return load_settings(
        environ={}, features=("tokens", "latency"), window_size=30, reference_size=60, alpha=1e-4
    )


def _events(n: int, start: int = 0) -> list[Telemetry]:
    rng = np.random.default_rng([7, start])
    out = []
    for i in range(start, start + n):
        late = i >= 300  # the tokens rise
        wrong = rng.random() < 0.1
        out.append(
            Telemetry(
                "a",
                1_700_000_000.0 + i,
                (float(rng.normal(2.0 if late else 0.0)), float(rng.normal())),
                0,
                i,
                "billing" if wrong else "refund",
                "refund",
            )
        )
    return out


def _shares_its_empty_lists(state: KeyState) -> bool:
    return (
        all(fs.warmup is NO_VALUES for fs in state.streams())
        and state.applied is NO_IDS
        and state.categorical is NO_STREAMS
    )


def test_a_warmed_up_key_shares_its_empty_lists_and_still_detects() -> None:
    monitor = DriftMonitor(_settings())
    monitor.process(_events(40))
    state = monitor.keys["a"]
    assert len(state.features[0].warmup) == 40 and state.features[0].warmup is not NO_VALUES
    assert state.applied is NO_IDS and state.categorical is NO_STREAMS
    monitor.process(_events(100, 40))
    assert _shares_its_empty_lists(state)
    assert state.accuracy is not None and state.accuracy.detector is not None
    events = monitor.process(_events(200, 140))
    assert NO_VALUES == [] and NO_IDS == [] and NO_STREAMS == []
    assert any(e.feature == "tokens" for e in events)  # the rise is detected


def test_the_shared_lists_survive_a_restore_and_a_rollback() -> None:
    monitor = DriftMonitor(_settings())
    monitor.process(_events(200))
    state = monitor.keys["a"]
    data = key_to_data(state)
    restored = monitor._codec.key_from_data(data)
    assert _shares_its_empty_lists(restored) and same_plain(key_to_data(restored), data)
    saved = save_key(state)
    back = restore_key(saved, monitor._categorical, state)
    assert _shares_its_empty_lists(back) and same_plain(key_to_data(back), data)


def test_a_stream_still_warming_up_keeps_a_list_of_its_own() -> None:
    monitor = DriftMonitor(_settings())
    monitor.process(_events(20))
    state = monitor.keys["a"]
    data = key_to_data(state)
    restored = monitor._codec.key_from_data(data)
    for fs in (*restored.features, restored.accuracy):
        assert fs is not None and fs.warmup is not NO_VALUES and len(fs.warmup) == 20
    restored.features[0].warmup.append(0.5)  # its own list: it can grow
    assert NO_VALUES == [] and len(state.features[0].warmup) == 20
