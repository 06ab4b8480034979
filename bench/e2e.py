"""End-to-end throughput: raw aiokafka consumption vs the driftwatch worker, same messages.

Produces N telemetry messages (4 features, A agents, keyed by agent) to a fresh topic on a
local Kafka broker, then measures in the same run:

(a) raw consumption: an ``AIOKafkaConsumer`` reading every message from the beginning;
(b) the worker: ``driftwatch worker`` (a separate process, default settings unless given)
    consuming the same topic; its progress is read from ``/metrics``.

Usage::

    .venv/bin/python bench/e2e.py [--messages 1000000] [--agents 100] [--bootstrap HOST:PORT]

Without ``--bootstrap`` a broker is started with scripts/kafka_local.py and stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
import orjson

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

from stream.tools.simulation import TelemetrySimulator  # noqa: E402


def _kafka_local() -> Any:
    spec = importlib.util.spec_from_file_location("kafka_local", REPO / "scripts/kafka_local.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["kafka_local"] = module
    spec.loader.exec_module(module)
    return module


def produce(bootstrap: str, topic: str, messages: int, agents: int) -> float:
    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])
    admin.close()
    sim = TelemetrySimulator(agents, seed=1)
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        batch_size=512 * 1024,
        compression_type=None,
    )
    started = time.perf_counter()
    for ev in sim.events(messages, start_ms=1_779_350_400_000, step_ms=1.0):
        producer.send(topic, key=ev["agent_id"].encode(), value=orjson.dumps(ev))
    producer.flush()
    producer.close()
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


def _scrape(port: int) -> float:
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith("driftwatch_events_consumed_total{"):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def worker_consume(
    bootstrap: str, topic: str, messages: int, env_extra: dict[str, str]
) -> tuple[float, float, list[tuple[float, float]]]:
    """(seconds from first to last message, seconds for the second half, progress samples)."""
    port = 19464 + os.getpid() % 1000
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTWATCH_")}
        env.update(
            {
                "DRIFTWATCH_BOOTSTRAP_SERVERS": bootstrap,
                "DRIFTWATCH_TELEMETRY_TOPIC": topic,
                "DRIFTWATCH_DRIFT_TOPIC": f"{topic}-drift",
                "DRIFTWATCH_DEAD_LETTER_TOPIC": f"{topic}-dlq",
                "DRIFTWATCH_CONTROL_TOPIC": f"{topic}-control",
                "DRIFTWATCH_APP_ID": f"bench-{topic}",
                "DRIFTWATCH_METRICS_PORT": str(port),
                "DRIFTWATCH_METRICS_HOST": "127.0.0.1",
                "DRIFTWATCH_DATA_DIR": tmp,
                "DRIFTWATCH_LOG_LEVEL": "warning",
                **env_extra,
            }
        )
        log = Path(tmp) / "worker.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [str(Path(sys.executable).with_name("driftwatch")), "worker"],
                env=env,
                cwd=tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        samples: list[tuple[float, float]] = []
        try:
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    raise RuntimeError("worker exited:\n" + log.read_text()[-3000:])
                try:
                    done = _scrape(port)
                except OSError:
                    done = 0.0
                samples.append((time.perf_counter(), done))
                if done >= messages:
                    break
                time.sleep(0.25)
            else:
                raise RuntimeError("worker did not finish in 30 min")
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
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
    extra = {}
    for item in args.setting:
        name, _, value = item.partition("=")
        extra[f"DRIFTWATCH_{name.upper()}"] = value
    broker = None
    bootstrap = args.bootstrap
    tmp = tempfile.mkdtemp(prefix="driftwatch-e2e-")
    if bootstrap is None:
        kafka_local = _kafka_local()
        kafka_local.fetch()
        broker = kafka_local.start(Path(tmp) / "kafka")
        bootstrap = broker.bootstrap
    topic = f"bench-telemetry-{time.time_ns()}"
    try:
        produce_s = produce(bootstrap, topic, args.messages, args.agents)
        raw_s = asyncio.run(raw_consume(bootstrap, topic, args.messages))
        worker_s, second_half_s, samples = worker_consume(bootstrap, topic, args.messages, extra)
    finally:
        if broker is not None:
            broker.stop()
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
