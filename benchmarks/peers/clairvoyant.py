"""The clairvoyant bound policy: what a scheduler that knew everything could achieve on the same pool.

It knows what no real system knows: every unit's **true** cost, the pool's **true** slot count and site
speeds, the drift of the cost with time, the failure hazard, and which units are poison (set aside with a
reason before anything runs). It does not know the future random draws of the pool (per-job overhead,
node jitter, when a node fails). With that:

* **Longest processing time first**: units are bound in decreasing true cost, so the huge ones start at
  once and the last jobs hold only small units.
* **Decreasing sizes by factoring over the true remaining work** (Hummel, Schonberg & Flynn 1992,
  peers.md "Theory" 2): when a slot frees up it gets a job whose wall time on *that* slot (site factor and
  drift at its start included) is ``min(cap, max(floor, T / factoring))``, where ``T`` is the wall time
  the whole pool needs for the unbound work (true reference seconds over the summed slot speed). ``cap``
  is the target runtime, shortened under failures to Young's optimum ``sqrt(2 * overhead / hazard)``
  (peers.md "Theory" 3); ``floor`` is ``floor_overheads`` mean per-job overheads.
* Late binding (a feeder), no soft or hard limit, no stage barrier. A job lost to a node failure returns
  its units to the unbound pool at once (no retry delay).

It is a strong *achievable reference*, not a proof of optimality; the analytic lower bound
(:func:`autosplit.sim.lower_bound`, the ``bound`` row) is what no schedule can beat.

``clairvoyant-blind`` (:func:`make_blind`) knows all of the above except the one thing a late-binding
DAG node cannot know when its job is written: the slot it will land on. It sizes every job for the pool's
slot-weighted mean time factor, as autosplit must (``benchmarks/bench_site_blind.py`` compares the two).

``informed`` (:func:`make_informed`) is the same policy planning with each unit's **expected** cost given
what the dataset shows (the mean of :data:`INFORMED_DRAWS` independent draws of the workload's costs), not
the draw this run meets: a static plan with a perfect model of the features (pile-up, events, files, sites,
drift) and no knowledge of the per-lumi, per-run or per-file randomness. It is a reference, not a bound: a
policy that learns this run's costs as it goes can beat it where whole runs or files share a factor
(autosplit's per-run factors on ``run-cost``). Where single lumis cost what nothing shows before they run
(``pileup``, ``heavy-tail``, ``pareto``, ``slow-lumis``), no policy can learn them in time, and ``informed``
shows how far such lumis alone push the makespan.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np

from autosplit.sim import SimJob


@dataclass
class ClairvoyantPolicy:
    """LPT order, factoring over the true remaining work, true slots; see the module docstring (seconds)."""

    target_runtime: float = 8 * 3600.0
    factoring: float = 1.5
    floor_overheads: float = 3.0
    name: str = "clairvoyant"
    #: Per-unit reference seconds the policy orders and sizes by (``None``: the true costs of the run).
    planning_seconds: np.ndarray | None = None
    #: Size each job for the speed of the slot it lands on (False: for the pool's mean slot).
    sees_slot: bool = True

    def cap(self, pool: Any) -> float:
        """Longest job (wall seconds of payload): the target, or Young's optimum under failures."""
        if pool.failure_rate > 0 and pool.overhead_seconds > 0:
            return min(self.target_runtime, math.sqrt(2.0 * pool.overhead_seconds / pool.failure_rate))
        return self.target_runtime

    # ------------------------------------------------------------------ the feeder
    def _feed(self, sim: Any, site: int) -> SimJob | None:
        queue = self._queue
        if self._pos >= queue.size:
            return None
        pool = sim.pool
        drift = sim.truth.drift
        d = drift.factor(sim.now + pool.overhead_seconds) if drift is not None else 1.0
        g = float(pool.time_factors[site]) if self.sees_slot else pool.mean_time_factor
        whole_pool = self._remaining * d / pool.speed_sum
        wall = min(self._cap, max(self._floor, whole_pool / self.factoring))
        budget = wall / (g * d)
        start = self._pos
        take = 1
        window = 64
        while True:
            stop = min(start + window, queue.size)
            cum = np.cumsum(self._cost[queue[start:stop]])
            fit = int(np.searchsorted(cum, budget, side="right"))
            if fit < stop - start or stop == queue.size:
                take = max(fit, 1)
                break
            window *= 4
        rows = queue[start : start + take]
        self._pos = start + take
        self._remaining -= float(self._cost[rows].sum())
        self._outstanding += 1
        return SimJob(rows, stage="processing", on_done=self._on_done)

    def _on_done(self, attempt: Any) -> None:
        self._outstanding -= 1
        left = attempt.left_rows
        if left.size:  # lost to a node failure: back to the unbound units, in LPT order
            rest = np.concatenate([self._queue[self._pos :], left])
            self._queue = rest[np.argsort(-self._cost[rest], kind="stable")]
            self._pos = 0
            self._remaining += float(self._cost[left].sum())
        if self._outstanding == 0 and self._pos >= self._queue.size and not self._done.triggered:
            self._done.succeed()

    # ------------------------------------------------------------------ the task
    def run(self, sim: Any) -> Generator[Any, Any, None]:
        truth, pool = sim.truth, sim.pool
        sim.quarantine(np.flatnonzero(~truth.workable()), "known to crash the user code")
        rows = sim.pending_rows()
        self._cost = truth.seconds if self.planning_seconds is None else self.planning_seconds
        self._queue = rows[np.argsort(-self._cost[rows], kind="stable")]
        self._pos = 0
        self._remaining = float(self._cost[rows].sum())
        self._outstanding = 0
        self._cap = self.cap(pool)
        self._floor = min(self.floor_overheads * pool.overhead_seconds, self._cap)
        self._done = sim.env.event()
        if rows.size == 0:
            return
        sim.set_feeder(self._feed)
        yield self._done
        sim.set_feeder(None)


