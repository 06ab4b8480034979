"""Hostile input at scale: a million mixed messages through one ``driftwatch worker``.

The messages come from the generator of the hostile-input integration test
(tests/integration/hostile.py), in the same kinds and the same proportions, scaled from its
6,000 to ``--messages`` (1,000,000): bad JSON, non-UTF-8 bytes, NaN/Infinity literals, numbers
beyond float range, wrong types, missing keys and features, unknown and duplicate fields, bad
timestamps, empty values and tombstones, values at and over ``max_message_bytes`` and
``--one-mb`` (9) payloads of ~1 MB, among valid telemetry. Only the largest kinds are not
scaled, to keep the topic a sane size: at most ``--max-oversized`` (240) oversized messages
(70-200 KB) and ``--max-boundary`` (240) messages padded to 64 KB. Each message carries the
oracle's verdict (valid, or its dead-letter reason), written from the documented rules.

The messages are produced first (to a 4-partition topic whose ``max.message.bytes`` is 2 MiB,
as in the test), then one worker process (default settings; ``--setting`` to change) consumes
them; the benchmark waits until ``driftwatch_events_consumed_total`` reaches the number produced
and then reconciles, per reason:

* oracle: what the generator made;
* ``/metrics``: ``driftwatch_invalid_events_total{reason}``,
  ``driftwatch_observations_total{feature}`` for the valid ones (every feature a valid message
  has reaches its detector; ``accuracy`` counts the labelled ones),
  ``driftwatch_missing_features_total{feature}`` (the features valid messages lack) and
  ``driftwatch_skipped_total{reason}`` (messages without the key or any feature: skipped, not
  dead-lettered);
* dead-letter topic, read back with a consumer: records by their ``driftwatch-reason`` header,
  each traced through ``driftwatch-source`` to the message it came from, which must be invalid
  with that same reason, dead-lettered once, with its key and (first 960,000) bytes unchanged
  (checked by CRC-32).

valid + skipped + dead-lettered must equal produced, with no mismatch on any line; the worker
must still be the same running process with no crashed or restarted agent in its log. The table
also gives the wall time and rate of the worker and its peak RSS (VmHWM). Exit status 1 on any
mismatch.

Usage::

    .venv/bin/python bench/fuzz.py [--messages 1000000] [--bootstrap HOST:PORT] [--seed N]

Without ``--bootstrap`` a broker is started with tests/support/kafka_local.py. The broker and the
worker are stopped on exit, on Ctrl-C and on SIGTERM; the worker's log is kept in
``var/bench-logs/``.
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != REPO / "bench"]
sys.path.insert(0, str(REPO))

from stream.monitoring.processor import DEAD_LETTER_MAX_BYTES  # noqa: E402
from tests.integration.hostile import (  # noqa: E402
    FEATURES,
    MAX_BYTES,
    MIX,
    MIX_TOTAL,
    TOPIC_MAX_BYTES,
    Generator,
)
from tests.support.broker import broker_or, create_topic  # noqa: E402
from tests.support.worker import bench_worker, by_label, terminate_on_sigterm  # noqa: E402

PARTITIONS = 4
VALID = 0
REASONS = (
    "oversized",
    "invalid_json",
    "not_an_object",
    "bad_key",
    "non_numeric",
    "non_finite",
    "bad_timestamp",
    "processing_error",
)
CODE = {reason: i + 1 for i, reason in enumerate(REASONS)}
#: ledger code of a message the worker must skip (never dead-letter)
SKIPPED = 200
SKIP_REASONS = ("missing_key", "no_features")
UNSENT = 255


def fingerprint(key: bytes | None, value: bytes | None) -> int:
    """CRC-32 of what the dead letter must carry: the key and the first bytes of the value."""
    head = b"N" if key is None else b"K" + key + b"\0"
    return zlib.crc32((value or b"")[:DEAD_LETTER_MAX_BYTES], zlib.crc32(head))


class Ledger:
    """What was produced where: per partition and offset, the oracle's verdict and fingerprint
    (a byte and four bytes a message, so a million fit in a few MB)."""

    def __init__(self, capacity: int) -> None:
        self.codes = [bytearray([UNSENT]) * capacity for _ in range(PARTITIONS)]
        self.prints = [array("I", bytes(4 * capacity)) for _ in range(PARTITIONS)]
        self.delivered = 0
        self.failed: list[str] = []

    def record(self, code: int, crc: int, md: object) -> None:
        partition, offset = md.partition, md.offset  # type: ignore[attr-defined]
        self.codes[partition][offset] = code
        self.prints[partition][offset] = crc
        self.delivered += 1

    def fail(self, exc: BaseException) -> None:
        self.failed.append(repr(exc))


def scaled_mix(total: int, max_oversized: int, max_boundary: int) -> dict[str, int]:
    mix = {kind: round(count * total / MIX_TOTAL) for kind, count in MIX.items()}
    mix["oversized"] = min(mix["oversized"], max_oversized)
    mix["boundary"] = min(mix["boundary"], max_boundary)
    return mix


@dataclass
class Oracle:
    """What the generator made: dead-letter reasons, skip reasons, kinds, missing features."""

    reasons: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    missing: Counter[str] = field(default_factory=Counter)


def produce(
    bootstrap: str, topic: str, total: int, mix: dict[str, int], one_mb: int, seed: int
) -> tuple[Ledger, Oracle, int, int, float]:
    """Send the messages; return the ledger, the oracle's counts, the number of valid and of
    labelled messages, and the seconds it took."""
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
        max_request_size=TOPIC_MAX_BYTES,
    )
    ledger = Ledger(total)
    oracle = Oracle()
    reasons, kinds = oracle.reasons, oracle.kinds
    valid = labelled = 0
    started = time.perf_counter()
    try:
        for i, m in enumerate(Generator(seed).stream(total, mix, one_mb)):
            kinds[m.kind] += 1
            reason = m.expected.reason
            if m.expected.skipped is not None:
                oracle.skipped[m.expected.skipped] += 1
                code = SKIPPED
            elif reason is None:
                valid += 1
                labelled += m.expected.labelled
                oracle.missing.update(m.expected.missing)
                code = VALID
            else:
                reasons[reason] += 1
                code = CODE[reason]
            crc = fingerprint(m.key, m.value)
            future = producer.send(topic, key=m.key, value=m.value)
            future.add_callback(ledger.record, code, crc)
            future.add_errback(ledger.fail)
            if (i + 1) % 100_000 == 0:
                print(
                    f"  produced {i + 1:,} in {time.perf_counter() - started:.0f}s",
                    file=sys.stderr,
                    flush=True,
                )
        producer.flush(timeout=300)
    finally:
        producer.close(timeout=30)
    return ledger, oracle, valid, labelled, time.perf_counter() - started


def read_dead_letters(
    bootstrap: str, topic: str, expected: int, ledger: Ledger, source_topic: str, timeout: float
) -> tuple[Counter[str], Counter[str], int]:
    """Read the dead-letter topic once its end offsets add up to ``expected`` (or on timeout).
    Return records by header reason, problems found by kind, and the number of records."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=5000,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    by_reason: Counter[str] = Counter()
    problems: Counter[str] = Counter()
    seen = [bytearray(len(codes)) for codes in ledger.codes]
    records = 0
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        deadline = time.monotonic() + timeout
        while sum(consumer.end_offsets(partitions).values()) < expected:
            if time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        end = sum(consumer.end_offsets(partitions).values())
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        while records < end:
            batch = consumer.poll(timeout_ms=5000, max_records=10_000)
            if not batch:
                problems["dead-letter topic ended early"] += 1
                break
            for part in batch.values():
                for record in part:
                    records += 1
                    headers = dict(record.headers)
                    reason = headers.get("driftwatch-reason", b"?").decode()
                    by_reason[reason] += 1
                    src_topic, partition, offset = (
                        headers.get("driftwatch-source", b"?/-1/-1").decode().rsplit("/", 2)
                    )
                    p, o = int(partition), int(offset)
                    if src_topic != source_topic or not (
                        0 <= p < PARTITIONS and 0 <= o < len(ledger.codes[p])
                    ):
                        problems["source unknown"] += 1
                        continue
                    if seen[p][o]:
                        problems["dead-lettered twice"] += 1
                    seen[p][o] = 1
                    code = ledger.codes[p][o]
                    if code != CODE.get(reason):
                        problems[
                            "valid message dead-lettered"
                            if code == VALID
                            else "skipped message dead-lettered"
                            if code == SKIPPED
                            else "reason differs from the oracle"
                        ] += 1
                    if fingerprint(record.key, record.value) != ledger.prints[p][o]:
                        problems["key or bytes changed"] += 1
    finally:
        consumer.close()
    return by_reason, problems, records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--messages", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=20_261_124)
    p.add_argument("--one-mb", type=int, default=9, help="messages of ~1 MB")
    p.add_argument("--max-oversized", type=int, default=240)
    p.add_argument("--max-boundary", type=int, default=240)
    p.add_argument(
        "--stall-seconds",
        type=float,
        default=300.0,
        help="give up if the worker consumes nothing for this long",
    )
    p.add_argument("--bootstrap", help="use this broker instead of starting one")
    p.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="worker setting, e.g. --setting batch_size=1000",
    )
    args = p.parse_args(argv)
    terminate_on_sigterm()
    extra = dict(item.partition("=")[::2] for item in args.setting)
    n = args.messages
    mix = scaled_mix(n, args.max_oversized, args.max_boundary)
    topic = f"fuzz-telemetry-{time.time_ns()}"
    dlq = f"{topic}-dlq"
    settings = {
        "telemetry_topic": topic,
        "drift_topic": f"{topic}-drift",
        "dead_letter_topic": dlq,
        "control_topic": f"{topic}-control",
        "app_id": f"fuzz-{topic}",
        "max_message_bytes": str(MAX_BYTES),
        **extra,
    }
    started_at = time.gmtime()
    failures: list[str] = []
    with broker_or(args.bootstrap) as bootstrap:
        big = {"max.message.bytes": str(TOPIC_MAX_BYTES)}
        create_topic(bootstrap, topic, PARTITIONS, big)
        create_topic(bootstrap, dlq, 2, big)
        create_topic(bootstrap, settings["drift_topic"], 2)
        print(f"producing {n:,} messages to {topic}", file=sys.stderr, flush=True)
        ledger, oracle, valid, labelled, produce_s = produce(
            bootstrap, topic, n, mix, args.one_mb, args.seed
        )
        reasons, kinds = oracle.reasons, oracle.kinds
        produced = ledger.delivered
        if ledger.failed or produced != n:
            failures.append(f"{n - produced:,} not delivered: {ledger.failed[:3]}")
        invalid = sum(reasons.values())
        print(f"produced in {produce_s:.0f}s; starting the worker", file=sys.stderr, flush=True)

        with bench_worker(bootstrap, topic, settings) as worker:
            pid = worker.pid
            t_start = time.monotonic()
            t_first = None
            consumed = 0.0
            last_progress = next_print = time.monotonic()
            while True:
                if not worker.alive():
                    failures.append(f"worker died (exit {worker.proc.returncode})")
                    break
                m = worker.metrics()
                consumed_now = by_label(m, "driftwatch_events_consumed_total", "topic").get(
                    topic, 0.0
                )
                t = time.monotonic()
                if consumed_now > consumed:
                    consumed, last_progress = consumed_now, t
                    if t_first is None:
                        t_first = t
                if consumed_now >= produced:
                    break
                if t - last_progress > args.stall_seconds:
                    failures.append(f"no progress for {args.stall_seconds:g}s at {consumed:,.0f}")
                    break
                if t >= next_print:
                    print(f"  consumed {consumed:,.0f}", file=sys.stderr, flush=True)
                    next_print += 30
                time.sleep(0.5 if consumed < produced * 0.99 else 0.1)
            t_done = time.monotonic()
            alive = worker.alive()
            if alive:
                metrics = worker.metrics()
                peak = worker.peak_mib()
                rss = worker.rss_mib()
                dead_by_reason, problems, dead = read_dead_letters(
                    bootstrap, dlq, invalid, ledger, topic, timeout=120
                )
                crashes = worker.crashes()
                alive = worker.alive()  # still up after everything was read back
            if not alive:
                failures.append("the worker is not running at the end")

    if not alive:
        print("\n".join(failures))
        return 1

    # ------------------------------------------------------------------ report
    counted = by_label(metrics, "driftwatch_invalid_events_total", "reason")
    observed = by_label(metrics, "driftwatch_observations_total", "feature")
    processed = {f: observed.get(f, 0.0) for f in FEATURES}
    accuracy = observed.get("accuracy", 0.0)
    wall = t_done - (t_first if t_first is not None else t_start)
    rate = produced / wall if wall > 0 else float("nan")

    print(f"driftwatch hostile-input benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', started_at)}")
    print(
        f"{n:,} messages (seed {args.seed}), {PARTITIONS} partitions, max_message_bytes "
        f"{MAX_BYTES:,}; worker settings: {extra or 'defaults'}"
    )
    print(
        "kinds: "
        + ", ".join(
            f"{kind} {count:,}" for kind, count in sorted(kinds.items(), key=lambda x: -x[1])
        )
    )
    print()
    print(f"{'':28s} {'oracle':>10s} {'/metrics':>10s} {'DLQ topic':>10s} {'mismatch':>9s}")
    mismatch_total = 0
    for reason in REASONS:
        want = reasons.get(reason, 0)
        got_m = int(counted.get(reason, 0))
        got_d = dead_by_reason.get(reason, 0)
        if want == got_m == got_d == 0:
            continue
        mismatch = abs(got_m - want) + abs(got_d - want)
        mismatch_total += mismatch
        print(f"invalid: {reason:19s} {want:10,} {got_m:10,} {got_d:10,} {mismatch:9,}")
    others = {r: c for r, c in dead_by_reason.items() if r not in CODE}
    for reason, c in sorted(others.items()):
        mismatch_total += c
        print(f"invalid: {reason[:19]:19s} {0:10,} {'':>10s} {c:10,} {c:9,}")
    metric_invalid = int(sum(counted.values()))
    print(
        f"{'dead-lettered':28s} {invalid:10,} {metric_invalid:10,} {dead:10,} "
        f"{abs(metric_invalid - invalid) + abs(dead - invalid):9,}"
    )
    absent = by_label(metrics, "driftwatch_missing_features_total", "feature")
    for feature in FEATURES:
        want = valid - oracle.missing[feature]
        mm = abs(int(processed[feature]) - want)
        mismatch_total += mm
        print(
            f"{'valid: ' + feature:28s} {want:10,} {int(processed[feature]):10,} {'':>10s} {mm:9,}"
        )
        want, got = oracle.missing[feature], int(absent.get(feature, 0))
        mismatch_total += abs(got - want)
        print(f"{'missing: ' + feature:28s} {want:10,} {got:10,} {'':>10s} {abs(got - want):9,}")
    skipped_m = by_label(metrics, "driftwatch_skipped_total", "reason")
    for reason in SKIP_REASONS:
        want, got = oracle.skipped[reason], int(skipped_m.get(reason, 0))
        mismatch_total += abs(got - want)
        print(f"{'skipped: ' + reason:28s} {want:10,} {got:10,} {'':>10s} {abs(got - want):9,}")
    mm = abs(int(accuracy) - labelled)
    mismatch_total += mm
    print(f"{'labelled: accuracy':28s} {labelled:10,} {int(accuracy):10,} {'':>10s} {mm:9,}")
    total_consumed = int(consumed)
    mm = abs(total_consumed - produced)
    mismatch_total += mm
    print(f"{'consumed':28s} {produced:10,} {total_consumed:10,} {'':>10s} {mm:9,}")
    # valid events as the worker saw them: the first feature's observations plus its misses
    seen_valid = int(processed[FEATURES[0]] + absent.get(FEATURES[0], 0))
    reconciled = seen_valid + int(sum(skipped_m.values())) + dead
    mm = abs(reconciled - produced)
    mismatch_total += mm
    print(f"{'valid+skipped+dead=produced':28s} {produced:10,} {reconciled:10,} {'':>10s} {mm:9,}")
    for problem, c in sorted(problems.items()):
        mismatch_total += c
        print(f"{'DLQ: ' + problem:60s} {c:9,}")
    print()
    print(
        f"produced {produced:,} ({valid:,} valid, {sum(oracle.skipped.values()):,} to skip, "
        f"{invalid:,} invalid) in {produce_s:.0f}s; "
        f"worker pid {pid}: first to last message {wall:.1f}s = {rate:,.0f} events/s"
    )
    print(
        f"worker RSS peak (VmHWM) {peak:.1f} MiB, at the end {rss:.1f} MiB; still running: yes; "
        f"restarts 0 (same process); crash/restart lines in its log: {crashes}"
    )
    failed = bool(failures) or mismatch_total != 0 or crashes != 0
    for failure in failures:
        print(f"failure: {failure}")
    print(f"mismatch total: {mismatch_total:,}; RESULT: {'FAIL' if failed else 'pass'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
