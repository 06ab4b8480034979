"""A flood of new agent ids on the real worker: throughput, memory, checkpoint rounds, rejoins.

Produces to a fresh 6-partition topic on a local Kafka broker, in this order:

1. the *steady* part: ``--steady`` events of ``--agents`` hot agents (the simulator's);
2. the *flood* part: the same hot workload, and between every two hot events one event of a
   new agent id: ``--flood-keys`` distinct ids, each seen ``--repeats`` times (an id's events
   come close together, within blocks of 1,000 new ids).

Then runs ``driftwatch worker`` (a separate process) at the project's default settings except
the topics, reads its ``/metrics`` every 0.5 s (events consumed, evictions, tracked streams,
batch latency) and its RSS, and from its log the checkpoint rounds (keys, bytes, duration and
the longest stretch the round kept the event loop) and the group (re)assignments. It prints the
steady and the flood consumption rates and their ratio, RSS over time, the longest event-loop
hold of a checkpoint round and the number of group rejoins. The steady rate is taken between
60 % and 95 % of the steady part (after the hot agents' warm-up), the flood rate between 10 %
and 95 % of the flood part.

Usage::

    nice -n 5 .venv/bin/python bench/key_flood.py [--flood-keys 1000000] [--repeats 3]
        [--agents 100] [--steady 300000] [--bootstrap HOST:PORT]
"""

from __future__ import annotations

import argparse
import contextlib
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

from stream.tools.simulation import TelemetrySimulator  # noqa: E402
from tests.support import pipeline  # noqa: E402
from tests.support.broker import broker_or, create_topic  # noqa: E402
from tests.support.pipeline import START_MS  # noqa: E402
from tests.support.worker import RunningWorker, bench_topics, bench_worker, total  # noqa: E402

PARTITIONS = 6
BLOCK = 1_000  # new ids whose events are mixed together
ROUND_LINE = re.compile(
    r"checkpoint round of (\d+) partitions: (\d+) keys, (\d+) tombstones, (\d+) bytes "
    r"in ([0-9.]+)s \(event loop held at most ([0-9.]+)s\)"
)


def workload(steady: int, agents: int, flood_keys: int, repeats: int) -> Iterator[bytes]:
    """Every message's (key, value): the steady part, then hot events mixed with the flood."""
    sim = TelemetrySimulator(agents, seed=1)
    rng = np.random.default_rng(7)
    ts = START_MS
    for _ in range(steady):
        ts += 1
        yield msgspec.json.encode(sim.event(ts))
    for start in range(0, flood_keys, BLOCK):
        ids = np.repeat(np.arange(start, min(start + BLOCK, flood_keys)), repeats)
        rng.shuffle(ids)
        for i in ids:
            ts += 1
            yield msgspec.json.encode(sim.event(ts))
            ts += 1
            ev = sim.event(ts)
            ev["agent_id"] = f"flood-{i}"
            yield msgspec.json.encode(ev)


def produce(bootstrap: str, topic: str, args: argparse.Namespace) -> tuple[int, float]:
    create_topic(bootstrap, topic, PARTITIONS)
    started = time.perf_counter()

    def records() -> Iterator[tuple[bytes, bytes]]:
        for value in workload(args.steady, args.agents, args.flood_keys, args.repeats):
            yield msgspec.json.decode(value)["agent_id"].encode(), value

    sent = pipeline.produce(
        topic,
        records(),
        bootstrap_servers=bootstrap,
        acks=1,
        linger_ms=50,
        batch_size=512 * 1024,
        compression_type=None,
    )
    return sent, time.perf_counter() - started


class Sample:
    def __init__(self, worker: RunningWorker, topic: str) -> None:
        m = worker.metrics()
        self.t = time.perf_counter()
        self.consumed = sum(
            v
            for (n, labs), v in m.items()
            if n == "driftwatch_events_consumed_total" and dict(labs).get("topic") == topic
        )
        self.evictions = total(m, "driftwatch_key_evictions_total")
        self.streams = total(m, "driftwatch_tracked_streams")
        self.batches = total(m, "driftwatch_processing_latency_seconds_count")
        self.batch_s = total(m, "driftwatch_processing_latency_seconds_sum")
        self.rss = worker.rss_mib()
        # streams with a calibrated ERT (series up to max_metric_keys), calibrations queued
        self.testing = sum(1 for (n, _) in m if n == "driftwatch_stream_ert")
        self.pending = total(m, "driftwatch_calibrations_pending")


