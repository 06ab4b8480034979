"""Fixtures for integration tests against a real single-node Kafka broker.

By default the session starts its own broker with :mod:`tests.support.kafka_local` (Java 17
and Maven needed) in a temporary directory and stops it at the end. Set
``DRIFTWATCH_KAFKA_BOOTSTRAP=host:port`` to use an already running broker instead; tests
that call ``kafka_broker.restart()`` are then skipped.

When any integration test fails, the broker log is copied to ``var/test-logs/``.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import time
import uuid
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path

import pytest

from tests.support import kafka_local
from tests.support.broker import (
    BOOTSTRAP_ENV,
    ExternalBroker,
    KafkaBroker,
    TopicFactory,
    create_topic,
)
from tests.support.worker import TEST_LOG_DIR

INTEGRATION_DIR = Path(__file__).resolve().parent

_FAILED = pytest.StashKey[bool]()
_SAVED_LOG = pytest.StashKey[Path]()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if INTEGRATION_DIR in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.config.stash[_FAILED] = True
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    saved = terminalreporter.config.stash.get(_SAVED_LOG, None)
    if saved is not None:
        terminalreporter.write_line(f"kafka broker log saved to {saved}", yellow=True)


def _save_log(config: pytest.Config, log_path: Path) -> None:
    if not log_path.is_file():
        return
    TEST_LOG_DIR.mkdir(parents=True, exist_ok=True)
    dest = TEST_LOG_DIR / f"broker-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    shutil.copyfile(log_path, dest)
    config.stash[_SAVED_LOG] = dest


@pytest.fixture(scope="session")
def kafka_broker(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """A running broker for the whole session: ``.bootstrap``, ``.restart()``, ``.log_path``."""
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        first = external.split(",")[0].strip()
        kafka_local.wait_until_ready(first, timeout=60.0, require_listed=False)
        yield ExternalBroker(external)
        return

    state_dir = tmp_path_factory.mktemp("kafka")
    try:
        broker = kafka_local.start(state_dir)
    except kafka_local.KafkaLocalError:
        _save_log(request.config, state_dir / "broker.log")
        raise
    atexit.register(broker.stop)
    try:
        yield broker
    finally:
        broker.stop()
        atexit.unregister(broker.stop)
        if request.config.stash.get(_FAILED, False):
            _save_log(request.config, broker.log_path)


@pytest.fixture
def topic_factory(kafka_broker: KafkaBroker, request: pytest.FixtureRequest) -> TopicFactory:
    """Create uniquely named topics: ``topic_factory(prefix="", partitions=4, configs=None)``.

    The name is ``<prefix or test name>-<random hex>``; topics are never deleted. Each call
    uses a fresh admin client and retries transient errors, so it also works right after
    ``kafka_broker.restart()``.
    """
    default_prefix = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-.")[:100]

    def create(
        prefix: str = "",
        partitions: int = 4,
        *,
        configs: Mapping[str, str] | None = None,
    ) -> str:
        name = f"{prefix or default_prefix or 'topic'}-{uuid.uuid4().hex[:12]}"
        return create_topic(kafka_broker.bootstrap, name, partitions, configs)

    return create
