"""The text format 0.0.4 of a registry, byte for byte as ``generate_latest`` gives it, faster.

prometheus-client's ``generate_latest`` builds a ``Metric`` with a ``Sample`` (and a labels
dict) for every series, then escapes and sorts every series' labels again on every rendering.
:class:`TextRenderer` writes the worker's labelled Gauges (most of its series) straight from
each Gauge's children: a series' line prefix (``name{label="value",...} ``, with the labels
sorted and escaped as prometheus-client does) is built once and kept while the series exists,
and a line is reused while its value is the same object; values are written as
prometheus-client's ``floatToGoString`` writes them (:func:`format_value`). Every other
collector (Counters, Histograms, Summaries, Gauges with ``set_function``, subclasses, custom
collectors) is rendered by ``generate_latest`` itself, one collector at a time, so its bytes
are the encoder's by construction. Registries with ``target_info``, and prometheus-client's
multiprocess mode, are rendered wholly by ``generate_latest``.

Examples
--------
>>> from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
>>> registry = CollectorRegistry()
>>> Gauge("demo_level", "Level.", ["key"], registry=registry).labels('a"b').set(0.5)
>>> Counter("demo_events", "Events.", registry=registry).inc()
>>> TextRenderer(registry).render() == generate_latest(registry)
True
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client import values as _values
from prometheus_client.openmetrics.exposition import escape_label_name, escape_metric_name
from prometheus_client.utils import floatToGoString

__all__ = ["TextRenderer", "fast_path", "format_value", "generate_text"]

_MINUS_INF = float("-inf")
#: A series' cached ``(line prefix, value last rendered, its line)``.
_Line = tuple[str, Any, str]


class _Single:
    """One collector as a registry (``generate_latest`` renders it alone)."""

    def __init__(self, collector: Any) -> None:
        self._collector = collector

    def collect(self) -> Iterable[Any]:
        return self._collector.collect()


def fast_path(collector: object) -> bool:
    """Whether :class:`TextRenderer` writes ``collector`` itself (a plain ``Gauge`` without
    ``set_function``, in prometheus-client's ordinary single-process mode); otherwise it is
    rendered by ``generate_latest``."""
    if type(collector) is not Gauge or _values.ValueClass is not _values.MutexValue:
        return False
    return "_child_samples" not in vars(collector)


def format_value(value: Any) -> str:
    """``floatToGoString(value)``: ``repr`` for the floats it leaves alone (finite, below 1e6,
    where Go and Python write the same digits), prometheus-client's function otherwise."""
    if type(value) is float and _MINUS_INF < value < 1e6:
        return repr(value)
    return str(floatToGoString(value))


def _escape_value(value: str) -> str:
    """A label value escaped as ``generate_latest`` does (backslash, newline, double quote)."""
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _prefix(name: str, labelnames: tuple[str, ...], labelvalues: tuple[str, ...]) -> str:
    """``name{label="value",...} `` as ``generate_latest`` writes it (labels sorted by name,
    names escaped to underscores, values backslash-escaped)."""
    if not labelnames:
        return name + " "
    labels = ",".join(
        f'{escape_label_name(k)}="{_escape_value(v)}"'
        for k, v in sorted(zip(labelnames, labelvalues, strict=True))
    )
    return f"{name}{{{labels}}} "


class TextRenderer:
    """Renders ``registry`` in text format 0.0.4, equal byte for byte to ``generate_latest``.

    Parameters
    ----------
    registry : CollectorRegistry
        The registry rendered (its collectors are read at each :meth:`render`).

    Notes
    -----
    The cache holds a line prefix for each live series of the fast-path Gauges; a series removed
    from its Gauge (or a Gauge unregistered) is dropped from it at the next rendering.
    Renderings are serialised by a lock.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry
        self._lock = threading.Lock()
        # collector -> (its HELP/TYPE header key, the header, labelvalues -> cached line)
        self._gauges: dict[Any, tuple[tuple[str, str], str, dict[tuple[str, ...], _Line]]] = {}

    def render(self) -> bytes:
        """The registry in text format 0.0.4: the bytes ``generate_latest(registry)`` gives."""
        registry: Any = self._registry
        with registry._lock:
            collectors = list(registry._collector_to_names)
            target_info = registry._target_info
        if target_info:
            return generate_latest(self._registry)
        with self._lock:
            parts: list[bytes] = []
            seen: dict[Any, Any] = {}
            for collector in collectors:
                if fast_path(collector):
                    parts.append(self._gauge(collector, seen).encode("utf-8"))
                else:
                    parts.append(generate_latest(_Single(collector)))
            self._gauges = seen
            return b"".join(parts)

    def _gauge(self, gauge: Any, seen: dict[Any, Any]) -> str:
        """One Gauge's HELP, TYPE and sample lines (``seen`` gets its cache entry)."""
        metric = gauge._get_metric()
        key = (metric.name, metric.documentation)
        cached = self._gauges.get(gauge)
        if cached is None or cached[0] != key:
            name = escape_metric_name(metric.name)
            help_text = metric.documentation.replace("\\", r"\\").replace("\n", r"\n")
            header = f"# HELP {name} {help_text}\n# TYPE {name} gauge\n"
            lines: dict[tuple[str, ...], _Line] = {}
        else:
            _, header, lines = cached
        sample_name = escape_metric_name(gauge._name)
        out = [header]
        fresh: dict[tuple[str, ...], _Line] = {}
        if gauge._is_parent():
            with gauge._lock:
                children = list(gauge._metrics.items())
        elif gauge._labelnames:  # a child registered by itself: prometheus-client's own way
            return generate_latest(_Single(gauge)).decode("utf-8")
        else:
            children = [((), gauge)]
        labelnames = tuple(gauge._labelnames)
        for labelvalues, child in children:
            if "_child_samples" in vars(child):  # set_function on a child
                return generate_latest(_Single(gauge)).decode("utf-8")
            value = child._value.get()
            line = lines.get(labelvalues)
            if line is None:
                prefix = _prefix(sample_name, labelnames, labelvalues)
                line = (prefix, value, f"{prefix}{format_value(value)}\n")
            elif line[1] is not value:
                line = (line[0], value, f"{line[0]}{format_value(value)}\n")
            fresh[labelvalues] = line
            out.append(line[2])
        seen[gauge] = (key, header, fresh)
        return "".join(out)


_renderers: weakref.WeakKeyDictionary[CollectorRegistry, TextRenderer] = weakref.WeakKeyDictionary()
_renderers_lock = threading.Lock()


def generate_text(registry: CollectorRegistry) -> bytes:
    """``generate_latest(registry)`` by the registry's :class:`TextRenderer` (one is made on
    first use and kept while the registry lives)."""
    with _renderers_lock:
        renderer = _renderers.get(registry)
        if renderer is None:
            renderer = _renderers[registry] = TextRenderer(registry)
    return renderer.render()
