"""Hostile input: thousands of malformed, extreme and oversized messages through the real worker.

Every message is built by a seeded generator together with a structured description of what it
holds, and :func:`classify` (an oracle written from the documented rules, not calling the
parser) says whether it is valid and, if not, its reason. The worker must account for each
message exactly: valid ones fed to the detectors, the others dead-lettered with their original
bytes and the oracle's reason, and the worker still running with no crashed agent.

Rules of the oracle, in the order they apply:

1. a tombstone (no value) is ``invalid_json``; more than ``max_message_bytes`` is ``oversized``;
2. text that is not one JSON document is ``invalid_json``: syntax errors, non-UTF-8 bytes, a
   byte order mark, ``NaN``/``Infinity`` literals and numbers beyond the float range (even in
   fields nobody reads); integers beyond 64 bits are floats and fine;
3. a document that is not an object is ``not_an_object``; duplicate names: the last one counts;
4. ``agent_id`` null, absent, empty, a list or an object is ``missing_key`` (other scalars are
   keys, as text);
5. then each feature in settings order: null or absent is ``missing_feature``, anything but a
   number (booleans included) is ``non_numeric``;
6. ``ts``: absent or null means the Kafka record time; otherwise epoch milliseconds in
   [0, end of year 9999] or an ISO 8601 string of a time in years 1-9999, else
   ``bad_timestamp``.

A valid message is *labelled* (it feeds the accuracy stream) when both ``predicted_label`` and
``true_label`` are present and not null.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from stream.processor import DEAD_LETTER_MAX_BYTES
from stream.simulation import TelemetrySimulator
from tests.integration.conftest import KafkaBroker, TopicFactory
from tests.integration.worker import RunningWorker, run_worker, wait_for

SEED = 20_261_124
TOTAL = 6_000
MAX_BYTES = 65_536  # the worker's max_message_bytes (its default)
FEATURES = ("response_latency_ms", "token_count", "retry_count", "error_rate")
START_MS = 1_779_350_400_000
#: Big enough for the ~1 MB payloads; the worker's own producer sends at most 1,000,000 bytes.
TOPIC_MAX_BYTES = 2 * 1024 * 1024
ONE_MB_PAYLOAD = 990_000
LAST_SECOND_MS = 253_402_300_799_000  # 9999-12-31T23:59:59Z


# ---------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class Lit:
    """JSON text written verbatim; ``value`` is the number it denotes, None if none."""

    text: str
    value: float | None


NAN_LITERALS = (Lit("NaN", None), Lit("Infinity", None), Lit("-Infinity", None))
OUT_OF_RANGE = (Lit("1e400", None), Lit("-1e400", None), Lit("1" + "0" * 400, None))
#: (ISO string, accepted) -- written out by hand, not computed with the parser's functions.
TS_STRINGS = (
    ("2026-05-21T10:00:00Z", True),
    ("2026-05-21T10:00:00.123+02:00", True),
    ("2026-05-21", True),
    ("1969-07-20T20:17:40Z", True),
    ("9999-12-31T23:59:59Z", True),
    ("yesterday", False),
    ("", False),
    ("2026-13-01T00:00:00Z", False),
    ("21/05/2026 10:00", False),
    ("9999-12-31T23:59:59-01:00", False),  # year 10000 in UTC
)
TS_STRING_OK = dict(TS_STRINGS)


class Doc:
    """A JSON object as a list of (name, value) pairs, so names can repeat."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    @classmethod
    def of(cls, event: dict[str, Any]) -> Doc:
        return cls(list(event.items()))

    def drop(self, name: str) -> Doc:
        return Doc([(k, v) for k, v in self.pairs if k != name])

    def set(self, name: str, value: Any) -> Doc:
        """Replace the value in place (or append the field)."""
        if any(k == name for k, _ in self.pairs):
            return Doc([(k, value if k == name else v) for k, v in self.pairs])
        return Doc([*self.pairs, (name, value)])

    def add(self, name: str, value: Any) -> Doc:
        """Append a field, repeating the name if it exists."""
        return Doc([*self.pairs, (name, value)])


def dump(value: Any) -> str:
    if isinstance(value, Lit):
        return value.text
    if isinstance(value, Doc):
        return "{" + ",".join(f"{dump(k)}:{dump(v)}" for k, v in value.pairs) + "}"
    if isinstance(value, dict):
        return dump(Doc.of(value))
    if isinstance(value, list):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def encode(value: Any) -> bytes:
    return dump(value).encode()


# ---------------------------------------------------------------------------- the oracle


class NotJSON(Exception):
    pass


