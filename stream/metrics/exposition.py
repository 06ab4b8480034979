"""One rendering of the registry per interval, shared by every scraper that asks meanwhile.

Rendering a registry of 10,000 series with prometheus-client's encoders is pure Python and
holds the GIL for about a quarter of a second; done once per scrape, 200 concurrent scrapers
cost the worker's event loop tens of seconds of CPU. :class:`ExpositionCache` renders each
variant (text format or OpenMetrics, optionally a ``name[]`` filter) at most once per
``max_age`` seconds, and gzip-compresses a rendering at most once. The bytes are the ones
prometheus-client's encoders give: the unfiltered text format 0.0.4 (what Prometheus asks for by
default) by :func:`stream.metrics.text_format.generate_text`, equal to ``generate_latest`` byte
for byte and several times faster; OpenMetrics and ``name[]``-filtered renderings by
prometheus-client's own encoder. Renderings are
serialised by one lock: concurrent scrapers of a stale variant wait for the one rendering
rather than starting their own.
"""

from __future__ import annotations

import gzip
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import choose_encoder

from stream.metrics.text_format import generate_text

__all__ = [
    "MAX_FILTER_NAMES",
    "MAX_VARIANTS",
    "Exposition",
    "ExpositionCache",
    "FilterError",
    "Renderer",
    "filter_names",
    "render",
]

#: Most renderings kept (the two formats unfiltered, plus filtered ones; the least recently
#: rendered is dropped).
MAX_VARIANTS = 16
#: Most ``name[]`` values in one request, and longest name accepted.
MAX_FILTER_NAMES = 64
MAX_NAME_LENGTH = 256
#: zlib level of the gzip bodies (6: most of level 9's ratio at a fraction of its time).
GZIP_LEVEL = 6


class FilterError(ValueError):
    """A ``name[]`` filter over the bounds; answered with 400, nothing rendered.

    Parameters
    ----------
    count : int
        Number of names in the request.
    longest : int
        Length of its longest name.
    """

    def __init__(self, count: int, longest: int) -> None:
        super().__init__(
            f"name[] filter with {count} names (at most {MAX_FILTER_NAMES}), longest "
            f"{longest} characters (at most {MAX_NAME_LENGTH})"
        )
        self.count = count
        self.longest = longest


def filter_names(names: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """The ``name[]`` filter of a request, sorted and without repeats (empty: everything).

    Raises
    ------
    FilterError
        When there are over :data:`MAX_FILTER_NAMES` names or a name is over
        :data:`MAX_NAME_LENGTH` characters.
    """
    wanted = tuple(sorted(set(names or ())))
    if len(wanted) > MAX_FILTER_NAMES or any(len(n) > MAX_NAME_LENGTH for n in wanted):
        raise FilterError(len(wanted), max((len(n) for n in wanted), default=0))
    return wanted


def render(registry: CollectorRegistry, accept: str, wanted: tuple[str, ...]) -> tuple[str, bytes]:
    """``(content type, body)`` of ``registry`` as prometheus-client encodes it for ``accept``,
    restricted to the sample names ``wanted`` when there are any.

    The unfiltered text format 0.0.4 is written by
    :func:`~stream.metrics.text_format.generate_text` (the same bytes as ``generate_latest``).
    """
    encoder, content_type = choose_encoder(accept)
    if encoder is generate_latest and not wanted:
        return content_type, generate_text(registry)
    source: Any = registry.restricted_registry(wanted) if wanted else registry
    return content_type, encoder(source)


#: Renders for an ``Accept`` header and a ``name[]`` filter: ``(content type, body)``.
Renderer = Callable[[str, tuple[str, ...]], tuple[str, bytes]]


@dataclass
class Exposition:
    """One rendering: the body as prometheus-client encodes it, its content type and age."""

    content_type: str
    body: bytes
    rendered_at: float
    _gzipped: bytes | None = field(default=None, repr=False)

    def gzipped(self) -> bytes:
        """The body gzip-compressed (computed on first use, then reused)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=GZIP_LEVEL)
        return self._gzipped


class ExpositionCache:
    """Renderings of ``registry``, each reused for ``max_age`` seconds.

    Parameters
    ----------
    registry : CollectorRegistry or callable
        The registry served, or a function ``(accept, wanted) -> (content type, body)`` that
        renders it elsewhere (the serving process asks the worker, see
        :mod:`stream.metrics.serving`).
    max_age : float
        Seconds a rendering is served before the next request renders again; 0 renders for
        every request (still one at a time).
    clock : callable, optional
        Monotonic seconds (for tests).

    Examples
    --------
    >>> from prometheus_client import CollectorRegistry, Counter, generate_latest
    >>> registry = CollectorRegistry()
    >>> Counter("demo_events", "Events.", registry=registry).inc()
    >>> cache = ExpositionCache(registry, max_age=1.0)
    >>> cache.get("text/plain").body == generate_latest(registry)
    True
    """

    def __init__(
        self,
        registry: CollectorRegistry | Renderer,
        *,
        max_age: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not (math.isfinite(max_age) and max_age >= 0):
            raise ValueError(f"max_age must be a number of seconds >= 0, got {max_age!r}")
        self._render: Renderer = registry if callable(registry) else partial(render, registry)
        self.max_age = max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._variants: dict[tuple[str, tuple[str, ...]], Exposition] = {}
        self.renderings = 0

    def get(
        self, accept: str, names: list[str] | None = None, *, gzipped: bool = False
    ) -> Exposition:
        """The current rendering for an ``Accept`` header and optional ``name[]`` filter.

        Parameters
        ----------
        accept : str
            The request's ``Accept`` header (chooses text format or OpenMetrics).
        names : list of str, optional
            Metric sample names to restrict the output to (``name[]`` query parameters).
        gzipped : bool
            Compute the gzip body as well (once per rendering), under the same lock.

        Raises
        ------
        FilterError
            When ``names`` is over :data:`MAX_FILTER_NAMES` or a name over ``MAX_NAME_LENGTH``.
        """
        wanted = filter_names(names)
        _, content_type = choose_encoder(accept)
        key = (content_type, wanted)
        with self._lock:
            now = self._clock()
            entry = self._variants.get(key)
            if entry is None or now - entry.rendered_at >= self.max_age or now < entry.rendered_at:
                entry = Exposition(*self._render(accept, wanted), now)
                self.renderings += 1
                self._variants.pop(key, None)
                self._variants[key] = entry
                while len(self._variants) > MAX_VARIANTS:
                    del self._variants[next(iter(self._variants))]
            if gzipped:
                entry.gzipped()
            return entry
