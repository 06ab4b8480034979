"""Categorical streams in the monitor: chi2 events with largest_change, checkpoints, re-baseline,
metrics. The oracle: the same CategoricalDetector fed the key's values directly, and
scipy.stats.chi2_contingency for the statistic."""

from __future__ import annotations

import math

import numpy as np
from prometheus_client import CollectorRegistry
from scipy import stats

from detectors.categorical import CategoricalDetector, category_of
from stream.metrics import Metrics
from stream.monitoring.monitor import DriftMonitor
from stream.settings import Settings, load_settings
from stream.telemetry.records import ControlParser, DriftEvent, Invalid, Telemetry

REASONS = (["stop"], ["length"], ["tool_calls"], ["stop", "length"])
FINISH = "finish_reasons"


def _settings(**extra: object) -> Settings:
    return load_settings(
        environ={},
        features=("tokens",),
        categorical_features=(FINISH,),
        window_size=100,
        reference_size=300,
        alpha=1e-4,
        **extra,
    )


def _events(n: int = 1500, seed: int = 2) -> list[Telemetry]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        p = [0.8, 0.05, 0.1, 0.05] if i < 1000 else [0.5, 0.35, 0.1, 0.05]
        reason = REASONS[int(rng.choice(4, p=p))] if rng.random() < 0.8 else None
        out.append(
            Telemetry(
                "svc/m",
                1_700_000_000.0 + i,
                (float(rng.normal()),),
                0,
                10 + i,
                None,
                None,
                (reason,),
            )
        )
    return out


def _run(monitor: DriftMonitor, evs: list[Telemetry], batch: int = 64) -> list[DriftEvent]:
    out: list[DriftEvent] = []
    for lo in range(0, len(evs), batch):
        out.extend(monitor.process(evs[lo : lo + batch]))
    return out


def test_chi2_events_match_the_detector_fed_directly_and_name_the_moved_category() -> None:
    evs = _events()
    events = [e for e in _run(DriftMonitor(_settings()), evs) if e.feature == FINISH]
    present = [e for e in evs if e.categories[0] is not None]
    values = [e.categories[0] for e in present]
    det = CategoricalDetector(values[:300], 100, alpha=1e-4)
    oracle = []
    for i, v in enumerate(values[300:]):
        det.update(v)
        for t in det.transitions:
            oracle.append((t.kind, present[300 + i].offset, t.statistic, t.index))
    assert [(e.type, e.window_last_offset, e.statistic, e.observations) for e in events] == oracle
    started = [e for e in events if e.type == "drift_started"]
    assert started and all(e.detector == "chi2" for e in events)
    first = started[0]
    assert first.window_last_offset >= 10 + 1000  # after the shift begins
    # the window's first offset: the 100th-latest event that has the feature
    at = next(i for i, e in enumerate(present) if e.offset == first.window_last_offset)
    assert first.window_first_offset == present[at - 99].offset
    # the statistic is scipy's on the pooled cells of the window at the alarm
    window = [category_of(v) for v in values[at - 99 : at + 1]]
    ref = [category_of(v) for v in values[:300]]
    cells = sorted(set(ref) | set(window))
    table = [[ref.count(c) for c in cells], [window.count(c) for c in cells]]
    # every category is frequent enough to keep its own cell here, so no pooling is involved
    assert first.statistic == stats.chi2_contingency(table, correction=False).statistic
    category, ref_share, win_share = first.largest_change or ("", 0.0, 0.0)
    assert category == "length"
    assert ref_share == ref.count("length") / 300 and win_share == window.count("length") / 100
    doc = first.to_dict()
    assert doc["largest_change"] == {
        "category": "length",
        "reference_share": ref_share,
        "window_share": win_share,
    }


def test_categorical_streams_continue_exactly_after_a_checkpoint() -> None:
    evs = _events(seed=5)
    expected = _run(DriftMonitor(_settings()), evs)
    first = DriftMonitor(_settings())
    before = _run(first, evs[:1100])
    restored = DriftMonitor(_settings())
    restored.restore(first.snapshot())
    after = _run(restored, evs[1100:])
    assert [e.to_dict() for e in before + after] == [e.to_dict() for e in expected]


def test_a_rebaseline_refreshes_a_categorical_stream_and_ends_its_episode() -> None:
    monitor = DriftMonitor(_settings())
    events = _run(monitor, _events())
    assert any(e.type == "drift_started" and e.feature == FINISH for e in events)
    assert monitor.keys["svc/m"].categorical[0].active
    out = monitor.rebaseline(feature=FINISH, command_id="c1")
    assert [e.type for e in out] == ["drift_resolved", "reference_refreshed"]
    assert out[0].reason == "rebaselined" and out[1].reference_source == "window"
    assert out[1].observations == sum(e.categories[0] is not None for e in _events()) - 300
    cs = monitor.keys["svc/m"].categorical[0]
    assert not cs.active and cs.detector is not None and cs.detector.n_seen == 0
    # the new reference is the old window: the post-shift shares
    assert cs.detector.reference_counts.sum() == 100
    # the control topic accepts categorical features (but not a file reference for them)
    parser = ControlParser(_settings())
    ok = parser.parse(b'{"action": "rebaseline", "feature": "finish_reasons"}')
    assert not isinstance(ok, Invalid) and ok.feature == FINISH
    bad = parser.parse(b'{"action": "rebaseline", "feature": "finish_reasons", "source": "file"}')
    assert isinstance(bad, Invalid)


def test_categorical_streams_publish_metrics_and_count_as_streams() -> None:
    registry = CollectorRegistry()
    monitor = DriftMonitor(_settings(), metrics=Metrics(registry), metrics_interval=0.0)
    evs = _events(600)
    _run(monitor, evs)
    monitor.publish_metrics()
    get = registry.get_sample_value
    labels = {"key": "svc/m", "feature": FINISH}
    assert get("driftwatch_observations_total", {"feature": FINISH}) == sum(
        e.categories[0] is not None for e in evs
    )
    cs = monitor.keys["svc/m"].categorical[0]
    assert cs.detector is not None
    assert get("driftwatch_chi2_statistic", labels) == cs.detector.statistic
    assert get("driftwatch_window_fill_ratio", labels) == 1.0
    assert get("driftwatch_ks_statistic", labels) is None
    assert get("driftwatch_tracked_streams") == 2  # tokens and finish_reasons (no labels)
    assert not math.isnan(get("driftwatch_p_value", labels) or math.nan)
