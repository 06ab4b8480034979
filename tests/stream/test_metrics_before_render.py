"""The worker publishes its streams right before each rendering of ``/metrics``."""

from __future__ import annotations

import urllib.request

from prometheus_client import CollectorRegistry, Gauge

from stream.metrics.server import start_metrics_server
from stream.settings import load_settings


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body: bytes = resp.read()
        return body


def test_each_rendering_sees_what_before_render_set_and_survives_its_errors() -> None:
    registry = CollectorRegistry()
    gauge = Gauge("demo_published", "Times published.", registry=registry)
    calls = []

    def before_render() -> None:
        calls.append(1)
        gauge.set(len(calls))
        if len(calls) == 2:
            raise RuntimeError("injected")

    settings = load_settings(
        environ={}, metrics_host="127.0.0.1", metrics_port=0, metrics_cache_seconds=0
    )
    server = start_metrics_server(settings, registry, before_render=before_render)
    try:
        for expected in (1, 2, 3):
            assert f"demo_published {expected}.0".encode() in _get(server.url)
    finally:
        server.close()
    assert len(calls) == 3
