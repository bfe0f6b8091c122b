"""coffea's dynamic chunksize on the WorkQueue executor (reference notes peers.md §1.3).

* Chunks are ranges of one file; the generator is told the current chunksize and re-divides the rest of the
  file evenly into ``round(remaining / chunksize)`` pieces (executor.py:116-163). Initial chunksize
  100,000 events (``Runner(chunksize=100000)``).
* After **every** finished task the target is recomputed (work_queue_tools.py:1280-1320): per-task rates
  events / execution time; tasks whose rate is **below the 25 % quantile are dropped**; a linear fit
  ``events = slope * time + intercept`` (``scipy.stats.linregress``) is evaluated at the ``wall_time``
  target, falling back to the median rate when ``slope < 0`` or ``intercept > 0``; the result is floored to
  a **power of 2** (lines 1232-1278).
* **Exploration**: 10 % of submissions use half the chunksize (``_sample_chunksize``, lines 1238-1246).
* **Failures**: ``retries = 2`` (executor.py:578); a failed chunk is split into halves
  (``split_on_exhaustion``, work_queue_tools.py:951-990), each half keeping the attempt count; a chunk
  failing every attempt is lost.
* No time limit on tasks (the dynamic chunksize is a target, not a limit); execution time includes the
  task's setup, which the fit's negative intercept absorbs.

Simplifications: chunks are cut at lumi boundaries (units of ~900 events, against chunks of thousands);
WorkQueue's per-task overhead is the pool's overhead, like every other policy's.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy.stats import linregress

from autosplit.sim import SimJob


def linear_fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of ``y = slope * x + intercept`` by least squares, as coffea fits them with
    ``scipy.stats.linregress`` (the same estimates, computed directly: this runs after every task); NaN
    when every ``x`` is the same (no line can be fitted)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.size < 2 or np.ptp(x) == 0:
        return math.nan, math.nan
    dx = x - x.mean()
    slope = float(dx @ (y - y.mean()) / (dx @ dx))
    return slope, float(y.mean() - slope * x.mean())


def linear_fit_scipy(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """:func:`linear_fit` by ``scipy.stats.linregress`` itself (the tests compare the two)."""
    if np.ptp(x) == 0:
        return math.nan, math.nan
    fit = linregress(x, y)
    return float(fit.slope), float(fit.intercept)


@dataclass
class CoffeaPolicy:
    """coffea WorkQueue ``dynamic_chunksize={"wall_time": target}``; see the module docstring."""

    target_runtime: float = 8 * 3600.0  #: dynamic_chunksize wall_time target (seconds)
    chunksize: int = 100_000
    explore_fraction: float = 0.1
    drop_quantile: float = 0.25
    retries: int = 2
    name: str = "coffea"
    chunksizes_: list[int] = field(default_factory=list, init=False, repr=False)

    def _record(self, events: float, seconds: float) -> None:
        n = self._n_done
        if n == self._done_buffer.shape[1]:
            self._done_buffer = np.concatenate([self._done_buffer, np.empty_like(self._done_buffer)], axis=1)
        self._done_buffer[:, n] = (events, seconds)
        self._n_done = n + 1

    def _update(self) -> None:
        """Recompute the chunksize from every finished task."""
        events = self._done_buffer[0, : self._n_done]
        seconds = self._done_buffer[1, : self._n_done]
        rates = events / seconds
        keep = rates >= np.quantile(rates, self.drop_quantile)
        slope, intercept = (
            linear_fit(seconds[keep], events[keep]) if keep.sum() >= 2 else (math.nan, math.nan)
        )
        if not math.isfinite(slope) or slope < 0 or intercept > 0:
            target = float(np.median(rates[keep])) * self.target_runtime
        else:
            target = slope * self.target_runtime + intercept
        self._size = 2 ** int(math.floor(math.log2(max(target, 1.0))))
        self.chunksizes_.append(self._size)

    def _has_more(self) -> bool:
        """True while some file has units not yet in a chunk (moves past used-up files)."""
        while self._file < len(self._files) and self._cursor >= self._files[self._file].size:
            self._file += 1
            self._cursor = 0
        return self._file < len(self._files)

    def _next_chunk(self) -> np.ndarray | None:
        """Rows of the next chunk of the current file (moving to the next file when one is used up)."""
        if not self._has_more():
            return None
        rows = self._files[self._file][self._cursor :]
        size = self._size / 2 if self._rng.random() < self.explore_fraction else self._size
        events = self._events[rows]
        remaining = float(events.sum())
        pieces = max(int(round(remaining / size)), 1)
        if pieces == 1:
            take = rows.size
        else:
            take = int(np.searchsorted(np.cumsum(events), remaining / pieces, side="left")) + 1
        self._cursor += take
        return rows[:take]

    def _job(self, rows: np.ndarray, attempt: int) -> SimJob:
        return SimJob(rows, stage="chunks", meta={"attempt": attempt}, on_done=self._on_done)

    def _feed(self, sim: Any, site: int) -> SimJob | None:
        if self._retry:
            rows, attempt = self._retry.popleft()
            job = self._job(rows, attempt)
        else:
            rows = self._next_chunk()
            if rows is None:
                return None
            job = self._job(rows, 1)
        self._outstanding += 1
        return job

    def _on_done(self, attempt: Any) -> None:
        self._outstanding -= 1
        job = attempt.job
        if attempt.outcome in ("ok", "soft"):
            self._record(float(self._events[job.rows].sum()), attempt.overhead + attempt.payload)
            self._update()
        else:
            number = job.meta["attempt"]
            if number > self.retries:
                self._sim.lose(attempt.left_rows, f"chunk failed {number} times")
            elif job.n_units > 1:
                half = job.n_units // 2
                self._retry.extend([(job.rows[:half], number + 1), (job.rows[half:], number + 1)])
            else:
                self._retry.append((job.rows, number + 1))
        if self._outstanding == 0 and not self._retry and not self._has_more():
            if not self._done.triggered:
                self._done.succeed()

    def run(self, sim: Any) -> Generator[Any, Any, None]:
        self._sim = sim
        self._rng = np.random.default_rng([sim.seed, 505])
        units = sim.dataset.units
        self._events = units["events"].to_numpy().astype(np.float64)
        file_of = units["file_id"].to_numpy().astype(np.int64)
        order = np.argsort(file_of, kind="stable")
        _, starts = np.unique(file_of[order], return_index=True)
        self._files = np.split(order, starts[1:])
        self._file = self._cursor = 0
        self._size = self.chunksize
        self._done_buffer = np.empty((2, 1024))
        self._n_done = 0
        self._retry: deque[tuple[np.ndarray, int]] = deque()
        self._outstanding = 0
        self._done = sim.env.event()
        if not self._has_more():
            return
        sim.set_feeder(self._feed)
        yield self._done
        sim.set_feeder(None)


def make(workload: Any, **params: Any) -> CoffeaPolicy:
    """coffea for a benchmark workload (wall-time target = its target runtime)."""
    return CoffeaPolicy(target_runtime=workload.target_runtime, **params)
