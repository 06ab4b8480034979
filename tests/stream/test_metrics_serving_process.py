"""The metrics serving process: real scrapes get the last rendering of the worker's registry,
it ends with the worker (even a killed one), a port in use is a clear error, failures answer."""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import Metric

from stream.exceptions import ConfigError
from stream.metrics.channel import Channel, ChannelError
from stream.metrics.server import MetricsServer, start_metrics_server
from stream.settings import load_settings
from tests.stream.test_metrics_server import get

ROOT = Path(__file__).resolve().parents[2]


def start(registry: CollectorRegistry, **changes: object) -> MetricsServer:
    changes = {"metrics_host": "127.0.0.1", "metrics_port": 0, **changes}
    settings = load_settings(environ={}, **changes)
    return start_metrics_server(settings, registry)


def gone(pid: int) -> bool:
    """The process has exited (a zombie not yet reaped by its new parent counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def wait_until(condition: object, seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def registry() -> CollectorRegistry:
    reg = CollectorRegistry()
    Counter("demo_events", "Events seen.", registry=reg).inc(3)
    return reg


def test_scrapes_get_the_last_rendering(registry: CollectorRegistry) -> None:
    counter = Counter("other_events", "Other events.", registry=registry)
    server = start(registry, metrics_cache_seconds=300)
    try:
        assert server.pid != os.getpid() and not gone(server.pid)
        first = generate_latest(registry)
        status, _, body = get(server.url)
        assert status == 200 and body == first
        counter.inc()  # after the rendering: not seen until the next one
        assert get(server.url)[2] == first
        status, headers, zipped = get(server.url, headers={"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped) == first
        assert server.cache.renderings == 1
    finally:
        server.close()
    server = start(registry, metrics_cache_seconds=0)
    try:
        for _ in range(3):
            counter.inc()
            assert get(server.url)[2] == generate_latest(registry)  # rendered for each scrape
        assert server.cache.renderings == 3
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("HEAD", "/metrics")
        answer = conn.getresponse()
        assert answer.status == 200 and answer.read() == b""
        assert int(answer.headers["Content-Length"]) == len(generate_latest(registry))
        conn.close()
    finally:
        server.close()


def test_an_expired_rendering_is_answered_while_the_next_is_made(
    registry: CollectorRegistry,
) -> None:
    counter = Counter("other_events", "Other events.", registry=registry)
    server = start(registry, metrics_cache_seconds=2)
    try:
        first = get(server.url)[2]
        assert first == generate_latest(registry)
        counter.inc()
        time.sleep(2.2)  # expired, not yet twice the interval old
        assert get(server.url)[2] == first  # answered at once, the next one is being made
        assert wait_until(lambda: get(server.url)[2] == generate_latest(registry), 10)
        assert server.cache.renderings == 2
        counter.inc()
        time.sleep(4.5)  # twice the interval: the scrape waits for a fresh rendering
        assert get(server.url)[2] == generate_latest(registry)
        assert server.cache.renderings == 3
    finally:
        server.close()


def test_a_port_in_use_is_a_config_error(registry: CollectorRegistry) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError) as info:
            start(registry, metrics_port=port)
    assert info.value.setting == "metrics_port" and info.value.value == port
    assert f"cannot listen on 127.0.0.1:{port}" in info.value.reason
    assert "in use" in info.value.reason


class Failing:
    """A collector whose collection fails while ``failing`` is set."""

    def __init__(self) -> None:
        self.failing = False

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        if self.failing:
            raise RuntimeError("collector broke")
        return []


def test_a_failing_rendering_answers_500_and_is_logged_here(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    collector = Failing()
    registry.register(collector)  # type: ignore[arg-type]
    server = start(registry, metrics_cache_seconds=0)
    try:
        collector.failing = True
        status, _, body = get(server.url)
        assert status == 500 and b"demo_events" not in body
        assert "rendering /metrics failed" in caplog.text and "collector broke" in caplog.text
        collector.failing = False
        status, _, body = get(server.url)
        assert status == 200 and body == generate_latest(registry)
    finally:
        server.close()


PARENT = textwrap.dedent(
    """
    import sys, time
    from prometheus_client import CollectorRegistry, Counter
    from stream.metrics.server import start_metrics_server
    from stream.settings import load_settings

    registry = CollectorRegistry()
    Counter("demo_events", "Events seen.", registry=registry).inc()
    settings = load_settings(environ={}, metrics_host="127.0.0.1", metrics_port=0)
    server = start_metrics_server(settings, registry)
    print(server.port, server.pid, flush=True)
    time.sleep(600)
    """
)


@pytest.fixture
def parent() -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_serving_process_dies_with_its_parent(
    parent: subprocess.Popen[str], how: signal.Signals
) -> None:
    assert parent.stdout is not None
    port, pid = map(int, parent.stdout.readline().split())
    status, _, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and b"demo_events_total 1.0" in body
    parent.send_signal(how)
    parent.wait(timeout=10)
    assert wait_until(lambda: gone(pid)), "the serving process outlived its parent"
    assert wait_until(lambda: refused(port)), "the port is still served"


def test_a_killed_serving_process_is_logged_and_close_returns(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="driftwatch.metrics")
    server = start(registry)
    assert get(server.url)[0] == 200
    os.kill(server.pid, signal.SIGKILL)
    assert wait_until(lambda: "is gone" in caplog.text)
    t0 = time.monotonic()
    server.close()
    assert time.monotonic() - t0 < 5 and refused(server.port)


def test_channel_frames() -> None:
    a, b = socket.socketpair()
    ours, theirs = Channel(a, max_bytes=1024), Channel(b)
    try:
        theirs.send({"op": "render", "names": ["x"]}, b"\x00body")
        assert ours.receive(timeout=5) == ({"op": "render", "names": ["x"]}, b"\x00body")
        assert ours.receive(timeout=0.01) is None
        theirs.send({"op": "big"}, b"x" * 2048)
        with pytest.raises(ChannelError):
            ours.receive(timeout=5)
    finally:
        ours.close()
        theirs.close()
    for frame in (b"\x00\x00\x00\x05[1,2]", b"\x00\x00\x00\x09not json!", b"\x00\x00\x00\x50{}"):
        a, b = socket.socketpair()
        ours, theirs = Channel(a), Channel(b)
        try:
            theirs._conn.send_bytes(frame)
            with pytest.raises(ChannelError):
                ours.receive(timeout=5)
        finally:
            ours.close()
            theirs.close()
    a, b = socket.socketpair()
    ours, theirs = Channel(a), Channel(b)
    theirs.close()
    with pytest.raises(EOFError):
        ours.receive(timeout=5)
    ours.close()