def decode(value: Any) -> Any:
    """The Python value a JSON parser reads, or NotJSON."""
    if isinstance(value, Lit):
        if value.value is None:
            raise NotJSON(value.text)
        return value.value
    if isinstance(value, Doc):
        return {k: decode(v) for k, v in value.pairs}  # the last duplicate wins
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            raise NotJSON(str(value)[:20]) from None
    return value


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def ts_ok(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, str):
        return TS_STRING_OK[v]
    if is_number(v):
        return 0 <= v <= LAST_SECOND_MS
    return False


@dataclass(frozen=True)
class Expected:
    reason: str | None  # None: valid
    labelled: bool = False


def classify(raw: bytes | None, content: Any, syntax_reason: str | None) -> Expected:
    """The oracle. ``content``: what was serialised (None for bytes built by hand, whose
    reason ``syntax_reason`` is known by construction)."""
    if raw is None:
        return Expected("invalid_json")
    if len(raw) > MAX_BYTES:
        return Expected("oversized")
    if syntax_reason is not None:
        return Expected(syntax_reason)
    try:
        doc = decode(content)
    except NotJSON:
        return Expected("invalid_json")
    if not isinstance(doc, dict):
        return Expected("not_an_object")
    key = doc.get("agent_id")
    if key is None or key == "" or isinstance(key, list | dict):
        return Expected("missing_key")
    for name in FEATURES:
        v = doc.get(name)
        if v is None:
            return Expected("missing_feature")
        if not is_number(v):
            return Expected("non_numeric")
    if not ts_ok(doc.get("ts")):
        return Expected("bad_timestamp")
    labelled = doc.get("predicted_label") is not None and doc.get("true_label") is not None
    return Expected(None, labelled)


# ---------------------------------------------------------------------------- the generator


@dataclass(frozen=True)
class Message:
    kind: str
    key: bytes | None
    value: bytes | None
    expected: Expected


HOSTILE_KEYS = ("agent-é-🚀", 'quote"back\\slash', "new\nline", "  ", "a/b|c", "x" * 300)
WRONG_TYPES: tuple[Any, ...] = ("fast", "", "812.4", True, False, [1.0], {"v": 1}, [])
FINITE_EXTREMES: tuple[Any, ...] = (
    10**30,
    -(10**30),
    2**64 - 1,
    -(2**63),
    1.7976931348623157e308,
    -1.7976931348623157e308,
    5e-324,
    -0.0,
    0,
    Lit("1E+2", 100.0),
    Lit("1e-400", 0.0),
)
UNKNOWN_VALUES: tuple[Any, ...] = (
    "plain",
    "ünïcödé ✓ 😀",
    "control \u0001\u001f chars",
    None,
    [1, "two", None, {"three": [3]}],
    {"nested": {"deeper": {"deepest": [True, False]}}},
    10**30,
    "y" * 5000,
)


