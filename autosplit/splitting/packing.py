"""Greedy packing of ordered units into consecutive jobs.

Both packers walk the units in planning order and close a job when the next unit would break a limit.
Additive limits (events, bytes, files, mean seconds) are cumulative sums, so the farthest end allowed for
*every* possible job start is one vectorized ``searchsorted``; following those ends from unit 0 is a loop
over jobs, not units. The runtime quantile is not additive (a function of summed means and
variances), so :func:`pack_by_quantile` evaluates it on each job's candidate window, still one numpy call
per job.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from autosplit._quantile import payload_quantile


def cumulative(values: np.ndarray) -> np.ndarray:
    """``C`` with ``C[0] = 0`` and ``C[k]`` the sum of the first ``k`` values (length n + 1)."""
    values = np.asarray(values)
    out = np.zeros(values.size + 1, dtype=np.float64 if values.dtype.kind == "f" else np.int64)
    np.cumsum(values, out=out[1:])
    return out


def segment_ends(segment_start: np.ndarray) -> np.ndarray:
    """For each unit, the exclusive end of its segment (units that may share a job)."""
    n = segment_start.size
    if n == 0:
        return np.empty(0, np.int64)
    starts = np.flatnonzero(segment_start)
    ends = np.append(starts[1:], n)
    return ends[np.cumsum(segment_start) - 1]


def additive_ends(cum: np.ndarray, limit: float | np.ndarray) -> np.ndarray:
    """For each start i, the largest exclusive end j with ``cum[j] - cum[i] <= limit`` (may equal i)."""
    ends = np.searchsorted(cum, cum[:-1] + limit, side="right")
    ends -= 1
    return ends


def job_starts(ends: np.ndarray) -> np.ndarray:
    """Follow ``ends`` from unit 0: the first unit of every job. Each job holds at least one unit."""
    n = ends.size
    starts = []
    i = 0
    while i < n:
        starts.append(i)
        i = max(ends.item(i), i + 1)
    return np.asarray(starts, dtype=np.int64)


def starts_to_jobs(starts: np.ndarray, n: int) -> np.ndarray:
    """Job index (0, 1, ...) of every unit, given each job's first unit."""
    sizes = np.diff(np.append(starts, n))
    return np.repeat(np.arange(starts.size, dtype=np.int64), sizes)


def pack_by_quantile(
    cum_mean: np.ndarray,
    cum_var: np.ndarray,
    *,
    target: float,
    overhead: float,
    z: float,
    shared_cv: float,
    segment_start: np.ndarray,
    cap_ends: np.ndarray | None = None,
    mean_budget: Callable[[int, float], float] | None = None,
) -> np.ndarray:
    """Greedy jobs whose runtime quantile (:func:`~autosplit._quantile.payload_quantile` at ``z``, plus the
    overhead) stays <= ``target`` (seconds).

    ``cum_mean`` and ``cum_var`` are :func:`cumulative` sums of the units' mean seconds and variances. A job
    holding units ``i..j-1`` has mean ``overhead + sum(mean)`` and variance
    ``sum(var) + (shared_cv * sum(mean)) ** 2``. Jobs never cross a ``segment_start``; ``cap_ends[i]``, when
    given, bounds a job starting at ``i`` from above (additive caps, see :func:`additive_ends`).
    ``mean_budget(k, remaining)``, when given, caps the summed unit means of job ``k`` given the predicted
    seconds of all units not yet in a job (factoring uses it to hand out decreasing job sizes).
    Every unit must fit alone: the caller removes units whose own quantile exceeds the target.
    Bounds are looked up per job, so memory stays a few arrays of the dataset's length.
    Returns the first unit of every job.
    """
    n = cum_mean.size - 1
    c2 = shared_cv * shared_cv
    segment_firsts = np.append(np.flatnonzero(segment_start), n)
    mean_room = target - overhead
    starts: list[int] = []
    i = 0
    while i < n:
        room = mean_room
        if mean_budget is not None:
            room = min(room, mean_budget(len(starts), float(cum_mean[n] - cum_mean[i])))
        hi = int(cum_mean.searchsorted(cum_mean[i] + room, side="right")) - 1
        hi = min(hi, int(segment_firsts[segment_firsts.searchsorted(i, side="right")]))
        if cap_ends is not None:
            hi = min(hi, cap_ends.item(i))
        starts.append(i)
        if hi - i <= 1:
            i += 1
            continue
        window_mean = cum_mean[i + 1 : hi + 1] - cum_mean[i]
        window_var = cum_var[i + 1 : hi + 1] - cum_var[i]
        quantile = overhead + payload_quantile(window_mean, window_var + c2 * window_mean * window_mean, z)
        # Its running maximum: the quantile may dip along the window at very small alpha.
        quantile = np.maximum.accumulate(quantile)
        fits = int(quantile.searchsorted(target, side="right"))
        i += max(fits, 1)
    return np.asarray(starts, dtype=np.int64)