def make(workload: Any, **params: Any) -> ClairvoyantPolicy:
    """The clairvoyant policy for a benchmark workload (its target runtime)."""
    return ClairvoyantPolicy(target_runtime=workload.target_runtime, **params)


#: Draws of a workload's costs averaged into the ``informed`` policy's per-unit expectation (1.5 ms each on
#: 30,000 lumis; the Monte Carlo error of a unit's expectation is its cost's coefficient of variation over
#: 32, at most 4 % on the benchmark's workloads).
INFORMED_DRAWS = 1024

_EXPECTED: dict[tuple, np.ndarray] = {}


def expected_seconds(workload: Any, draws: int = INFORMED_DRAWS) -> np.ndarray:
    """Each unit's expected true reference seconds given the dataset: the mean over ``draws`` draws of the
    workload's costs, with seeds no benchmark run uses (cached per workload and profile)."""
    key = (*workload.cache_key, draws)
    if key not in _EXPECTED:
        dataset = workload.dataset()
        total = np.zeros(dataset.n_units)
        for k in range(draws):
            total += workload._raw_seconds(dataset, [10_000 + k, 11])
        _EXPECTED[key] = total / draws * workload.scale()
    return _EXPECTED[key]


def make_blind(workload: Any, **params: Any) -> ClairvoyantPolicy:
    """The clairvoyant policy sizing every job for the pool's mean slot (see the module docstring)."""
    params.setdefault("name", "clairvoyant-blind")
    return ClairvoyantPolicy(target_runtime=workload.target_runtime, sees_slot=False, **params)


def make_informed(workload: Any, **params: Any) -> ClairvoyantPolicy:
    """The clairvoyant policy ordering and sizing by expected costs (see the module docstring)."""
    params.setdefault("name", "informed")
    return ClairvoyantPolicy(
        target_runtime=workload.target_runtime, planning_seconds=expected_seconds(workload), **params
    )
