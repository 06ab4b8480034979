"""Where each (key, feature) stream's reference comes from.

``warmup`` (default): the first ``reference_size`` observations of each (key, feature) become its
reference; nothing is flagged until then. ``file``: the columns of ``reference_file`` (Parquet,
CSV or JSON Lines; e.g. the last training window), NaNs dropped, shared by every key.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from stream.exceptions import InputFileError
from stream.monitor import ReferenceSource
from stream.settings import Settings
from stream.sources import read_columns

__all__ = ["load_reference_file", "reference_source"]


def load_reference_file(path: str, features: tuple[str, ...]) -> dict[str, npt.NDArray[np.float64]]:
    """Read one reference sample per feature from ``path`` (NaNs dropped; none may be empty)."""
    columns = read_columns(path, list(features))
    out: dict[str, npt.NDArray[np.float64]] = {}
    for name, values in columns.items():
        finite = values[np.isfinite(values)]
        if finite.size == 0:
            raise InputFileError(path, f"column {name!r} has no finite values to use as reference")
        out[name] = finite
    return out


def reference_source(settings: Settings) -> ReferenceSource | None:
    """The reference policy of ``settings`` as a callable, or None for warm-up."""
    if settings.reference_mode != "file" or not settings.reference_file:
        return None
    refs = load_reference_file(settings.reference_file, settings.features)

    def source(key: str, feature: str) -> npt.NDArray[np.float64] | None:
        return refs.get(feature)

    return source
