"""``driftwatch simulate``: realistic multi-agent telemetry to Kafka (or a file), with a drift.

Produces with kafka-python, keyed by ``agent_id`` so each agent stays on one partition.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import msgspec

from stream.exceptions import DriftwatchError
from stream.settings import DEFAULT_FEATURES
from stream.tools import genai
from stream.tools.progress import Progress
from stream.tools.simulation import DRIFT_KINDS, DriftSpec, TelemetrySimulator
from stream.worker.kafka import add_kafka_options, client_settings, kafka_client_config

__all__ = ["add_parser", "drift_start_event", "run"]

#: Events per second the timestamps are spaced by when ``--rate`` is 0 (no pacing).
UNPACED_RATE = 10_000.0

INVALID_SAMPLES = (
    b"{not json",
    b'["an", "array"]',
    b'{"ts": 1, "response_latency_ms": 5}',
    b'{"agent_id": "agent-0", "response_latency_ms": "slow", "token_count": 1,'
    b' "retry_count": 0, "error_rate": 0.1}',
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="produce realistic agent telemetry with a scheduled drift",
        description="Produce telemetry for N agents (lognormal latency, Poisson tokens, "
        "zero-inflated retries, beta error rate, labelled predictions) at a set rate, and "
        "change one agent's feature at a set time.",
    )
    add_kafka_options(p)
    p.add_argument("--topic", default="agent-telemetry")
    p.add_argument("--output", metavar="FILE.jsonl", help="write JSON lines here, not to Kafka")
    p.add_argument(
        "--rate",
        type=float,
        default=200.0,
        help="events per second: the pace to Kafka and the timestamps' spacing "
        "(0: no pacing, only with --drift-at-event); --output is written unpaced",
    )
    p.add_argument("--agents", type=int, default=5)
    p.add_argument("--count", type=int, help="stop after this many events (default: run on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drift-agent", help="agent whose feature drifts (e.g. agent-1)")
    p.add_argument("--drift-feature", default="response_latency_ms", choices=DEFAULT_FEATURES)
    p.add_argument("--drift-kind", default="shift", choices=DRIFT_KINDS)
    p.add_argument("--drift-magnitude", type=float, default=0.3, help="relative size (0.3=30%%)")
    at = p.add_mutually_exclusive_group()
    at.add_argument(
        "--drift-at",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="seconds after start, placed at event SECONDS x --rate (default 60)",
    )
    at.add_argument(
        "--drift-at-event",
        type=int,
        metavar="N",
        help="the drift starts at event N (counted from 0)",
    )
    p.add_argument(
        "--invalid-every",
        type=int,
        default=0,
        metavar="N",
        help="also send a malformed message every N events",
    )
    p.add_argument("--start-ms", type=int, help="timestamp of the first event (default: now)")
    p.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up (exit 2) when the broker does not answer within SECONDS (default 10)",
    )
    p.add_argument(
        "--format",
        default="json",
        choices=("json", "otlp_proto", "otlp_json"),
        help="json: flat events keyed by agent; otlp_*: OpenTelemetry GenAI spans in export "
        "requests with nil keys, as the Collector's Kafka exporter writes them",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    genai.add_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.rate < 0 or args.agents < 1 or (args.count is not None and args.count < 0):
        raise DriftwatchError("--rate must be >= 0, --agents >= 1 and --count >= 0")
    if args.timeout <= 0:
        raise DriftwatchError(f"--timeout must be > 0 seconds, got {args.timeout:g}")
    if args.format != "json":
        if args.output and args.format == "otlp_proto":
            raise DriftwatchError("--output writes JSON lines: use --format otlp_json with it")
        start = drift_start_event(args, drifting=bool(args.genai_drift))
        send, close = _sink(args)
        try:
            return genai.run(args, send, drift_start=start, paced=not args.output)
        except ValueError as exc:
            raise DriftwatchError(str(exc)) from None
        finally:
            close()
    drift = None
    if args.drift_agent:
        drift = DriftSpec(
            args.drift_agent,
            args.drift_feature,
            args.drift_kind,
            args.drift_magnitude,
            start_event=drift_start_event(args, drifting=True),
        )
    try:
        sim = TelemetrySimulator(args.agents, seed=args.seed, drift=drift)
    except ValueError as exc:
        raise DriftwatchError(str(exc)) from None
    start_ms = args.start_ms if args.start_ms is not None else int(time.time() * 1000)
    step_ms = 1000.0 / (args.rate or UNPACED_RATE)
    pace = 0.0 if args.output else args.rate
    send, close = _sink(args)
    progress = Progress("simulate", total=args.count, unit="events", quiet=args.quiet)
    started = time.monotonic()
    i = 0
    try:
        while args.count is None or i < args.count:
            ev = sim.event(int(start_ms + i * step_ms))
            send(ev["agent_id"].encode(), msgspec.json.encode(ev))
            i += 1
            if args.invalid_every and i % args.invalid_every == 0:
                send(b"agent-0", INVALID_SAMPLES[(i // args.invalid_every) % len(INVALID_SAMPLES)])
            if pace:
                ahead = i / pace - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            if i % 256 == 0:
                drifting = drift is not None and i >= drift.start_event
                note = f"{drift.agent_id}.{drift.feature} drifting" if drifting and drift else ""
                progress.update(i, note)
    finally:
        close()
        progress.close(i)
    print(f"simulate: done, {i} events", file=sys.stderr)
    return 0


def drift_start_event(args: argparse.Namespace, *, drifting: bool) -> int:
    """The index of the first drifted event: ``--drift-at-event``, or ``--drift-at x --rate``.

    Raises
    ------
    DriftwatchError
        When a drift is asked for in seconds and ``--rate`` is 0 (no rate to convert with), or
        the index is negative.
    """
    if args.drift_at_event is not None:
        if args.drift_at_event < 0:
            raise DriftwatchError(f"--drift-at-event must be >= 0, got {args.drift_at_event}")
        return int(args.drift_at_event)
    if not drifting:
        return 0
    if args.drift_at < 0:
        raise DriftwatchError(f"--drift-at must be >= 0 seconds, got {args.drift_at:g}")
    if not args.rate:
        raise DriftwatchError(
            f"--drift-at {args.drift_at:g} is in seconds and --rate 0 gives no rate to convert "
            "it to an event index: set --rate, or give --drift-at-event N"
        )
    return int(args.drift_at * args.rate)


def _sink(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.output:
        try:
            fh = Path(args.output).open("wb")  # noqa: SIM115 - closed by the returned closer
        except OSError as exc:
            raise DriftwatchError(
                f"cannot write --output {args.output}: {exc.strerror or exc}"
            ) from None

        def write(key: bytes | None, value: bytes) -> None:
            fh.write(value + b"\n")

        return write, fh.close
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    settings = client_settings(args)
    try:
        producer = KafkaProducer(
            **kafka_client_config(settings, connect_timeout=args.timeout),
            acks="all",
            linger_ms=20,
            retries=5,
            max_block_ms=int(args.timeout * 1000),
        )
    except KafkaError as exc:
        raise DriftwatchError(
            f"cannot reach Kafka at {settings.kafka.bootstrap_servers}: {exc}"
        ) from None

    def send(key: bytes | None, value: bytes) -> None:
        try:
            producer.send(args.topic, key=key, value=value)
        except KafkaError as exc:
            raise DriftwatchError(f"cannot send to {args.topic}: {exc}") from None

    def close() -> None:
        try:
            producer.flush(timeout=max(args.timeout, 30.0))
        except KafkaError as exc:
            raise DriftwatchError(f"not every event reached {args.topic}: {exc}") from None
        finally:
            producer.close(timeout=args.timeout)

    return send, close