class Generator:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.sim = TelemetrySimulator(6, seed=seed)
        self.n = 0

    def event(self) -> Doc:
        self.n += 1
        return Doc.of(self.sim.event(START_MS + 10 * self.n))

    def feature(self) -> str:
        return self.rng.choice(FEATURES)

    def message(self, kind: str, content: Any, key: bytes | None = b"") -> Message:
        raw = encode(content)
        return self.wrap(kind, raw, content, None, key)

    def wrap(
        self,
        kind: str,
        raw: bytes | None,
        content: Any,
        syntax_reason: str | None,
        key: bytes | None = b"",
    ) -> Message:
        if key == b"":  # the first agent_id, as a producer keying by agent would
            agents = (
                [v for k, v in content.pairs if k == "agent_id"] if isinstance(content, Doc) else []
            )
            agent = agents[0] if agents else None
            key = agent.encode() if isinstance(agent, str) and agent else None
        return Message(kind, key, raw, classify(raw, content, syntax_reason))

    # -- valid, or valid-looking
    def plain(self) -> Message:
        return self.message("plain", self.event())

    def unknown_fields(self) -> Message:
        doc = self.event()
        for i in range(self.rng.randint(1, 4)):
            doc = doc.add(f"extra_{i}_{self.rng.randint(0, 99)}", self.rng.choice(UNKNOWN_VALUES))
        return self.message("unknown_fields", doc)

    def duplicates(self) -> Message:
        doc = self.event()
        name = self.rng.choice([*FEATURES, "agent_id", "ts", "predicted_label"])
        if name == "ts":
            last = self.rng.choice([7, None, True, "yesterday", "2026-05-21T10:00:00Z"])
        else:
            last = self.rng.choice([1.5, 7, "text", None, "", Lit("NaN", None), "agent-dup"])
        if self.rng.random() < 0.5:  # the good value last
            good = dict(doc.pairs)[name]
            doc = doc.set(name, last).add(name, good)
        else:
            doc = doc.add(name, last)
        return self.message("duplicates", doc)

    def extremes(self) -> Message:
        doc = self.event()
        for name in self.rng.sample(FEATURES, self.rng.randint(1, 4)):
            doc = doc.set(name, self.rng.choice(FINITE_EXTREMES))
        return self.message("extremes", doc)

    def key_variants(self) -> Message:
        doc = self.event()
        value = self.rng.choice([*HOSTILE_KEYS, None, "", [], {}, ["agent-1"], 42, True, 1.5])
        doc = doc.set("agent_id", value) if self.rng.random() < 0.9 else doc.drop("agent_id")
        return self.message("key_variants", doc)

    def labels(self) -> Message:
        doc = self.event()
        name = self.rng.choice(["predicted_label", "true_label"])
        doc = self.rng.choice([doc.drop(name), doc.set(name, None), doc.set(name, 3)])
        return self.message("labels", doc)

    def timestamps(self) -> Message:
        doc = self.event()
        ts = self.rng.choice(
            [
                *(s for s, _ in TS_STRINGS),
                None,
                0,
                -1,
                1.5e12,
                LAST_SECOND_MS,
                LAST_SECOND_MS + 1000,
                10**18,
                10**30,
                True,
                [START_MS],
                {"ms": START_MS},
                Lit("1e400", None),
            ]
        )
        doc = doc.set("ts", ts) if self.rng.random() < 0.9 else doc.drop("ts")
        return self.message("timestamps", doc)

    def boundary(self) -> Message:
        """Valid telemetry padded to exactly the limit, or one byte over it."""
        doc = self.event()
        over = self.rng.random() < 0.5
        bare = len(encode(doc.add("pad", "")))
        doc = doc.add("pad", "p" * (MAX_BYTES - bare + over))
        msg = self.message("boundary", doc)
        assert msg.value is not None and len(msg.value) == MAX_BYTES + over
        return msg

    # -- invalid
    def missing_feature(self) -> Message:
        doc = self.event()
        name = self.feature()
        return self.message(
            "missing_feature", doc.drop(name) if self.rng.random() < 0.5 else doc.set(name, None)
        )

    def wrong_type(self) -> Message:
        return self.message(
            "wrong_type", self.event().set(self.feature(), self.rng.choice(WRONG_TYPES))
        )

    def not_finite(self) -> Message:
        doc = self.event()
        lit = self.rng.choice(NAN_LITERALS + OUT_OF_RANGE)
        in_feature = self.rng.random() < 0.8  # else in a field nobody reads: still not JSON
        doc = doc.set(self.feature(), lit) if in_feature else doc.add("extra", [lit])
        return self.message("not_finite", doc)

    def precedence(self) -> Message:
        """Several problems at once: the first rule that applies names the reason."""
        doc = self.event().set(self.feature(), "bad").set("ts", "yesterday")
        doc = self.rng.choice([doc.drop("agent_id"), doc.drop(self.feature()), doc, Doc([])])
        return self.message("precedence", doc)

    def not_an_object(self) -> Message:
        content = self.rng.choice(
            [[], [dict(self.event().pairs)], "text", 42, 1.5, True, None, [Lit("NaN", None)]]
        )
        return self.message("not_an_object", content, key=None)

    def broken_json(self) -> Message:
        raw = encode(self.event())
        choice = self.rng.randrange(8)
        if choice == 0:
            bad = raw[: self.rng.randint(1, len(raw) - 1)]  # truncated
        elif choice == 1:
            bad = raw + b" x"  # trailing garbage
        elif choice == 2:
            bad = raw + b"\n" + raw  # two documents
        elif choice == 3:
            bad = raw.replace(b'"', b"'")  # single quotes
        elif choice == 4:
            bad = raw[:-1] + b",}"  # trailing comma
        elif choice == 5:
            bad = b"// telemetry\n" + raw  # a comment
        elif choice == 6:
            bad = b"\xef\xbb\xbf" + raw  # byte order mark
        else:
            bad = b"\xff" + self.rng.randbytes(self.rng.randint(0, 200))  # random bytes
        return self.wrap("broken_json", bad, None, "invalid_json", key=b"agent-0")

    def not_utf8(self) -> Message:
        doc = self.event()
        raw = encode(doc)
        agent = str(dict(doc.pairs)["agent_id"]).encode()
        seq = self.rng.choice([b"\xff", b"\xfe", b"\xc0\x80", b"\xed\xa0\x80", b"\xe9", b"\x80"])
        if self.rng.random() < 0.5:
            bad = raw.replace(agent, agent + seq, 1)  # inside a string
        else:
            bad = encode(doc.add("note", "café")).replace("é".encode(), b"\xe9")  # Latin-1
        return self.wrap("not_utf8", bad, None, "invalid_json", key=agent)

    def empty(self) -> Message:
        raw = self.rng.choice([None, b"", b" ", b"\n\t  \r\n"])
        return self.wrap("empty", raw, None, "invalid_json", key=b"agent-1")

    def oversized(self) -> Message:
        size = self.rng.choice([70_000, 200_000])
        doc = self.event()
        return self.message("oversized", doc.add("pad", "z" * size))

    def one_mb(self, i: int) -> Message:
        """~1 MB: padded telemetry, multi-byte text, or raw garbage (size comes first)."""
        if i % 3 == 0:
            return self.message("one_mb", self.event().add("pad", "m" * ONE_MB_PAYLOAD))
        if i % 3 == 1:
            return self.message("one_mb", self.event().add("pad", "ü" * (ONE_MB_PAYLOAD // 2)))
        raw = b"\xff" * ONE_MB_PAYLOAD
        return self.wrap("one_mb", raw, None, "invalid_json", key=b"agent-2")

    def build(self, total: int) -> list[Message]:
        makers: dict[str, tuple[int, Callable[[], Message]]] = {
            "unknown_fields": (400, self.unknown_fields),
            "duplicates": (300, self.duplicates),
            "extremes": (200, self.extremes),
            "key_variants": (250, self.key_variants),
            "labels": (150, self.labels),
            "timestamps": (300, self.timestamps),
            "boundary": (10, self.boundary),
            "missing_feature": (200, self.missing_feature),
            "wrong_type": (250, self.wrong_type),
            "not_finite": (200, self.not_finite),
            "precedence": (100, self.precedence),
            "not_an_object": (100, self.not_an_object),
            "broken_json": (300, self.broken_json),
            "not_utf8": (150, self.not_utf8),
            "empty": (100, self.empty),
            "oversized": (12, self.oversized),
        }
        kinds = [kind for kind, (count, _) in makers.items() for _ in range(count)]
        one_mb = 6
        kinds += ["plain"] * (total - len(kinds) - one_mb)
        self.rng.shuffle(kinds)
        makers["plain"] = (0, self.plain)
        messages = [makers[kind][1]() for kind in kinds]
        for i in range(one_mb):  # spread the big ones out
            messages.insert((i + 1) * total // (one_mb + 1), self.one_mb(i))
        assert len(messages) == total
        return messages


def test_the_oracle_on_hand_picked_cases() -> None:
    gen = Generator(1)
    good = gen.event()
    cases: list[tuple[Any, str | None]] = [
        (good, None),
        (good.set("token_count", 10**30), None),
        (good.set("token_count", Lit("1e400", None)), "invalid_json"),
        (good.add("x", [Lit("NaN", None)]), "invalid_json"),
        (good.set("token_count", True), "non_numeric"),
        (good.add("token_count", None), "missing_feature"),
        (good.set("token_count", None).add("token_count", 5), None),
        (good.set("agent_id", 7), None),
        (good.set("agent_id", ""), "missing_key"),
        (good.drop("agent_id").set("token_count", "x"), "missing_key"),
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


# ---------------------------------------------------------------------------- the test


def read_topic(
    bootstrap: str,
    topic: str,
    expected: int,
    timeout: float,
    give_up: Callable[[], bool] = lambda: False,
) -> list[Any]:
    """Every record of ``topic`` once its end offsets add up to ``expected``, on timeout, or
    as soon as ``give_up()``."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=2000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        deadline = time.monotonic() + timeout
        while sum(consumer.end_offsets(partitions).values()) < expected:
            if time.monotonic() >= deadline or give_up():
                break
            time.sleep(0.2)
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        records = []
        end = sum(consumer.end_offsets(partitions).values())
        while len(records) < end:
            batch = consumer.poll(timeout_ms=2000)
            if not batch:
                break
            for part in batch.values():
                records.extend(part)
        return records
    finally:
        consumer.close()


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
    valid = [m for m in messages if m.expected.reason is None]
    labelled = sum(m.expected.labelled for m in valid)
    # the mix really is hostile: every reason the JSON can produce, and plenty of valid data
    assert set(reasons) >= {
        "oversized",
        "invalid_json",
        "not_an_object",
        "missing_key",
        "missing_feature",
        "non_numeric",
        "bad_timestamp",
    }
    assert len(valid) > TOTAL // 2 and sum(reasons.values()) > TOTAL // 4
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

        # valid: every value reached its detector
        for feature in FEATURES:
            observed = sample(worker, "driftwatch_observations_total", {"feature": feature})
            assert observed == len(valid), feature
        assert sample(worker, "driftwatch_observations_total", {"feature": "accuracy"}) == labelled

        # invalid: counted by reason, and dead-lettered once each with the original bytes
        for reason in (*reasons, "non_finite", "processing_error"):
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
        assert len(valid) + len(dead) == TOTAL

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
