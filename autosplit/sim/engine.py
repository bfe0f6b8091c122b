"""The discrete-event core: a SimPy environment, the pool's slots, a priority queue of jobs, and a unit ledger.

A policy is a SimPy process (a generator, see :class:`~autosplit.sim.policy.Policy`) that submits
:class:`~autosplit.sim.jobs.SimJob` objects and waits on their events; dynamic policies (work queues, late
binding) may instead install a *feeder* that the pool asks for a job whenever a slot is free and the queue
is empty. Each attempt's outcome is computed when it starts, from the cumulative true seconds of its units
(one numpy ``searchsorted`` per limit, never a Python loop over units), and its end is one SimPy timeout.

The ledger holds each unit's state: pending, assigned (in a queued or running job), done, quarantined or
lost. A unit becomes done when an attempt that keeps its results finishes it; when a job's final attempt
ends, its other units go back to pending for the policy to deal with.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import simpy

from autosplit.datasets import Dataset
from autosplit.errors import AutosplitError
from autosplit.sim.jobs import Attempt, SimJob
from autosplit.sim.pool import Pool
from autosplit.sim.truth import Truth

PENDING, ASSIGNED, DONE, QUARANTINED, LOST = 0, 1, 2, 3, 4
STATE_NAMES = ("pending", "assigned", "done", "quarantined", "lost")

Feeder = Callable[["Simulation", int], SimJob | None]


class SimulationError(AutosplitError):
    """A policy asked the simulator for something inconsistent (e.g. to run a unit that is not pending)."""


class Simulation:
    """One task on one pool, simulated.

    Parameters
    ----------
    dataset:
        The units to process.
    truth:
        True per-unit costs (aligned with ``dataset.units``).
    pool:
        Slots, speeds, overheads, failures.
    seed:
        Seed of every random draw of the pool (slot order, overheads, node speeds, failures). Policies
        derive their own generators from :attr:`seed`.
    """

    def __init__(self, dataset: Dataset, truth: Truth, pool: Pool, *, seed: int = 0) -> None:
        if truth.n_units != dataset.n_units:
            raise SimulationError(f"truth has {truth.n_units} units, the dataset {dataset.n_units}")
        self.dataset = dataset
        self.truth = truth
        self.pool = pool
        self.seed = seed
        self.env = simpy.Environment()
        self.rng = np.random.default_rng([seed, 1])
        self.report_rng = np.random.default_rng([seed, 2])
        n = dataset.n_units
        self.state = np.zeros(n, dtype=np.int8)
        self.done_count = np.zeros(n, dtype=np.int32)
        self.reasons: list[tuple[str, str, int]] = []  # (state, reason, n_units)
        self.jobs: list[SimJob] = []
        self.attempts: list[Attempt] = []
        self._slot_factor = pool.time_factors[pool.slot_site]
        self._free: list[int] = [int(s) for s in self.rng.permutation(pool.n_slots)]
        self._queue: list[tuple[float, int, SimJob]] = []
        self._seq = 0
        self._feeder: Feeder | None = None
        self._hard_cap = math.inf if pool.max_wall_seconds is None else float(pool.max_wall_seconds)
        self._poison = truth.poison

    # ------------------------------------------------------------------ time
    @property
    def now(self) -> float:
        """Simulated seconds since the task started."""
        return float(self.env.now)

    def delay(self, seconds: float) -> simpy.Event:
        """An event ``seconds`` from now (policies ``yield`` it)."""
        return self.env.timeout(max(float(seconds), 0.0))

    # ------------------------------------------------------------------ submitting
    def submit(self, job: SimJob) -> simpy.Event:
        """Queue ``job``; returns the event that fires with its final :class:`Attempt`."""
        self._register(job)
        heapq.heappush(self._queue, (-job.priority, self._seq, job))
        self._seq += 1
        self._dispatch()
        return job.event

    def submit_many(self, jobs: Iterable[SimJob]) -> list[simpy.Event]:
        """Queue several jobs at once (dispatching after all are queued, so priorities order them)."""
        events = []
        for job in jobs:
            self._register(job)
            heapq.heappush(self._queue, (-job.priority, self._seq, job))
            self._seq += 1
            events.append(job.event)
        self._dispatch()
        return events

    def set_feeder(self, feeder: Feeder | None) -> None:
        """Install ``feeder(sim, site_index)``: asked for a job whenever a slot is free and the queue empty."""
        self._feeder = feeder
        self._dispatch()

    def wake(self) -> None:
        """Ask the feeder again (after a dynamic policy learned something that unblocks it)."""
        self._dispatch()

    def _register(self, job: SimJob) -> None:
        rows = job.rows
        if rows.size and (rows.min() < 0 or rows.max() >= self.state.size):
            raise SimulationError(f"job {job.name or job.stage}: unit rows outside the dataset")
        if rows.size and not (self.state[rows] == PENDING).all():
            bad = rows[self.state[rows] != PENDING][0]
            raise SimulationError(
                f"job {job.name or job.stage}: unit row {bad} is {STATE_NAMES[self.state[bad]]}, not pending"
            )
        if rows.size > 1:
            ordered = np.sort(rows)
            if (ordered[1:] == ordered[:-1]).any():
                raise SimulationError(f"job {job.name or job.stage}: a unit appears twice")
        self.state[rows] = ASSIGNED
        job.cum = np.cumsum(self.truth.seconds[rows])
        if self._poison is not None:
            hits = np.flatnonzero(self._poison[rows])
            job.poison_at = int(hits[0]) if hits.size else -1
        job.submitted = self.now
        job.event = self.env.event()
        self.jobs.append(job)

    # ------------------------------------------------------------------ running
    def _dispatch(self) -> None:
        free = self._free
        while free:
            if self._queue:
                job = heapq.heappop(self._queue)[2]
            elif self._feeder is not None:
                job = self._feeder(self, int(self.pool.slot_site[free[-1]]))
                if job is None:
                    return
                if job.event is None:
                    self._register(job)
            else:
                return
            self._start(job, free.pop())

    def _start(self, job: SimJob, slot: int) -> None:
        pool, rng, now = self.pool, self.rng, self.env.now
        overhead = pool.draw_overhead(rng)
        factor = float(self._slot_factor[slot]) * pool.draw_node(rng)
        if self.truth.drift is not None:
            factor *= self.truth.drift.factor(now + overhead)
        cum = job.cum
        n = cum.size
        soft = math.inf if job.soft_limit is None else float(job.soft_limit)
        hard = min(math.inf if job.hard_limit is None else float(job.hard_limit), self._hard_cap)

        # Units that start before the soft limit complete (unit k starts when unit k-1 ends).
        in_progress = -1
        n_run = n if soft == math.inf or n == 0 else min(n, 1 + int(cum.searchsorted(soft / factor, "left")))
        payload = float(cum[n_run - 1]) * factor if n_run else 0.0
        outcome = "soft" if n_run < n else "ok"
        if payload > hard:
            # SIGTERM at the hard limit: the unit in progress may finish within the grace period.
            k = int(cum.searchsorted(hard / factor, "right"))
            if k < n_run and cum[k] * factor <= hard + pool.grace_seconds:
                n_run, payload = k + 1, float(cum[k]) * factor
            else:
                n_run, payload, in_progress = k, hard + pool.grace_seconds, int(job.rows[k])
            outcome = "killed"
        failed_unit = -1
        p = job.poison_at
        if 0 <= p < n:
            started = float(cum[p - 1]) if p else 0.0
            crash = (started + 0.5 * float(cum[p] - started)) * factor
            if started * factor < min(soft, hard) and crash < payload:
                n_run, payload, outcome, failed_unit = p, crash, "unit", int(job.rows[p])
                in_progress = -1
        if pool.failure_rate > 0:
            tau = float(rng.exponential(1.0 / pool.failure_rate))
            if tau < overhead + payload:
                payload = max(tau - overhead, 0.0)
                overhead = min(overhead, tau)
                n_run = int(cum.searchsorted(payload / factor, "right"))
                outcome, failed_unit, in_progress = "crash", -1, -1

        if (
            not job.keep_results
            or outcome in ("crash", "unit")
            or (outcome == "killed" and not job.keep_on_kill and not (job.graceful_stop and in_progress < 0))
        ):
            n_kept = 0
        else:
            n_kept = n_run
        useful = float(cum[n_kept - 1]) * factor if n_kept else 0.0
        attempt = Attempt(
            job=job,
            number=len(job.attempts),
            slot=slot,
            site=int(pool.slot_site[slot]),
            factor=float(factor),
            dispatched=float(now),
            overhead=overhead,
            payload=payload,
            end=float(now) + overhead + payload,
            n_run=n_run,
            n_kept=n_kept,
            outcome=outcome,
            failed_unit=failed_unit,
            useful=useful,
            thrown=max(payload - useful, 0.0),
            in_progress=in_progress,
        )
        job.attempts.append(attempt)
        self.attempts.append(attempt)
        self.env.timeout(overhead + payload).callbacks.append(lambda _event: self._finish(attempt))

    def _finish(self, attempt: Attempt) -> None:
        job = attempt.job
        self._free.append(attempt.slot)
        if attempt.n_kept:
            kept = job.rows[: attempt.n_kept]
            again = self.done_count[kept] > 0
            if again.any():  # work done twice counts as thrown away
                attempt.duplicate = float(self.truth.seconds[kept[again]].sum()) * attempt.factor
                attempt.useful -= attempt.duplicate
                attempt.thrown += attempt.duplicate
            self.done_count[kept] += 1
            self.state[kept] = DONE
        if attempt.outcome in job.retry_on and attempt.number < job.retries:
            if job.retry_delay > 0:
                self.env.timeout(job.retry_delay).callbacks.append(lambda _event: self._requeue(job))
            else:
                self._requeue(job, dispatch=False)
        else:
            attempt.final = True
            self.state[job.rows[attempt.n_kept :]] = PENDING
            if job.on_done is not None:
                job.on_done(attempt)
            job.event.succeed(attempt)
        self._dispatch()

    def _requeue(self, job: SimJob, dispatch: bool = True) -> None:
        heapq.heappush(self._queue, (-job.priority, self._seq, job))
        self._seq += 1
        if dispatch:
            self._dispatch()

    # ------------------------------------------------------------------ waiting
    def wait_count(self, events: Sequence[simpy.Event], count: int) -> simpy.Event:
        """An event that fires once ``count`` of ``events`` have fired."""
        done = self.env.event()
        needed = min(int(count), len(events))
        seen = 0

        def tick(_event: Any = None) -> None:
            nonlocal seen
            seen += 1
            if seen == needed:
                done.succeed()

        if needed <= 0:
            done.succeed()
            return done
        for event in events:
            if event.callbacks is None:
                tick()
            else:
                event.callbacks.append(tick)
        return done

    def wait_all(self, events: Sequence[simpy.Event]) -> simpy.Event:
        """An event that fires once every one of ``events`` has fired."""
        return self.wait_count(events, len(events))

    # ------------------------------------------------------------------ ledger
    def pending_rows(self) -> np.ndarray:
        """Rows of the units waiting for a job (int64, ascending)."""
        return np.flatnonzero(self.state == PENDING)

    def _close(self, rows: np.ndarray, state: int, reason: str) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        if not (self.state[rows] == PENDING).all():
            raise SimulationError(f"only pending units can be {STATE_NAMES[state]}")
        self.state[rows] = state
        self.reasons.append((STATE_NAMES[state], reason, int(rows.size)))

    def quarantine(self, rows: np.ndarray, reason: str) -> None:
        """Give up on pending units with a reason the user sees (autosplit's quarantine)."""
        self._close(rows, QUARANTINED, reason)

    def lose(self, rows: np.ndarray, reason: str) -> None:
        """Pending units the policy drops without telling (e.g. CRAB3 tails failing all retries)."""
        self._close(rows, LOST, reason)

    def counts(self) -> dict[str, int]:
        """Units per state."""
        numbers = np.bincount(self.state, minlength=len(STATE_NAMES))
        return {name: int(numbers[i]) for i, name in enumerate(STATE_NAMES)}

    # ------------------------------------------------------------------ running a policy
    def run(self, policy: Any, *, until: float | None = None) -> Any:
        """Run ``policy`` (an object with ``run(sim)`` returning a generator) to the end; return the metrics.

        ``until`` stops the simulation at that simulated time (seconds) even if work remains.
        """
        from autosplit.sim.metrics import summarize

        self.env.process(policy.run(self))
        self.env.run(until=until)
        return summarize(self, getattr(policy, "name", type(policy).__name__))
