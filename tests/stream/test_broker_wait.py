"""The worker's broker wait at start: backoff, logged attempts, fatal refusals."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import islice

import pytest

from stream.settings import Settings
from stream.worker.broker_wait import (
    BrokerRefusedError,
    BrokerUnreachableError,
    backoff_delays,
    probe_broker,
    wait_for_broker,
)
from tests.support.listener import GARBAGE, listener
from tests.support.worker import free_port

SECRET = "s3cret-pass-word"


def test_delays_double_from_1_s_up_to_30_s() -> None:
    assert list(islice(backoff_delays(), 8)) == [1, 2, 4, 8, 16, 30, 30, 30]


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[list[str]]:
    handler = _Lines()
    logger = logging.getLogger("driftwatch.broker")
    logger.addHandler(handler)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


def test_retries_with_backoff_until_the_broker_answers(lines: list[str]) -> None:
    answers = iter(["down", "down", "down", "up"])
    slept: list[float] = []
    counted: list[int] = []

    async def probe(settings: Settings) -> str:
        if next(answers) == "down":
            raise BrokerUnreachableError(settings.kafka.bootstrap_servers, "ConnectionRefusedError")
        return "b:9092"

    settings = Settings(bootstrap_servers="b:9092")
    retries = wait_for_broker(
        settings, probe=probe, sleep=slept.append, on_retry=lambda: counted.append(1)
    )
    assert retries == 3 == len(counted)
    assert slept == [1.0, 2.0, 4.0]
    assert [f"attempt {i}" in line for i, line in enumerate(lines[:3], start=1)] == [True] * 3
    assert "retrying in 4 s" in lines[2] and "after 4 attempt(s)" in lines[3]


def test_a_refusal_is_not_retried(lines: list[str]) -> None:
    async def probe(settings: Settings) -> str:
        raise BrokerRefusedError("b:9092", "authentication failed")

    slept: list[float] = []
    with pytest.raises(BrokerRefusedError, match="authentication failed"):
        wait_for_broker(Settings(bootstrap_servers="b:9092"), probe=probe, sleep=slept.append)
    assert slept == [] and "refused the probe" in lines[-1]


def test_max_attempts_gives_up() -> None:
    async def probe(settings: Settings) -> str:
        raise BrokerUnreachableError("b:9092", "down")

    slept: list[float] = []
    with pytest.raises(BrokerUnreachableError):
        wait_for_broker(Settings(), probe=probe, sleep=slept.append, max_attempts=3)
    assert slept == [1.0, 2.0]


def test_probe_of_a_closed_port_or_a_silent_listener_is_unreachable() -> None:
    import asyncio

    closed = f"127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnreachableError, match=closed):
        asyncio.run(probe_broker(Settings(bootstrap_servers=closed), timeout=2.0))
    with listener(None) as silent, pytest.raises(BrokerUnreachableError, match=silent):
        asyncio.run(probe_broker(Settings(bootstrap_servers=silent), timeout=0.5))


def test_a_failed_tls_handshake_is_a_refusal_without_the_password() -> None:
    import asyncio

    with listener(GARBAGE) as garbage:
        settings = Settings(
            bootstrap_servers=garbage,
            security_protocol="SASL_SSL",
            sasl_username="u",
            sasl_password=SECRET,
        )
        with pytest.raises(BrokerRefusedError) as info:
            asyncio.run(probe_broker(settings, timeout=5.0))
    assert "TLS" in str(info.value) and SECRET not in str(info.value)


def test_the_worker_waits_for_the_broker_instead_of_exiting() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_")}
    env["DRIFTWATCH_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    seen: list[str] = []
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            seen.append(line)
            if "attempt 2" in line:
                break
        assert any("attempt 1" in s and "retrying in 1 s" in s for s in seen), seen
        assert any("attempt 2" in s and "retrying in 2 s" in s for s in seen), seen
        assert proc.poll() is None  # still waiting, not exited
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
