"""Fixtures shared by the tests of ``stream``."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter


@pytest.fixture
def registry() -> CollectorRegistry:
    """A fresh registry holding one counter, ``demo_events_total`` = 3."""
    reg = CollectorRegistry()
    Counter("demo_events", "Events seen.", registry=reg).inc(3)
    return reg
