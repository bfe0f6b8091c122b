"""What the scheduler learns about the pool by watching it: concurrency, per-job overhead, failure hazard.

Nothing here is configured: the numbers come from the calls the driver makes (``next_jobs`` with its free
slots, reports and failures with their times).

* **Concurrency**: jobs running plus slots offered, the largest seen over a recent window (slots come and go).
* **Slot overhead**: seconds a job holds its slot beyond its payload (queueing share, set-up, stage-in and
  stage-out): time from the request to the report minus the payload's wall time.
* **Failure hazard**: jobs lost (no report) per second of slot time (the running jobs' so far included),
  the rate of a Poisson process.
* **Slots per site**: the most jobs whose payloads ran at once at each site (:func:`slots_per_site`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence

import numpy as np


class PoolObserver:
    """Running estimates of the pool's concurrency, per-job slot overhead and failure hazard.

    ``window_seconds`` is how long an observed concurrency is remembered.
    """

    def __init__(self, window_seconds: float) -> None:
        self.window_seconds = float(window_seconds)
        self._peaks: deque[tuple[float, int]] = deque()
        self.overheads: list[float] = []
        self.exposure_seconds = 0.0
        self.n_lost = 0
        self.n_ended = 0

    # ------------------------------------------------------------------ concurrency
    def offer(self, now: float, running: int, free_slots: int) -> None:
        """Record that ``running`` jobs ran and ``free_slots`` more slots were offered at ``now``."""
        value = int(running) + int(free_slots)
        peaks = self._peaks
        while peaks and peaks[-1][1] <= value:
            peaks.pop()
        peaks.append((float(now), value))
        while peaks and peaks[0][0] < now - self.window_seconds and len(peaks) > 1:
            peaks.popleft()

    def concurrency(self) -> int:
        """The largest concurrency seen in the window (at least 1)."""
        return max(self._peaks[0][1], 1) if self._peaks else 1

    # ------------------------------------------------------------------ overhead and failures
    def ended(self, elapsed: float, payload_wall: float | None, lost: bool) -> None:
        """A job ended ``elapsed`` seconds after it was requested; ``payload_wall`` from its report."""
        elapsed = max(float(elapsed), 0.0)
        self.exposure_seconds += elapsed
        self.n_ended += 1
        if lost:
            self.n_lost += 1
        elif payload_wall is not None and math.isfinite(payload_wall):
            self.overheads.append(max(elapsed - float(payload_wall), 0.0))

    def slot_overhead(self, default: float = 0.0) -> float:
        """Median seconds a job held its slot beyond its payload (``default`` before any report)."""
        if not self.overheads:
            return default
        values = sorted(self.overheads[-2000:])
        return float(values[len(values) // 2])

    def hazard(self, min_events: int = 3, running_seconds: float = 0.0, excluding=0):
        """Jobs lost per slot-second, 0 until ``min_events`` losses were seen: the losses over the slot time
        of the jobs that ended plus ``running_seconds``, the slot time so far of the jobs still running.
        ``excluding`` (a count, or an array of counts) leaves that many losses out (a unit's own).

        Without the running jobs' time the rate is biased high early in a task, when lost jobs have ended
        and most others have not: on ``grid``/``constant`` (48 h mean time between failures) it read up to
        three times the true rate in the first tenth of the task, and Young's cap came out at 2.2 h there
        against the 4 h it settles at."""
        exposure = self.exposure_seconds + max(float(running_seconds), 0.0)
        losses = self.n_lost - np.asarray(excluding, dtype=np.float64)
        rate = np.where((losses >= min_events) & (exposure > 0), losses / max(exposure, 1e-9), 0.0)
        return float(rate) if rate.ndim == 0 else rate


def slots_per_site(sites: Sequence[str], starts: np.ndarray, ends: np.ndarray) -> dict[str, int]:
    """The most jobs seen running at once at each site (at least 1 for a site with a job): an estimate of
    the slots the task got there.

    ``sites``, ``starts`` and ``ends`` (seconds) describe one job each; a job ending at the moment another
    starts does not overlap it. Jobs without a site (``""``) are left out. The times are when the driver saw
    each job start and end, so jobs it saw late may look more overlapped than they were.
    """
    starts = np.asarray(starts, dtype=np.float64)
    ends = np.asarray(ends, dtype=np.float64)
    out: dict[str, int] = {}
    names = np.asarray(sites, dtype=object)
    for site in sorted({s for s in sites if s}):
        mine = names == site
        times = np.concatenate([starts[mine], ends[mine]])
        steps = np.concatenate([np.ones(int(mine.sum())), -np.ones(int(mine.sum()))])
        order = np.lexsort((steps, times))  # at equal times, ends (-1) before starts (+1)
        out[site] = max(int(np.cumsum(steps[order]).max()), 1)
    return out
