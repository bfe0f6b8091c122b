"""Small numpy helpers used on hot paths.

``np.unique`` in numpy >= 2.3 may choose a hash-based path that is several times slower than sorting for
the int64 keys used here, so these helpers sort explicitly.
"""

from __future__ import annotations

import numpy as np


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values of a 1-d array."""
    values = np.sort(np.asarray(values).ravel(), kind="stable")
    if values.size == 0:
        return values
    keep = np.empty(values.size, dtype=bool)
    keep[0] = True
    np.not_equal(values[1:], values[:-1], out=keep[1:])
    return values[keep]


def first_duplicate(values: np.ndarray) -> int | None:
    """Position (in the original array) of one value that occurs more than once, or None."""
    values = np.asarray(values).ravel()
    if values.size < 2:
        return None
    order = np.argsort(values, kind="stable")
    same = np.flatnonzero(values[order][1:] == values[order][:-1])
    return int(order[same[0] + 1]) if same.size else None
