"""Equality of plain data (states, checkpoint bodies): what the state tests compare with."""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

import numpy as np

__all__ = ["same_plain"]


def same_plain(a: Any, b: Any, *, ignore: Collection[str] = ()) -> bool:
    """Whether ``a`` and ``b`` are the same plain data.

    Dicts have the same keys in the same order and equal values (keys in ``ignore`` aside, at
    any depth: e.g. a calibration's wall-clock ``seconds``); lists and tuples are equal item
    for item; arrays have the same dtype and values; other values have the same type and are
    equal, NaN equal to NaN (in arrays too).
    """
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(
            same_plain(a[k], b[k], ignore=ignore) for k in a if k not in ignore
        )
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return (
            type(a) is type(b)
            and len(a) == len(b)
            and all(same_plain(x, y, ignore=ignore) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))
        )
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and bool(a == b)
