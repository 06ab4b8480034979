"""``driftwatch simulate``: realistic multi-agent telemetry to Kafka (or a file), with a drift.

Produces with kafka-python, keyed by ``agent_id`` so each agent stays on one partition.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from stream.exceptions import DriftwatchError
from stream.kafka_config import add_kafka_options, client_settings, kafka_client_config
from stream.settings import DEFAULT_FEATURES
from stream.simulation import DRIFT_KINDS, DriftSpec, TelemetrySimulator
from stream.tools import genai

__all__ = ["add_parser", "run"]

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
    p.add_argument("--rate", type=float, default=200.0, help="events per second (0: no pacing)")
    p.add_argument("--agents", type=int, default=5)
    p.add_argument("--count", type=int, help="stop after this many events (default: run on)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--drift-agent", help="agent whose feature drifts (e.g. agent-1)")
    p.add_argument("--drift-feature", default="response_latency_ms", choices=DEFAULT_FEATURES)
    p.add_argument("--drift-kind", default="shift", choices=DRIFT_KINDS)
    p.add_argument("--drift-magnitude", type=float, default=0.3, help="relative size (0.3=30%%)")
    p.add_argument("--drift-at", type=float, default=60.0, help="seconds after start")
    p.add_argument(
        "--invalid-every",
        type=int,
        default=0,
        metavar="N",
        help="also send a malformed message every N events",
    )
    p.add_argument("--start-ms", type=int, help="timestamp of the first event (default: now)")
    p.add_argument(
        "--format",
        default="json",
        choices=("json", "otlp_proto", "otlp_json"),
        help="json: flat events keyed by agent; otlp_*: OpenTelemetry GenAI spans in export "
        "requests with nil keys, as the Collector's Kafka exporter writes them",
    )
    genai.add_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if args.format != "json":
        if args.output and args.format == "otlp_proto":
            raise DriftwatchError("--output writes JSON lines: use --format otlp_json with it")
        send, close = _sink(args)
        try:
            return genai.run(args, send)
        except ValueError as exc:
            raise DriftwatchError(str(exc)) from None
        finally:
            close()
    if args.rate < 0 or args.agents < 1 or (args.count is not None and args.count < 0):
        raise DriftwatchError("--rate must be >= 0, --agents >= 1 and --count >= 0")
    rate = args.rate or 10_000.0  # unpaced runs still get plausible timestamps
    drift = None
    if args.drift_agent:
        drift = DriftSpec(
            args.drift_agent,
            args.drift_feature,
            args.drift_kind,
            args.drift_magnitude,
            start_event=int(args.drift_at * rate),
        )
    try:
        sim = TelemetrySimulator(args.agents, seed=args.seed, drift=drift)
    except ValueError as exc:
        raise DriftwatchError(str(exc)) from None
    start_ms = args.start_ms if args.start_ms is not None else int(time.time() * 1000)
    step_ms = 1000.0 / rate
    send, close = _sink(args)
    started = time.monotonic()
    last_report = started
    i = 0
    try:
        while args.count is None or i < args.count:
            ev = sim.event(int(start_ms + i * step_ms))
            send(ev["agent_id"].encode(), orjson.dumps(ev))
            i += 1
            if args.invalid_every and i % args.invalid_every == 0:
                send(b"agent-0", INVALID_SAMPLES[(i // args.invalid_every) % len(INVALID_SAMPLES)])
            if args.rate:
                ahead = i / args.rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            now = time.monotonic()
            if now - last_report >= 5:
                last_report = now
                drifting = drift is not None and i >= drift.start_event
                print(
                    f"simulate: {i} events sent ({i / (now - started):.0f}/s)"
                    + (
                        f"; {drift.agent_id}.{drift.feature} drifting" if drifting and drift else ""
                    ),
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        close()
    print(f"simulate: done, {i} events", file=sys.stderr)
    return 0


def _sink(args: argparse.Namespace) -> tuple[Any, Any]:
    if args.output:
        fh = Path(args.output).open("wb")  # noqa: SIM115 - closed by the returned closer

        def write(key: bytes | None, value: bytes) -> None:
            fh.write(value + b"\n")

        return write, fh.close
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    settings = client_settings(args)
    try:
        producer = KafkaProducer(
            **kafka_client_config(settings),
            acks="all",
            linger_ms=20,
            retries=5,
        )
    except KafkaError as exc:
        raise DriftwatchError(
            f"cannot reach Kafka at {settings.bootstrap_servers}: {exc}"
        ) from None

    def send(key: bytes | None, value: bytes) -> None:
        producer.send(args.topic, key=key, value=value)

    def close() -> None:
        producer.flush(timeout=30)
        producer.close(timeout=10)

    return send, close
