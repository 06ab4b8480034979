"""The worker's Prometheus metrics: the metric families, their exposition and the HTTP server.

:class:`Metrics` (in :mod:`stream.metrics.families`) is the package's interface for the code
that records metrics; :mod:`stream.metrics.server` serves ``/metrics`` from the cached
renderings of :mod:`stream.metrics.exposition`.
"""

from stream.metrics.families import LATENCY_BUCKETS, Metrics, calibrations_pending

__all__ = ["LATENCY_BUCKETS", "Metrics", "calibrations_pending"]
