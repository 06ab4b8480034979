"""The fast text format: byte for byte ``generate_latest`` (the oracle) on every registry."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    Summary,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest
from prometheus_client.utils import floatToGoString

from stream.metrics import Metrics
from stream.metrics.exposition import render
from stream.metrics.text_format import TextRenderer, fast_path, format_value, generate_text
from stream.settings import DEFAULT_FEATURES

AWKWARD_LABELS = ("back\\slash", 'a "quote"', "new\nline", "unicodé ✓ 日本", "", "plain")
AWKWARD_VALUES = (
    float("nan"),
    float("inf"),
    float("-inf"),
    -0.0,
    0.0,
    1e-300,
    1e21,
    123456789.0,
    1234567.5,
    3,
    -7,
    0.1,
    2.5e-5,
)


def same(registry: CollectorRegistry, renderer: TextRenderer | None = None) -> None:
    renderer = renderer or TextRenderer(registry)
    expected = generate_latest(registry)
    assert renderer.render() == expected
    assert renderer.render() == expected  # from the cache as well


def every_type(registry: CollectorRegistry) -> None:
    gauge = Gauge(
        "t_gauge", 'Help with \\ and\nnewline and "quote".', ["b", "a"], registry=registry
    )
    for i, label in enumerate(AWKWARD_LABELS):
        for j, value in enumerate(AWKWARD_VALUES):
            gauge.labels(label, f"v{j}").set(value)
        gauge.labels(f"k{i}", label).set(i)
    Gauge("t_plain", "Unlabelled.", registry=registry).set(-0.0)
    utf8 = Gauge("t_utf8.näme", "UTF-8 names.", ["lä bel", "b.c"], registry=registry)
    utf8.labels("1", "2").set(3)
    Gauge("t_unit", "With a unit.", unit="seconds", registry=registry).set(1.5)
    counter = Counter("t_count", "Counter.", ["reason"], registry=registry)
    counter.labels('x"y').inc(2)
    Counter("t_alone", "Counter alone.", registry=registry).inc(1e21)
    histogram = Histogram("t_hist", "Histogram.", ["k"], buckets=(0.1, 1, 1e21), registry=registry)
    histogram.labels("a\\b").observe(0.5)
    Summary("t_summary", "Summary.", registry=registry).observe(3)
    Info("t_info", "Info.", registry=registry).info({"version": "1\n2"})
    Enum("t_state", "Enum.", states=["a", "b"], registry=registry).state("b")
    Gauge("t_function", "Set function.", registry=registry).set_function(lambda: 1e-300)


def test_every_metric_type_and_awkward_labels_and_values() -> None:
    registry = CollectorRegistry()
    every_type(registry)
    same(registry)


def test_the_workers_own_metrics() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, max_keys=40)
    for i in range(50):  # 10 keys over the cap
        for j, feature in enumerate(DEFAULT_FEATURES):
            metrics.set_stream(f"agent-{i}", feature, 0.01 * j, 0.5, i % 7 == 0, 1.0)
            metrics.set_score(f"agent-{i}", feature, 0.3 * i, 1e4)
        metrics.set_accuracy(f"agent-{i}", 0.9)
        metrics.set_classification(f"agent-{i}", 0.8, 0.7, float(i))
        metrics.events_consumed.labels("agent-telemetry").inc()
    metrics.processing_latency.observe(0.02)
    renderer = TextRenderer(registry)
    same(registry, renderer)
    metrics.forget("agent-3", tuple(DEFAULT_FEATURES))  # series removed, values changed
    metrics.set_stream("agent-4", DEFAULT_FEATURES[0], 0.123, 0.001, True, 0.5)
    same(registry, renderer)


def test_seeded_random_registries_and_changes_between_renderings() -> None:
    rng = random.Random(20261203)
    alphabet = 'ab\\"\n é✓_-.'
    for _ in range(20):
        registry = CollectorRegistry()
        gauges = [
            Gauge(f"r_{n}", f"Random {n}.", ["k", "f"][: rng.randint(0, 2)], registry=registry)
            for n in range(4)
        ]
        Counter("r_counter", "Counter.", ["k"], registry=registry).labels("x").inc()
        renderer = TextRenderer(registry)
        for _ in range(3):
            for gauge in gauges:
                for _ in range(rng.randint(0, 15)):
                    labels = ["".join(rng.choices(alphabet, k=rng.randint(0, 6))) for _ in "kf"]
                    width = len(gauge._labelnames)
                    child = gauge.labels(*labels[:width]) if width else gauge
                    value = rng.choice((*AWKWARD_VALUES, rng.uniform(-1e6, 1e6)))
                    child.set(value if rng.random() < 0.8 else rng.expovariate(1e-3))
                if gauge._labelnames and gauge._metrics and rng.random() < 0.5:
                    gauge.remove(*rng.choice(list(gauge._metrics)))
            same(registry, renderer)


def test_collectors_off_the_fast_path_are_prometheus_clients_own() -> None:
    registry = CollectorRegistry()

    class Custom:
        def collect(self) -> list[GaugeMetricFamily]:
            family = GaugeMetricFamily("c_custom", "Custom.", labels=["k"])
            family.add_metric(['a"b'], 2.0)
            return [family]

    class SubGauge(Gauge):
        pass

    custom = Custom()
    registry.register(custom)  # type: ignore[arg-type]
    sub = SubGauge("c_sub", "Subclass.", registry=registry)
    sub.set(1)
    function = Gauge("c_function", "Function.", registry=registry)
    function.set_function(lambda: 4.0)
    child_function = Gauge("c_child", "Child function.", ["k"], registry=registry)
    child_function.labels("a").set_function(lambda: 5.0)
    plain = Gauge("c_plain", "Plain.", ["k"], registry=registry)
    plain.labels("z").set(3)
    assert [fast_path(c) for c in (custom, sub, function, plain)] == [False, False, False, True]
    same(registry)


def test_target_info_is_rendered_by_prometheus_client() -> None:
    registry = CollectorRegistry(target_info={"service": "drift\nwatch"})
    Gauge("ti_gauge", "Gauge.", ["k"], registry=registry).labels("a").set(1)
    same(registry)


def test_unregistered_collectors_leave_the_rendering() -> None:
    registry = CollectorRegistry()
    first = Gauge("u_first", "First.", ["k"], registry=registry)
    first.labels("a").set(1)
    renderer = TextRenderer(registry)
    same(registry, renderer)
    registry.unregister(first)
    Gauge("u_second", "Second.", ["k"], registry=registry).labels("a").set(2)
    same(registry, renderer)


def test_render_uses_it_for_the_default_text_format_only() -> None:
    registry = CollectorRegistry()
    every_type(registry)
    assert generate_text(registry) == generate_latest(registry)
    for accept in ("", "text/plain", "*/*", "text/plain; version=0.0.4"):
        assert render(registry, accept, ()) == (
            "text/plain; version=0.0.4; charset=utf-8",
            generate_latest(registry),
        )
    content_type, body = render(registry, "application/openmetrics-text", ())
    assert content_type.startswith("application/openmetrics-text")
    assert body == openmetrics_latest(registry)


@pytest.mark.parametrize("wanted", [("t_gauge",), ("t_count_total", "t_plain"), ("absent",)])
def test_a_name_filter_is_prometheus_clients_restricted_registry(wanted: tuple[str, ...]) -> None:
    registry = CollectorRegistry()
    every_type(registry)
    expected = generate_latest(registry.restricted_registry(wanted))  # type: ignore[arg-type]
    assert render(registry, "text/plain", wanted)[1] == expected


def test_values_are_written_as_float_to_go_string_writes_them() -> None:
    rng = random.Random(14)
    edges = [
        1e6,
        999999.9999999999,
        999999.0,
        1e5,
        1e16,
        1e15,
        1e-5,
        1e-4,
        5e-324,
        1.7976931348623157e308,
    ]
    values: list[float] = [*AWKWARD_VALUES, *edges, *(-v for v in edges)]
    values += [math.nextafter(v, d) for v in edges for d in (0.0, math.inf)]
    values += [rng.uniform(-1e7, 1e7) for _ in range(2000)]
    values += [10 ** rng.uniform(-320, 308) for _ in range(2000)]
    values += [rng.randint(-(10**18), 10**18) for _ in range(200)]
    values += [True, False, 0, 10**6, 10**21]
    for value in values:
        assert format_value(value) == floatToGoString(value), value
