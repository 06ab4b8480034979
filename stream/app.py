"""The Faust application: ``faust -A stream.app worker`` and ``driftwatch worker`` start it.

Settings are read from the environment (and ``DRIFTWATCH_CONFIG``) when this module is imported.
Topics, the agent and the startup tasks live in their own modules and are registered here.
"""

from __future__ import annotations

import faust
from faust.types.auth import CredentialsT

from stream.kafka_config import client_ssl_context, redact_sasl_in_client_logs
from stream.settings import Settings, load_settings

__all__ = ["app", "broker_credentials", "create_app", "settings"]


def broker_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's broker credentials for ``security_protocol`` (None for PLAINTEXT)."""
    context = client_ssl_context(settings) if settings.uses_ssl else None
    if settings.uses_sasl:
        redact_sasl_in_client_logs(settings)
        return faust.SASLCredentials(
            username=settings.sasl_username,
            password=settings.sasl_secret(),
            ssl_context=context,
            mechanism=settings.sasl_mechanism,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(settings: Settings) -> faust.App:
    """A Faust app for ``settings`` (raw bytes in and out; JSON is handled by driftwatch)."""
    return faust.App(
        settings.app_id,
        broker=settings.kafka_url,
        broker_credentials=broker_credentials(settings),
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        web_enabled=False,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=settings.session_timeout / 4,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        stream_buffer_maxsize=max(4096, 4 * settings.batch_size),
        broker_commit_every=max(10_000, 10 * settings.batch_size),
        datadir=settings.data_dir,
        autodiscover=False,
    )


settings = load_settings()
app = create_app(settings)

from stream import agents  # noqa: E402,F401  (registers topics, the agent and tasks on `app`)
