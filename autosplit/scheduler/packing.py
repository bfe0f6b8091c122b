"""Cutting the next job off the front of a queue of pending units.

A job takes the longest prefix of the queue (in planning order) that

* stays in the first unit's planning segment (one location set; optionally one run),
* keeps its predicted mean payload within the size budget (factoring: shrinking as the work runs out),
* keeps its ``(1 - alpha)`` runtime quantile within the packing target: ``overhead`` plus the payload's
  quantile (:mod:`autosplit._quantile`) of mean ``m`` and variance ``v + (shared_cv * m) ** 2`` (``m``, ``v``:
  summed unit means and variances),
* respects the caps (files, events, predicted output bytes per job).

Only a window of the queue a little longer than the job is summed, so a job costs time in its own size,
not in the queue's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from autosplit._quantile import payload_quantile


@dataclass
class Predictions:
    """Per-unit predictions (seconds, aligned with the dataset's units) and the job-level terms."""

    mean: np.ndarray
    var: np.ndarray
    q99: np.ndarray
    overhead: float
    shared_cv: float
    z: float
    output_bytes: np.ndarray | None = None

    def quantile(self, mean: float | np.ndarray, var: float | np.ndarray) -> np.ndarray:
        """The planner's upper quantile (seconds) of a job with summed unit ``mean`` and ``var``: the
        overhead plus :func:`~autosplit._quantile.payload_quantile` of the payload, whose variance is
        ``var + (shared_cv * mean) ** 2``."""
        mean = np.asarray(mean, dtype=np.float64)
        total = np.asarray(var, dtype=np.float64) + self.shared_cv * self.shared_cv * np.square(mean)
        return self.overhead + payload_quantile(mean, total, self.z)

    def alone_quantile(self) -> np.ndarray:
        """Each unit's upper quantile when it runs alone (seconds)."""
        return self.quantile(self.mean, self.var)


@dataclass
class Caps:
    """Per-job caps; ``None`` for none. ``events`` and ``file_id`` are per-unit arrays of the dataset."""

    events: np.ndarray
    file_id: np.ndarray
    extra_files: np.ndarray
    max_files: int | None = None
    max_events: int | None = None
    max_output_bytes: float | None = None


def cut_job(
    queue: np.ndarray,
    segment: np.ndarray,
    predictions: Predictions,
    caps: Caps,
    *,
    mean_budget: float,
    target: float,
) -> int:
    """How many units from the front of ``queue`` (unit rows) form the next job (at least 1)."""
    n = int(queue.size)
    if n == 0:
        return 0
    mean_all = predictions.mean
    per_unit = max(float(mean_all[queue[: min(n, 64)]].mean()), 1e-9)
    window = int(min(n, max(16, 2 * mean_budget / per_unit + 16)))
    while True:
        rows = queue[:window]
        k = _fit_prefix(rows, segment, predictions, caps, mean_budget=mean_budget, target=target)
        if k < window or window == n:
            return max(k, 1)
        window = min(n, 2 * window)


def _fit_prefix(
    rows: np.ndarray,
    segment: np.ndarray,
    p: Predictions,
    caps: Caps,
    *,
    mean_budget: float,
    target: float,
) -> int:
    seg = segment[rows]
    limit = int(np.argmax(seg != seg[0])) if (seg != seg[0]).any() else rows.size
    rows = rows[:limit]
    cum_mean = np.cumsum(p.mean[rows])
    cum_var = np.cumsum(p.var[rows])
    ok = cum_mean <= mean_budget
    ok &= p.quantile(cum_mean, cum_var) <= target
    if caps.max_events is not None:
        ok &= np.cumsum(caps.events[rows]) <= caps.max_events
    if caps.max_output_bytes is not None and p.output_bytes is not None:
        ok &= np.cumsum(p.output_bytes[rows]) <= caps.max_output_bytes
    if caps.max_files is not None:
        files = caps.file_id[rows]
        new_file = np.ones(rows.size, dtype=np.int64)
        new_file[1:] = files[1:] != files[:-1]
        ok &= np.cumsum(new_file + caps.extra_files[rows]) <= caps.max_files
    # The prefix ends at the first unit that breaks a limit (the quantile may dip after it at very small
    # alpha, see autosplit._quantile; the job still ends there).
    return int(np.argmin(ok)) if not ok.all() else int(rows.size)
