"""The worker's daily budget of false alarms, split into per-stream ERTs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from detectors.budget import EventRate, shortest_ert, stream_ert


def test_streams_share_the_budget_whatever_their_rates() -> None:
    rates = np.array([0.1, 1.0, 12.5, 300.0])
    erts = [stream_ert(3.0, 4, r) for r in rates]
    # expected false alarms a day summed over the streams: rate * 86,400 / ert each
    assert sum(r * 86_400 / e for r, e in zip(rates, erts, strict=True)) == pytest.approx(3.0)
    assert stream_ert(1.0, 1, 10.0) == 864_000.0  # 10 events/s, one alarm a day


def test_floor_and_arguments() -> None:
    assert stream_ert(100.0, 1, 0.001, floor=shortest_ert(200)) == 2_000.0
    assert shortest_ert(50, 25) == 375.0
    for bad in ({"false_alarms_per_day": 0.0}, {"streams": 0}, {"events_per_second": math.nan}):
        kwargs = {"false_alarms_per_day": 1.0, "streams": 2, "events_per_second": 1.0, **bad}
        with pytest.raises(ValueError, match=next(iter(bad))):
            stream_ert(**kwargs)  # type: ignore[arg-type]


def test_event_rate_from_timestamps() -> None:
    rng = np.random.default_rng(0)
    times = np.cumsum(rng.exponential(1 / 7.0, size=5_000))
    rate = EventRate()
    assert math.isnan(rate.per_second)
    for chunk in np.array_split(times, 20):
        rate = rate.observe(chunk.size, float(chunk[0]), float(chunk[-1]))
    assert rate.count == 5_000
    assert rate.per_second == pytest.approx(7.0, rel=0.05)
    assert not rate.changed(5.0) and rate.changed(3.0) and rate.changed(20.0)
