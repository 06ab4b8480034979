"""The Kafka broker the tests and benchmarks run against, and topics on it.

:func:`broker_or` gives a broker for a benchmark run: the one named, or a local one
(:mod:`tests.support.kafka_local`) started for the run. The integration tests' session broker
is the ``kafka_broker`` fixture (``tests/integration/conftest.py``), typed here.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError, TopicAlreadyExistsError

from tests.support import kafka_local

BOOTSTRAP_ENV = "DRIFTWATCH_KAFKA_BOOTSTRAP"
TOPIC_CREATE_TIMEOUT_S = 60.0


class KafkaBroker(Protocol):
    """What the ``kafka_broker`` fixture yields."""

    @property
    def bootstrap(self) -> str: ...

    @property
    def log_path(self) -> Path | None: ...

    def restart(self) -> None: ...


class TopicFactory(Protocol):
    """What the ``topic_factory`` fixture yields."""

    def __call__(
        self,
        prefix: str = "",
        partitions: int = 4,
        *,
        configs: Mapping[str, str] | None = None,
    ) -> str: ...


@dataclass(frozen=True)
class ExternalBroker:
    """A broker the test session did not start (``DRIFTWATCH_KAFKA_BOOTSTRAP``)."""

    bootstrap: str
    log_path: Path | None = None

    def restart(self) -> None:
        pytest.skip(f"restart() needs a broker started by the test session; {BOOTSTRAP_ENV} is set")


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int,
    configs: Mapping[str, str] | None = None,
    *,
    timeout: float = TOPIC_CREATE_TIMEOUT_S,
) -> str:
    """Create topic ``name`` (replication 1); an existing one is fine; ``name``.

    Each attempt uses a fresh admin client and transient errors are retried for ``timeout``
    seconds, so it also works right after a broker restart.
    """
    spec = {
        name: {
            "num_partitions": partitions,
            "replication_factor": 1,
            "configs": dict(configs or {}),
        }
    }
    deadline = time.monotonic() + timeout
    while True:
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, client_id="driftwatch-tests-admin"
            )
            try:
                admin.create_topics(spec, wait_for_metadata=True)
            finally:
                admin.close()
        except TopicAlreadyExistsError:
            return name
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() >= deadline:
                raise
            time.sleep(0.2)
        else:
            return name


@contextmanager
def broker_or(bootstrap: str | None) -> Iterator[str]:
    """``bootstrap`` as given, or a local broker started for the run and stopped after it."""
    if bootstrap is not None:
        yield bootstrap
        return
    kafka_local.fetch()
    state = Path(tempfile.mkdtemp(prefix="driftwatch-bench-kafka-"))
    broker = kafka_local.start(state)
    try:
        yield broker.bootstrap
    finally:
        broker.stop()
        shutil.rmtree(state, ignore_errors=True)
