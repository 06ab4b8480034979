"""The typed read of a message and the whole-object read give the same result.

:meth:`TelemetryParser.parse` reads the configured fields with a typed decoder and falls back
to validating the whole object (:meth:`TelemetryParser.parse_doc`) for anything that read
cannot take. Here both are run on the same randomly built messages -- right and wrong types,
missing and empty fields, nested and dotted names, big integers, labels and categories -- and
must agree field for field, rejections (reason and detail) included. The whole object is
decoded by the standard library's ``json``, independently of the parser.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from stream.settings import load_settings
from stream.telemetry.records import Invalid, Telemetry, TelemetryParser

_VALUES: list[Any] = [
    None,
    "",
    "x",
    "agent-1",
    "a/b",
    0,
    7,
    -3,
    2**63 - 1,
    2**64,
    -(2**63) - 1,
    10**30,
    1.5,
    -0.0,
    1e300,
    True,
    False,
    [1, 2],
    {"k": 1},
    "2026-05-21T10:00:00Z",
    "yesterday",
    1779350400123,
    -5,
]


def _message(rng: random.Random, names: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for name in names:
        roll = rng.random()
        if roll < 0.15:
            continue  # absent
        value = rng.choice(_VALUES) if roll < 0.45 else _typical(rng, name)
        if "." in name and rng.random() < 0.5:  # the nested spelling of a dotted name
            head, _, tail = name.partition(".")
            doc.setdefault(head, {})
            if isinstance(doc[head], dict):
                doc[head][tail] = value
        else:
            doc[name] = value
    if rng.random() < 0.3:
        doc["unread"] = rng.choice(_VALUES)
    return doc


def _typical(rng: random.Random, name: str) -> Any:
    if name in ("agent_id", "tenant", "model", "tool"):
        return f"{name}-{rng.randrange(5)}"
    if name == "ts":
        return 1_779_350_400_000 + rng.randrange(10**6)
    if name.endswith("label"):
        return rng.choice(["refund", "shipping", 3])
    return round(rng.lognormvariate(5, 1), 2) if rng.random() < 0.5 else rng.randrange(50)


def _same(a: Telemetry | Invalid, b: Telemetry | Invalid) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize(
    "config",
    [
        {},
        {"key_fields": ("tenant", "agent_id")},
        {"features": ("usage.output_tokens", "latency"), "categorical_features": ("tool",)},
        {"features": ("token_count", "predicted_label"), "key_fields": ("model",)},
        {"categorical_features": ("model", "tool")},
    ],
)
def test_typed_and_whole_object_reads_agree(config: dict[str, Any], sparse: bool) -> None:
    settings = load_settings(environ={}, **config)
    span_filter = ("tool", frozenset({"tool-1", "tool-2"})) if "key_fields" in config else None
    parser = TelemetryParser(settings, sparse=sparse, span_filter=span_filter)
    names = [
        *settings.key_fields,
        *settings.features,
        settings.timestamp_field,
        *settings.categorical_features,
        "predicted_label",
        "true_label",
        "tool",
    ]
    rng = random.Random(hash((tuple(config), sparse)) & 0xFFFF)
    kinds: set[str] = set()
    for i in range(3_000):
        raw = json.dumps(_message(rng, names)).encode()
        typed = parser.parse(raw, partition=1, offset=i, timestamp=1_779_350_400.5)
        whole = parser.parse_doc(json.loads(raw), partition=1, offset=i, timestamp=1_779_350_400.5)
        assert _same(typed, whole), (raw, typed, whole)
        kinds.add(type(typed).__name__ + ":" + getattr(typed, "reason", "ok"))
    assert "Telemetry:ok" in kinds and len(kinds) >= 4, kinds  # both ways were exercised
