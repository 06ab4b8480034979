"""The metrics serving process: it lives and dies with the worker, is started again when it dies
on its own, keeps the password off its command line and environment; and the frames between
the two are bounded."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from stream.metrics.channel import (
    MAX_HEADER_BYTES,
    ChannelClosed,
    ChannelError,
    recv_frame,
    send_frame,
)
from stream.metrics.server import RESTART_DELAY_S, MetricsServer, start_metrics_server
from stream.settings import load_settings

REPO = Path(__file__).resolve().parents[2]
PASSWORD = "Zq8-serving-S3cr3t-value"


@pytest.fixture
def server(registry: CollectorRegistry) -> Iterator[MetricsServer]:
    settings = load_settings(
        environ={},
        metrics_host="127.0.0.1",
        metrics_port=0,
        metrics_basic_auth_username="prometheus",
        metrics_basic_auth_password=PASSWORD,
    )
    running = start_metrics_server(settings, registry)
    yield running
    running.close()


def _get(url: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    token = base64.b64encode(f"prometheus:{PASSWORD}".encode()).decode()
    request.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(request, timeout=10) as resp:
        return resp.status, resp.read()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) counts as gone
    status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return status != "Z"


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _wait_for(condition: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_scrapes_are_answered_by_another_process(
    server: MetricsServer, registry: CollectorRegistry
) -> None:
    assert server.pid != os.getpid() and _alive(server.pid)
    status, body = _get(server.url)
    assert status == 200 and body == generate_latest(registry)
    assert server.stats()["pid"] == server.pid


def test_the_password_is_not_on_its_command_line_or_in_its_environment(
    registry: CollectorRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTWATCH_METRICS_BASIC_AUTH_PASSWORD", PASSWORD)
    monkeypatch.setenv("DRIFTWATCH_METRICS_BASIC_AUTH_USERNAME", "prometheus")
    settings = load_settings(metrics_host="127.0.0.1", metrics_port=0)
    assert settings.metrics.basic_auth_secret() == PASSWORD
    server = start_metrics_server(settings, registry)
    try:
        for part in ("cmdline", "environ"):
            content = Path(f"/proc/{server.pid}/{part}").read_bytes()
            assert PASSWORD.encode() not in content, part
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        assert b"stream.metrics.serving" in cmdline
        assert _get(server.url)[0] == 200  # the credentials reached it all the same
    finally:
        server.close()


def test_it_is_started_again_when_it_dies(
    server: MetricsServer, registry: CollectorRegistry
) -> None:
    first = server.pid
    os.kill(first, signal.SIGKILL)
    _wait_for(lambda: server.restarts == 1, "the serving process is started again")
    assert server.pid != first and not _alive(first)
    status, body = _get(server.url)  # the same port: the listener stayed open in the worker
    assert status == 200 and body == generate_latest(registry)


def test_a_stop_signal_to_the_group_closes_quietly_but_alone_restarts_with_a_warning(
    registry: CollectorRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    settings = load_settings(environ={}, metrics_host="127.0.0.1", metrics_port=0)
    # a service manager stopping the worker signals the serving process as well
    server = start_metrics_server(settings, registry)
    with caplog.at_level(logging.INFO, logger="driftwatch.metrics"):
        os.kill(server.pid, signal.SIGTERM)
        time.sleep(RESTART_DELAY_S / 4)  # the worker's own shutdown begins meanwhile
        server.close()
    assert server.restarts == 0
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    # the same signal to the serving process alone, the worker running on
    server = start_metrics_server(settings, registry)
    try:
        first = server.pid
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="driftwatch.metrics"):
            os.kill(first, signal.SIGTERM)
            _wait_for(lambda: server.restarts == 1, "the serving process is started again")
        levels = [r.levelno for r in caplog.records if "serving process" in r.getMessage()]
        assert levels == [logging.WARNING]
        assert _get(server.url)[0] == 200
    finally:
        server.close()


def test_close_stops_it(registry: CollectorRegistry) -> None:
    settings = load_settings(environ={}, metrics_host="127.0.0.1", metrics_port=0)
    server = start_metrics_server(settings, registry)
    pid = server.pid
    server.close()
    assert not _alive(pid)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_it_exits_when_the_worker_is_killed(how: signal.Signals) -> None:
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import json, sys, time
                from prometheus_client import CollectorRegistry
                from stream.metrics.server import start_metrics_server
                from stream.settings import load_settings
                settings = load_settings(environ={}, metrics_host="127.0.0.1", metrics_port=0)
                server = start_metrics_server(settings, CollectorRegistry())
                print(json.dumps({"pid": server.pid, "port": server.port}), flush=True)
                time.sleep(600)
                """
            ),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None
        started = json.loads(worker.stdout.readline())
        assert _alive(started["pid"])
        worker.send_signal(how)
        worker.wait(timeout=15)
        _wait_for(lambda: not _alive(started["pid"]), "the serving process exits with the worker")
        # and the port is free (once its last thread is gone: the main thread shows as a
        # zombie a moment before the others have ended and the socket is closed)
        _wait_for(lambda: _bindable(started["port"]), "the port is released")
    finally:
        worker.kill()
        worker.wait()


def test_frames_round_trip() -> None:
    a, b = socket.socketpair()
    with a, b:
        send_frame(a, {"content_type": "text/plain"}, b"x" * 100_000, b"")
        header, bodies = recv_frame(b, max_body_bytes=100_000)
        assert header == {"content_type": "text/plain", "sizes": [100_000, 0]}
        assert bodies == [b"x" * 100_000, b""]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (struct.pack(">I", MAX_HEADER_BYTES + 1), "header of"),
        (struct.pack(">I", 5) + b"{nope", "not JSON"),
        (struct.pack(">I", 2) + b"[]", "list of body sizes"),
        (struct.pack(">I", 15) + b'{"sizes":[-1]} ', "list of body sizes"),
        (struct.pack(">I", 16) + b'{"sizes":[1.5]} ', "list of body sizes"),
        (struct.pack(">I", 16) + b'{"sizes":[101]} ', "bodies of 101 bytes"),
    ],
)
def test_bad_frames_are_refused_before_anything_is_allocated(raw: bytes, reason: str) -> None:
    a, b = socket.socketpair()
    with a, b:
        a.sendall(raw)
        with pytest.raises(ChannelError, match=reason):
            recv_frame(b, max_body_bytes=100)


def test_a_closed_channel_is_told_apart() -> None:
    a, b = socket.socketpair()
    with b:
        a.sendall(struct.pack(">I", 10) + b'{"si')
        a.close()
        with pytest.raises(ChannelClosed):
            recv_frame(b, max_body_bytes=0)


def test_a_header_over_the_bound_is_not_sent() -> None:
    a, b = socket.socketpair()
    with a, b, pytest.raises(ChannelError, match="header of"):
        send_frame(a, {"names": ["x" * MAX_HEADER_BYTES]})
