"""The Faust application: ``faust -A stream.app worker`` and ``driftwatch worker`` start it.

Nothing is built at import. Faust resolves ``-A stream.app`` by importing this module and
reading its attribute ``app``; that attribute (PEP 562 module ``__getattr__``) builds the
worker's composition root (:class:`~stream.worker.root.WorkerRoot`) from the settings in the
environment (and ``DRIFTWATCH_CONFIG``) on first access, once per process.
"""

from __future__ import annotations

import functools

import faust

from stream.settings import load_settings
from stream.worker.root import WorkerRoot

__all__ = ["worker"]  # and `app`, built on first access


@functools.cache
def worker() -> WorkerRoot:
    """The process's worker root, built on the first call from the environment's settings."""
    return WorkerRoot(load_settings())


def __getattr__(name: str) -> faust.App:
    if name == "app":
        return worker().app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
