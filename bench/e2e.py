"""End-to-end throughput: raw aiokafka consumption vs the driftwatch worker, same messages.

Produces N telemetry messages (4 features, A agents, keyed by agent) to a fresh topic on a
local Kafka broker, then measures in the same run:

(a) raw consumption: an ``AIOKafkaConsumer`` reading every message from the beginning;
(b) the worker: ``driftwatch worker`` (a separate process, default settings unless given)
    consuming the same topic; its progress is read from ``/metrics``.

Usage::

    .venv/bin/python bench/e2e.py [--messages 1000000] [--agents 100] [--bootstrap HOST:PORT]

Without ``--bootstrap`` a broker is started with tests/support/kafka_local.py and stopped at
the end; the worker's log is kept in ``var/bench-logs/``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

from stream.tools.simulation import TelemetrySimulator  # noqa: E402
from tests.support import pipeline  # noqa: E402
from tests.support.broker import broker_or, create_topic  # noqa: E402
from tests.support.pipeline import START_MS, telemetry_records  # noqa: E402
from tests.support.worker import bench_topics, bench_worker  # noqa: E402


def produce(bootstrap: str, topic: str, messages: int, agents: int) -> float:
    create_topic(bootstrap, topic, 6)
    sim = TelemetrySimulator(agents, seed=1)
    started = time.perf_counter()
    pipeline.produce(
        topic,
        telemetry_records(sim.events(messages, start_ms=START_MS, step_ms=1.0)),
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        batch_size=512 * 1024,
        compression_type=None,
    )
    return time.perf_counter() - started


async def raw_consume(bootstrap: str, topic: str, messages: int) -> float:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"raw-{time.time_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen = 0
    started = None
    try:
        while seen < messages:
            batch = await consumer.getmany(timeout_ms=1000, max_records=10_000)
            for records in batch.values():
                if started is None:
                    started = time.perf_counter()
                seen += len(records)
    finally:
        await consumer.stop()
    assert started is not None
    return time.perf_counter() - started


def worker_consume(
    bootstrap: str, topic: str, messages: int, extra: dict[str, str]
) -> tuple[float, float, list[tuple[float, float]]]:
    """(seconds from first to last message, seconds for the second half, progress samples)."""
    settings = {
        **bench_topics(topic),
        "log_level": "warning",
        **extra,
    }
    samples: list[tuple[float, float]] = []
    consumed = {"topic": topic}
    with bench_worker(bootstrap, topic, settings) as worker:
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError("worker exited:\n" + worker.log_tail(3000))
            try:
                done = worker.sample("driftwatch_events_consumed_total", consumed) or 0.0
            except OSError:
                done = 0.0
            samples.append((time.perf_counter(), done))
            if done >= messages:
                break
            time.sleep(0.25)
        else:
            raise RuntimeError("worker did not finish in 30 min")
    first = next(t for t, d in samples if d > 0)
    half = next(t for t, d in samples if d >= messages / 2)
    last = samples[-1][0]
    return last - first, last - half, samples


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--bootstrap", help="use this broker instead of starting one")
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra worker setting, e.g. --setting window_size=200",
    )
    args = p.parse_args(argv)
    extra = dict(item.partition("=")[::2] for item in args.setting)
    topic = f"bench-telemetry-{time.time_ns()}"
    with broker_or(args.bootstrap) as bootstrap:
        produce_s = produce(bootstrap, topic, args.messages, args.agents)
        raw_s = asyncio.run(raw_consume(bootstrap, topic, args.messages))
        worker_s, second_half_s, samples = worker_consume(bootstrap, topic, args.messages, extra)
    n = args.messages
    raw_rate = n / raw_s
    worker_rate = n / worker_s
    steady = (n / 2) / second_half_s
    rates = np.diff([d for _, d in samples]) / np.diff([t for t, _ in samples])
    print(f"driftwatch end-to-end benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(
        f"{n:,} messages, {args.agents} agents x 4 features, 6 partitions; settings: "
        f"{extra or 'defaults'}"
    )
    print(f"produced with kafka-python in {produce_s:.1f}s")
    print()
    rows = [
        ("(a) raw aiokafka consumption", raw_rate, 1.0),
        ("(b) worker, first to last message", worker_rate, worker_rate / raw_rate),
        ("(b) worker, second half (steady state)", steady, steady / raw_rate),
        ("(b) worker, median of 0.25 s samples", float(np.median(rates[rates > 0])), None),
    ]
    print(f"{'measure':44s} {'events/s':>10s} {'vs raw':>8s}")
    for label, rate, ratio in rows:
        print(f"{label:44s} {rate:10,.0f} " + ("" if ratio is None else f"{ratio:8.2f}"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