def run(bootstrap: str, topic: str, expected: int, timeout: float) -> tuple[list[Sample], str]:
    settings = {
        **bench_topics(topic),
    }
    samples: list[Sample] = []
    with bench_worker(bootstrap, topic, settings) as worker:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not worker.alive():
                raise RuntimeError("worker exited:\n" + worker.log_tail(3000))
            with contextlib.suppress(OSError):
                samples.append(Sample(worker, topic))
            if samples and samples[-1].consumed >= expected:
                break
            time.sleep(0.5)
        else:
            print(f"timed out after {timeout:.0f}s", file=sys.stderr)
        peak = worker.peak_mib()
        log = worker.log.read_text(errors="replace")
    return samples, log + f"\n#peak {peak:.1f}\n"


def rate_between(samples: list[Sample], lo: float, hi: float) -> tuple[float, Sample, Sample]:
    """Events/s between the samples that first pass ``lo`` and ``hi`` events consumed."""
    a = next(s for s in samples if s.consumed >= lo)
    b = next((s for s in samples if s.consumed >= hi), samples[-1])
    return (b.consumed - a.consumed) / max(b.t - a.t, 1e-9), a, b


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--flood-keys", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--agents", type=int, default=100)
    p.add_argument("--steady", type=int, default=300_000)
    p.add_argument("--timeout", type=float, default=3600.0)
    p.add_argument("--bootstrap", help="use this broker instead of starting one")
    args = p.parse_args(argv)
    topic = f"bench-flood-{time.time_ns()}"
    flood_events = 2 * args.flood_keys * args.repeats
    with broker_or(args.bootstrap) as bootstrap:
        sent, produce_s = produce(bootstrap, topic, args)
        began = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        samples, log = run(bootstrap, topic, sent, args.timeout)
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    steady_rate, s0, s1 = rate_between(samples, 0.6 * args.steady, 0.95 * args.steady)
    flood_rate, f0, f1 = rate_between(
        samples, args.steady + 0.1 * flood_events, args.steady + 0.95 * flood_events
    )
    rounds = [tuple(float(x) for x in m.groups()) for m in ROUND_LINE.finditer(log)]
    assigned = len(re.findall(r"assigned partitions \[", log))
    expiries = len(re.findall(r"(?i)session (?:has )?expired|heartbeat session expired", log))
    peak = float(re.search(r"#peak ([0-9.]+)", log).group(1))  # type: ignore[union-attr]

    print(f"driftwatch key flood benchmark, run started {began}; load average {' '.join(load)}")
    print(
        f"{sent:,} messages ({args.steady:,} steady of {args.agents} hot agents, then "
        f"{flood_events // 2:,} hot + {flood_events // 2:,} flood events of "
        f"{args.flood_keys:,} new ids x {args.repeats}), {PARTITIONS} partitions; "
        f"worker at default settings (topics aside); produced in {produce_s:.0f}s"
    )
    print()
    print(
        f"{'part':8s} {'events/s':>10s} {'streams':>9s} {'testing':>8s} {'pending':>8s} "
        f"{'evictions':>10s} {'batch s':>8s}"
    )
    for name, rate, a, b in (("steady", steady_rate, s0, s1), ("flood", flood_rate, f0, f1)):
        batches = b.batches - a.batches
        batch_s = (b.batch_s - a.batch_s) / batches if batches else float("nan")
        print(
            f"{name:8s} {rate:10,.0f} {b.streams:9,.0f} {b.testing:8,d} {b.pending:8,.0f} "
            f"{b.evictions:10,.0f} {batch_s:8.3f}"
        )
    print(f"flood / steady: {flood_rate / steady_rate:.2f}")
    print()
    print("RSS over time:")
    step = max(1, len(samples) // 12)
    t0 = samples[0].t
    for s in [*samples[::step], samples[-1]]:
        print(
            f"  {s.t - t0:7.1f}s  consumed {s.consumed:11,.0f}  evictions {s.evictions:9,.0f}"
            f"  RSS {s.rss:7.1f} MiB"
        )
    print(f"  peak RSS (VmHWM) {peak:.1f} MiB")
    print()
    if rounds:
        durations = [r[4] for r in rounds]
        held = [r[5] for r in rounds]
        sizes = [r[3] for r in rounds]
        keys = [r[1] for r in rounds]
        print(
            f"checkpoint rounds: {len(rounds)}; duration median {np.median(durations):.2f}s "
            f"max {max(durations):.2f}s; keys median {np.median(keys):,.0f} max {max(keys):,.0f}; "
            f"bytes max {max(sizes) / 1e6:.1f} MB"
        )
        print(f"longest event-loop hold by a checkpoint round: {max(held) * 1000:.0f} ms")
    else:
        print("checkpoint rounds: none logged")
    print(
        f"group assignments: {assigned} (rejoins: {max(assigned - 1, 0)}); "
        f"session expiries logged: {expiries}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
