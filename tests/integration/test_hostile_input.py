"""Hostile input: thousands of malformed, extreme and oversized messages through the real worker.

Every message is built by a seeded generator together with a structured description of what it
holds, and :func:`classify` (an oracle written from the documented rules, not calling the
parser) says whether it is valid and, if not, its reason. The worker must account for each
message exactly: valid ones fed to the detectors, the others dead-lettered with their original
bytes and the oracle's reason, and the worker still running with no crashed agent.

The generator and the oracle (its rules are listed there) live in tests/integration/hostile.py,
shared with bench/fuzz.py, which runs the same kinds of message at a million.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections import Counter
from pathlib import Path
from typing import Any

from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from stream.monitoring.processor import DEAD_LETTER_MAX_BYTES
from tests.integration.hostile import (
    FEATURES,
    LAST_SECOND_MS,
    MAX_BYTES,
    ONE_MB_PAYLOAD,
    TOPIC_MAX_BYTES,
    Doc,
    Expected,
    Generator,
    Lit,
    Message,
    classify,
    dump,
    encode,
)
from tests.support.broker import KafkaBroker, TopicFactory
from tests.support.pipeline import read_topic
from tests.support.worker import RunningWorker, run_worker, wait_for

SEED = 20_261_124
TOTAL = 6_000


def test_the_oracle_on_hand_picked_cases() -> None:
    gen = Generator(1)
    good = gen.event()
    cases: list[tuple[Any, str | None]] = [
        (good, None),
        (good.set("token_count", 10**30), None),
        (good.set("token_count", Lit("1e400", None)), "invalid_json"),
        (good.add("x", [Lit("NaN", None)]), "invalid_json"),
        (good.add("x", [Lit("1e400", None)]), None),  # a field nobody reads: syntax only
        (good.set("ts", Lit("1" + "0" * 400, None)), "invalid_json"),
        (good.set("token_count", True), "non_numeric"),
        (good.add("token_count", None), None),  # sparse: valid, token_count missing
        (good.set("token_count", None).add("token_count", 5), None),
        (good.set("agent_id", 7), None),
        (good.set("agent_id", 2**64 - 1), None),
        (good.set("agent_id", 2**64), "bad_key"),  # read as a float: distinct ids would collapse
        (good.set("agent_id", 1.5), "bad_key"),
        (good.set("agent_id", ""), None),  # skipped (missing_key), not dead-lettered
        (good.drop("agent_id").set("token_count", "x"), None),
        (good.set("ts", LAST_SECOND_MS + 1000), "bad_timestamp"),
        (good.drop("ts"), None),
        ([good], "not_an_object"),
    ]
    for content, reason in cases:
        assert classify(encode(content), content, None).reason == reason, dump(content)[:200]
    assert classify(None, None, None).reason == "invalid_json"
    assert classify(b"x" * (MAX_BYTES + 1), None, "invalid_json").reason == "oversized"
    labelled = classify(encode(good.set("true_label", None)), good.set("true_label", None), None)
    assert labelled == Expected(None, labelled=False)
    no_key = good.set("agent_id", "")
    assert classify(encode(no_key), no_key, None) == Expected(None, skipped="missing_key")
    sparse = good.add("token_count", None)
    assert classify(encode(sparse), sparse, None).missing == ("token_count",)
    bare = Doc([(k, v) for k, v in good.pairs if k not in FEATURES])
    assert classify(encode(bare), bare, None) == Expected(None, skipped="no_features")


# ---------------------------------------------------------------------------- the test


def sample(worker: RunningWorker, name: str, labels: dict[str, str] | None = None) -> float:
    value = worker.sample(name, labels)
    return 0.0 if value is None else value


def total(worker: RunningWorker, name: str) -> float:
    """The sum of every sample called ``name``."""
    return sum(
        s.value
        for family in text_string_to_metric_families(worker.scrape())
        for s in family.samples
        if s.name == name
    )


def produce(bootstrap: str, topic: str, messages: list[Message]) -> list[tuple[int, int]]:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        linger_ms=10,
        max_request_size=TOPIC_MAX_BYTES,
    )
    try:
        futures = [producer.send(topic, key=m.key, value=m.value) for m in messages]
        producer.flush(timeout=60)
        return [(md.partition, md.offset) for md in (f.get(timeout=60) for f in futures)]
    finally:
        producer.close()


def test_hostile_input_is_processed_or_dead_lettered_exactly(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    big = {"max.message.bytes": str(TOPIC_MAX_BYTES)}
    telemetry = topic_factory("hostile", partitions=4, configs=big)
    drift_topic = topic_factory("hostile-drift", partitions=1)
    dlq = topic_factory("hostile-dlq", partitions=2, configs=big)
    messages = Generator(SEED).build(TOTAL)
    reasons = Counter(m.expected.reason for m in messages if m.expected.reason is not None)
    valid = [m for m in messages if m.expected.valid]
    skipped = Counter(m.expected.skipped for m in messages if m.expected.skipped is not None)
    missing = Counter(f for m in valid for f in m.expected.missing)
    labelled = sum(m.expected.labelled for m in valid)
    # the mix really is hostile: every reason the JSON can produce, and plenty of valid data
    assert set(reasons) >= {
        "oversized",
        "invalid_json",
        "not_an_object",
        "bad_key",
        "non_numeric",
        "bad_timestamp",
    }
    assert set(skipped) == {"missing_key", "no_features"} and all(missing[f] for f in FEATURES)
    assert len(valid) > TOTAL // 2 and sum(reasons.values()) > TOTAL // 5
    assert sum(m.value is None for m in messages) > 0
    assert sum(m.value is not None and len(m.value) >= ONE_MB_PAYLOAD for m in messages) == 6

    where = produce(kafka_broker.bootstrap, telemetry, messages)
    by_source = dict(zip(where, messages, strict=True))

    settings = {
        "telemetry_topic": telemetry,
        "drift_topic": drift_topic,
        "dead_letter_topic": dlq,
        "app_id": f"driftwatch-{telemetry}",
        "window_size": 100,
        "reference_size": 200,
        "batch_size": 500,
        "max_message_bytes": MAX_BYTES,
    }
    with run_worker(kafka_broker.bootstrap, tmp_path, **settings) as worker:
        wait_for(
            lambda: (
                worker.sample("driftwatch_events_consumed_total", {"topic": telemetry}) == TOTAL
            ),
            60,
            f"{TOTAL} events consumed",
            worker,
        )
        dead = read_topic(kafka_broker.bootstrap, dlq, sum(reasons.values()), timeout=30)
        drift_total = total(worker, "driftwatch_drift_events_total")
        drift = read_topic(kafka_broker.bootstrap, drift_topic, int(drift_total), timeout=30)

        # valid: every value reached its detector; a missing one is counted, not an error
        for feature in FEATURES:
            observed = sample(worker, "driftwatch_observations_total", {"feature": feature})
            assert observed == len(valid) - missing[feature], feature
            absent = sample(worker, "driftwatch_missing_features_total", {"feature": feature})
            assert absent == missing[feature], feature
        # skipped (no key fields, or no feature): counted by reason, not dead-lettered
        for reason in ("missing_key", "no_features", "filtered"):
            counted = sample(worker, "driftwatch_skipped_total", {"reason": reason})
            assert counted == skipped.get(reason, 0), reason
        assert sample(worker, "driftwatch_observations_total", {"feature": "accuracy"}) == labelled

        # invalid: counted by reason, and dead-lettered once each with the original bytes
        for reason in (*reasons, "non_finite", "processing_error", "missing_feature"):
            counted = sample(worker, "driftwatch_invalid_events_total", {"reason": reason})
            assert counted == reasons.get(reason, 0), reason
        assert len(dead) == sum(reasons.values())
        seen: set[tuple[int, int]] = set()
        for record in dead:
            headers = dict(record.headers)
            topic, partition, offset = headers["driftwatch-source"].decode().rsplit("/", 2)
            source = (int(partition), int(offset))
            assert topic == telemetry and source not in seen
            seen.add(source)
            original = by_source[source]
            assert headers["driftwatch-reason"].decode() == original.expected.reason, (
                original.kind,
                original.value[:200] if original.value else original.value,
            )
            # a tombstone is dead-lettered as an empty value; a value over what a default
            # producer request carries is cut, with its length and hash in the headers
            whole = original.value if original.value is not None else b""
            assert record.value == whole[:DEAD_LETTER_MAX_BYTES]
            if len(whole) > DEAD_LETTER_MAX_BYTES:
                assert headers["driftwatch-truncated-from"] == str(len(whole)).encode()
                assert headers["driftwatch-sha256"] == hashlib.sha256(whole).hexdigest().encode()
            assert record.key == original.key
        assert len(valid) + sum(skipped.values()) + len(dead) == TOTAL

        # drift events: as many on the topic as counted, each one well-formed
        assert len(drift) == drift_total
        for record in drift:
            event = json.loads(record.value)
            assert event["source"]["topic"] == telemetry and event["event_time"]

        assert worker.proc.poll() is None, "the worker died"
        log = worker.log.read_text(errors="replace")
        assert "Crashed" not in log and "Traceback (most recent" not in log, log[-4000:]


def test_a_message_the_broker_accepts_by_default_can_be_dead_lettered(
    kafka_broker: KafkaBroker, topic_factory: TopicFactory, tmp_path: Path
) -> None:
    telemetry = topic_factory("hostile-big", partitions=1)  # broker defaults: ~1 MiB per message
    dlq = topic_factory("hostile-big-dlq", partitions=1)
    gen = Generator(SEED + 1)
    big = gen.message("one_mb", gen.event().add("pad", "q" * 1_040_000))
    after = [gen.plain() for _ in range(20)]
    produce(kafka_broker.bootstrap, telemetry, [big, *after])
    settings = {
        "telemetry_topic": telemetry,
        "drift_topic": topic_factory("hostile-big-drift", partitions=1),
        "dead_letter_topic": dlq,
        "app_id": f"driftwatch-{telemetry}",
    }
    with run_worker(kafka_broker.bootstrap, tmp_path, **settings) as worker:

        def crashed() -> bool:
            return "Crashed" in worker.log.read_text(errors="replace")

        try:
            dead = read_topic(kafka_broker.bootstrap, dlq, 1, timeout=20, give_up=crashed)
            assert not crashed(), "the agent crashed"
            (record,) = dead
            headers = dict(record.headers)
            # cut to what a default producer request can carry, with what identifies the original
            assert record.value == big.value[:DEAD_LETTER_MAX_BYTES]
            assert headers["driftwatch-truncated-from"] == str(len(big.value)).encode()
            assert headers["driftwatch-sha256"] == hashlib.sha256(big.value).hexdigest().encode()
            assert headers["driftwatch-reason"] == b"oversized"
            wait_for(
                lambda: (
                    worker.sample("driftwatch_observations_total", {"feature": FEATURES[0]}) == 20
                ),
                30,
                "the 20 valid events after it",
                worker,
            )
        except AssertionError:
            # a worker with a crashed agent takes 30 s to stop on SIGTERM: do not wait for it
            os.killpg(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait()
            raise
