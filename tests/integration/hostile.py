"""Hostile telemetry: a seeded generator of valid, malformed, extreme and oversized messages,
each with the verdict of an oracle written from the documented rules (not calling the parser).

Shared by tests/integration/test_hostile_input.py (6,000 messages through the real worker) and
bench/fuzz.py (a million). Every :class:`Message` carries what the worker must do with it:
:func:`classify` says whether it is valid and, if not, its dead-letter reason.
Rules of the oracle, in the order they apply:

1. a tombstone (no value) is ``invalid_json``; more than ``max_message_bytes`` is ``oversized``;
2. text that is not one JSON document is ``invalid_json``: syntax errors, non-UTF-8 bytes, a
   byte order mark, ``NaN``/``Infinity`` literals; so is a number beyond the float range in a
   field the worker reads (``agent_id``, the features, ``ts``, the labels; fields nobody reads
   are checked for syntax only); integers beyond 64 bits are floats and fine;
3. a document that is not an object is ``not_an_object``; duplicate names: the last one counts;
4. ``agent_id`` null, absent, empty, a list or an object is *skipped* (reason ``missing_key``:
   counted, not dead-lettered); a number that is not an integer of at most 64 bits (a JSON
   parser reads those as floats, and distinct ids would collapse) is ``bad_key``; other
   scalars are keys, as text;
5. then each feature in settings order: null or absent is *missing* (the event feeds its other
   features; the feature is counted as missing), anything but a number (booleans included) is
   ``non_numeric``; an event missing every feature is *skipped* (reason ``no_features``);
6. ``ts``: absent or null means the Kafka record time; otherwise epoch milliseconds in
   [0, end of year 9999] or an ISO 8601 string of a time in years 1-9999, else
   ``bad_timestamp``.

A valid message is *labelled* (it feeds the accuracy stream) when both ``predicted_label`` and
``true_label`` are present and not null.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from stream.tools.simulation import TelemetrySimulator
from tests.support.pipeline import START_MS

MAX_BYTES = 65_536  # the worker's max_message_bytes (its default)
FEATURES = ("response_latency_ms", "token_count", "retry_count", "error_rate")
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


#: The top-level fields the worker reads: a number beyond the float range there is invalid.
READ_FIELDS = frozenset({"agent_id", *FEATURES, "ts", "predicted_label", "true_label"})


def decode(value: Any, read: bool | None = None) -> Any:
    """The Python value a JSON parser reads, or NotJSON. ``read``: whether the value is in a
    field the worker reads (None: the document itself, whose top-level names decide)."""
    if isinstance(value, Lit):
        if value.value is None and (read or value in NAN_LITERALS):
            raise NotJSON(value.text)
        return value.value
    if isinstance(value, Doc | dict):
        pairs = value.pairs if isinstance(value, Doc) else list(value.items())
        # the last duplicate wins, and every occurrence of a read field is read
        return {k: decode(v, k in READ_FIELDS if read is None else read) for k, v in pairs}
    if isinstance(value, list):
        return [decode(v, bool(read)) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:
            if read:
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
    reason: str | None  # None: not dead-lettered (valid, or skipped)
    labelled: bool = False
    skipped: str | None = None  # the skip reason of an event that is counted, not processed
    missing: tuple[str, ...] = ()  # features a valid event lacks

    @property
    def valid(self) -> bool:
        return self.reason is None and self.skipped is None


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
        return Expected(None, skipped="missing_key")
    if isinstance(key, float) or (is_number(key) and not -(2**63) <= key < 2**64):
        return Expected("bad_key")
    missing = []
    for name in FEATURES:
        v = doc.get(name)
        if v is None:
            missing.append(name)
        elif not is_number(v):
            return Expected("non_numeric")
    if len(missing) == len(FEATURES):
        return Expected(None, skipped="no_features")
    if not ts_ok(doc.get("ts")):
        return Expected("bad_timestamp")
    labelled = doc.get("predicted_label") is not None and doc.get("true_label") is not None
    return Expected(None, labelled, missing=tuple(missing))


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

    # -- sparse: valid with a feature missing, or skipped with none of them
    def missing_feature(self) -> Message:
        doc = self.event()
        names = FEATURES if self.rng.random() < 0.2 else self.rng.sample(FEATURES, 1)
        for name in names:
            doc = doc.drop(name) if self.rng.random() < 0.5 else doc.set(name, None)
        return self.message("missing_feature", doc)

    # -- invalid

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

    def makers(self) -> dict[str, Callable[[], Message]]:
        """Every kind of message but ``one_mb``, by name."""
        return {
            "plain": self.plain,
            "unknown_fields": self.unknown_fields,
            "duplicates": self.duplicates,
            "extremes": self.extremes,
            "key_variants": self.key_variants,
            "labels": self.labels,
            "timestamps": self.timestamps,
            "boundary": self.boundary,
            "missing_feature": self.missing_feature,
            "wrong_type": self.wrong_type,
            "not_finite": self.not_finite,
            "precedence": self.precedence,
            "not_an_object": self.not_an_object,
            "broken_json": self.broken_json,
            "not_utf8": self.not_utf8,
            "empty": self.empty,
            "oversized": self.oversized,
        }

    def kinds(self, total: int, mix: dict[str, int], one_mb: int) -> list[str]:
        """The shuffled kinds of the ``total - one_mb`` messages that are not ~1 MB: ``mix``
        gives how many of each, the rest are ``plain``."""
        kinds = [kind for kind, count in mix.items() for _ in range(count)]
        if len(kinds) + one_mb > total:
            raise ValueError(f"the mix needs {len(kinds) + one_mb} messages, total is {total}")
        kinds += ["plain"] * (total - len(kinds) - one_mb)
        self.rng.shuffle(kinds)
        return kinds

    def build(self, total: int) -> list[Message]:
        """``total`` messages in the test's mix (:data:`MIX`, :data:`ONE_MB_COUNT` of ~1 MB)."""
        makers = self.makers()
        messages = [makers[kind]() for kind in self.kinds(total, MIX, ONE_MB_COUNT)]
        for i in range(ONE_MB_COUNT):  # spread the big ones out
            messages.insert(one_mb_position(i, total, ONE_MB_COUNT), self.one_mb(i))
        assert len(messages) == total
        return messages

    def stream(self, total: int, mix: dict[str, int], one_mb: int) -> Iterator[Message]:
        """``total`` messages made one at a time (for runs too large to hold in memory), in the
        same layout as :meth:`build`: ``mix`` shuffled among ``plain`` ones, and ``one_mb``
        messages of ~1 MB spread evenly."""
        makers = self.makers()
        kinds = iter(self.kinds(total, mix, one_mb))
        big = {one_mb_position(i, total, one_mb): i for i in range(one_mb)}
        for position in range(total):
            i = big.get(position)
            yield self.one_mb(i) if i is not None else makers[next(kinds)]()


def one_mb_position(i: int, total: int, count: int) -> int:
    return (i + 1) * total // (count + 1)


#: How many of each kind among the test's 6,000 messages (the rest ``plain``, bar the 1 MB ones).
MIX: dict[str, int] = {
    "unknown_fields": 400,
    "duplicates": 300,
    "extremes": 200,
    "key_variants": 250,
    "labels": 150,
    "timestamps": 300,
    "boundary": 10,
    "missing_feature": 200,
    "wrong_type": 250,
    "not_finite": 200,
    "precedence": 100,
    "not_an_object": 100,
    "broken_json": 300,
    "not_utf8": 150,
    "empty": 100,
    "oversized": 12,
}
MIX_TOTAL = 6_000
ONE_MB_COUNT = 6
