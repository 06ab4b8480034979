"""Wait for the Kafka broker at worker start, with backoff, before Faust starts.

``driftwatch worker`` probes the bootstrap servers with the configured security (TLS, SASL):
a connection, the API-version exchange, the SASL handshake and a metadata request. A broker that
is not there yet (connection refused, timeout, not answering metadata) is tried again after 1 s,
then 2, 4, ... up to 30 s between attempts, each attempt logged and counted in
``driftwatch_broker_start_retries_total``. A broker that answers but refuses the credentials,
or a TLS handshake that fails, is not retried: waiting would not fix it.
:class:`BrokerRefusedError` says so, without the password; the worker logs it and starts, so
that its Kafka clients report the refusal as they always did.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aiokafka import errors as kafka_errors

from stream.exceptions import DriftwatchError
from stream.settings import REDACTED, Settings
from stream.worker.kafka import aiokafka_client_config

__all__ = [
    "FIRST_DELAY",
    "MAX_DELAY",
    "BrokerRefusedError",
    "BrokerUnreachableError",
    "backoff_delays",
    "probe_broker",
    "wait_for_broker",
]

log = logging.getLogger("driftwatch.broker")

#: Seconds before the second attempt; doubled after each failure up to :data:`MAX_DELAY`.
FIRST_DELAY = 1.0
MAX_DELAY = 30.0
#: Seconds one probe of one bootstrap server may take.
PROBE_TIMEOUT = 10.0

#: Errors of a broker that answered and refused: retrying cannot help.
_REFUSED: tuple[type[BaseException], ...] = (
    kafka_errors.AuthenticationFailedError,
    kafka_errors.AuthenticationMethodNotSupported,
    kafka_errors.SaslAuthenticationFailed,
    kafka_errors.UnsupportedSaslMechanismError,
    kafka_errors.IllegalSaslStateError,
    ssl.SSLError,
    ssl.CertificateError,
)


class BrokerUnreachableError(DriftwatchError):
    """No bootstrap server answered (yet): the worker tries again with backoff."""

    def __init__(self, bootstrap: str, reason: str) -> None:
        self.bootstrap = bootstrap
        self.reason = reason
        super().__init__(f"no broker reachable at {bootstrap}: {reason}")


class BrokerRefusedError(DriftwatchError):
    """The broker answered but refused the connection (authentication or TLS).

    Check ``sasl_username``, the password (file), ``sasl_mechanism``, ``ssl_cafile`` and the
    broker's listener configuration; then start the worker again.
    """

    def __init__(self, server: str, reason: str, kind: str = "") -> None:
        self.server = server
        self.reason = reason
        self.kind = kind  # the client's error class, e.g. SaslAuthenticationFailed
        super().__init__(f"the broker at {server} refused the connection: {reason}")


def _redacted(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return text


def _describe(exc: BaseException, secrets: list[str]) -> str:
    detail = str(exc).strip()
    name = type(exc).__name__
    return _redacted(f"{name}: {detail}" if detail else name, secrets)


async def probe_broker(settings: Settings, *, timeout: float = PROBE_TIMEOUT) -> str:
    """Connect to a bootstrap server as the worker will; return the one that answered.

    Raises
    ------
    BrokerRefusedError
        A server answered but refused authentication, or the TLS handshake failed.
    BrokerUnreachableError
        No server answered.
    """
    from aiokafka.conn import create_conn
    from aiokafka.protocol.metadata import MetadataRequest

    config = aiokafka_client_config(settings)
    secrets = [s for s in (config.get("sasl_plain_password"),) if isinstance(s, str)]
    reasons = []
    for server in config["bootstrap_servers"]:
        host, _, port = server.rpartition(":")
        conn: Any = None
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host or server,
                    int(port) if port.isdigit() else 9092,
                    client_id=f"{settings.app_id}-probe",
                    request_timeout_ms=int(timeout * 1000),
                    ssl_context=config.get("ssl_context"),
                    security_protocol=settings.kafka.security_protocol,
                    sasl_mechanism=config.get("sasl_mechanism", "PLAIN"),
                    sasl_plain_username=config.get("sasl_plain_username"),
                    sasl_plain_password=config.get("sasl_plain_password"),
                ),
                timeout,
            )
            metadata = await asyncio.wait_for(conn.send(MetadataRequest([])), timeout)
        except _REFUSED as exc:
            raise BrokerRefusedError(
                server,
                f"authentication failed or TLS refused ({_describe(exc, secrets)})",
                type(exc).__name__,
            ) from None
        except (OSError, TimeoutError, kafka_errors.KafkaError) as exc:
            reasons.append(f"{server}: {_describe(exc, secrets)}")
            continue
        finally:
            if conn is not None:
                conn.close()
        if metadata.brokers:
            return server
        reasons.append(f"{server}: no broker listed in the metadata yet")
    raise BrokerUnreachableError(settings.kafka.bootstrap_servers, "; ".join(reasons))


def backoff_delays(first: float = FIRST_DELAY, cap: float = MAX_DELAY) -> Any:
    """1, 2, 4, ... seconds, at most ``cap`` each (an endless iterator)."""
    delay = first
    while True:
        yield min(delay, cap)
        delay = min(delay * 2.0, cap)


def _stderr_logger() -> logging.Logger:
    """The attempts go to stderr before Faust has configured logging."""
    if not any(getattr(h, "_driftwatch_stderr", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s] [%(levelname)s] %(message)s"))
        handler._driftwatch_stderr = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    return log


def wait_for_broker(
    settings: Settings,
    *,
    probe: Callable[[Settings], Coroutine[Any, Any, str]] = probe_broker,
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[], None] | None = None,
    max_attempts: int | None = None,
) -> int:
    """Probe until a broker answers; return the number of retries it took.

    Parameters
    ----------
    settings : Settings
        The bootstrap servers and security of the worker.
    probe : callable
        One attempt (:func:`probe_broker`); raises :class:`BrokerUnreachableError` to retry.
    sleep : callable
        Waits between attempts (1 s doubling to 30 s).
    on_retry : callable, optional
        Called once per failed attempt (the worker counts them in
        ``driftwatch_broker_start_retries_total``).
    max_attempts : int, optional
        Give up with :class:`BrokerUnreachableError` after this many attempts (default: never).

    Raises
    ------
    BrokerRefusedError
        At once, when the broker refuses authentication or TLS.
    """
    logger = _stderr_logger()
    retries = 0
    for attempt, delay in enumerate(backoff_delays(), start=1):
        try:
            server = asyncio.run(probe(settings))
        except BrokerUnreachableError as exc:
            if max_attempts is not None and attempt >= max_attempts:
                raise
            retries += 1
            if on_retry is not None:
                on_retry()
            logger.warning(
                "broker not reachable (attempt %d): %s; retrying in %g s", attempt, exc, delay
            )
            sleep(delay)
            continue
        except BrokerRefusedError as exc:
            # one short line: the clients that start next report the refusal in full
            logger.info(
                "the broker at %s answered but refused the probe (%s)", exc.server, exc.kind
            )
            raise
        logger.info("broker reachable at %s after %d attempt(s)", server, attempt)
        return retries
    raise AssertionError("unreachable")  # pragma: no cover - backoff_delays never ends
