"""Rebuilding a scheduler from a durable record (a task's ledger) after its saved state was lost.

The record holds what every decision left behind: each unit's state and counters, each job (its units,
stage, limits, times, outcome), the reports that measured something, and how long each ended job held its
slot. From these the scheduler is rebuilt in a consistent state: units in their queues, running jobs
running, the cost model refitted on the reports (with the running jobs censored), the probe round still
open if probes still run. Decisions taken after the rebuild follow from that state; they need not be the
ones the lost state would have taken, but every unit stays accounted for exactly once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from autosplit.jobreport import JobReport
from autosplit.scheduler.book import ASSIGNED, PENDING, QUARANTINED
from autosplit.scheduler.core import Scheduler
from autosplit.scheduler.jobs import SchedJob, SchedulerError, in_progress_pair
from autosplit.scheduler.probing import ProbeRound

if TYPE_CHECKING:
    from autosplit.datasets import Dataset


@dataclass
class JobRecord:
    """One job as the durable record knows it (times in seconds; ``outcome`` "running" while it runs)."""

    job_id: str
    stage: str
    kind: str
    rows: np.ndarray
    requested_at: float
    soft: float | None
    hard: float
    predicted: float | None
    outcome: str = "running"
    ended_at: float | None = None


def _probe_round_number(stage: str) -> int:
    if stage == "probe":
        return 1
    if stage.startswith("probe-r") and stage[7:].isdigit():
        return int(stage[7:])
    return 0


def restore_scheduler(
    dataset: Dataset,
    *,
    units: Mapping[str, Any],
    jobs: Sequence[JobRecord],
    reports: Iterable[JobReport],
    ended: Iterable[tuple[float, float | None, bool]],
    now: float,
    options: Mapping[str, Any],
    lost_runs: Iterable[tuple[str, float]] = (),
) -> Scheduler:
    """A scheduler in the state the record describes.

    ``units``: arrays over every dataset unit — ``state`` (0 pending, 1 assigned, 2 done, 3 quarantined),
    ``failures``, ``returns``, ``crashes``, ``alone`` — and ``reason`` (a mapping row -> quarantine reason).
    ``jobs`` in the order they were handed out. ``ended``: per ended job (seconds it held its slot, payload
    wall seconds or ``None``, lost without a report). ``options`` are the scheduler's keyword arguments.
    ``lost_runs``: per job lost without a report whose start was known, (job id, seconds its payload ran).
    """
    sched = Scheduler(dataset, **dict(options))
    book = sched._book
    n = book.n
    for name in ("state", "failures", "returns", "crashes", "alone"):
        values = np.asarray(units[name])
        if values.shape != (n,):
            raise SchedulerError(f"restore: units[{name!r}] has {values.size} entries for {n} units")
        getattr(book, name)[:] = values
    for row, reason in dict(units.get("reason") or {}).items():
        if book.state[int(row)] == QUARANTINED and reason:
            book.reason_of[int(row)] = reason
            book.reasons[reason] = book.reasons.get(reason, 0) + 1

    owner = np.full(n, -1, dtype=np.int64)
    for record in jobs:
        job = SchedJob(
            len(sched._jobs),
            record.job_id,
            record.stage,
            record.kind,
            np.asarray(record.rows, dtype=np.int64),
            float(record.requested_at),
            record.soft,
            float(record.hard),
            record.predicted,
            outcome=record.outcome,
            ended_at=record.ended_at,
            probe_round=_probe_round_number(record.stage),
        )
        sched._jobs.append(job)
        sched._by_id[job.job_id] = job.index
        if job.outcome == "running":
            sched._running.add(job.index)
        owner[job.rows] = job.index
    held = (book.state == 1) | (book.state == 2)
    book.job[held] = owner[held]
    book.job[~held] = -1

    for report in reports:
        sched._learn(report)
        # The seconds a unit ran without finishing size its next job alone (not kept in the ledger's arrays).
        job = sched._by_id.get(report.job_id)
        cut = in_progress_pair(report)
        if job is not None and cut is not None:
            try:
                rows = sched._rows_of(sched._jobs[job], [cut], "in progress")
            except SchedulerError:  # a unit the job did not hold: nothing to remember
                continue
            sched._note_spent(rows, report)
    for job_id, ran in lost_runs:
        # How long a lost unit ran sizes its next job alone, as the live scheduler's job_failed did.
        index = sched._by_id.get(job_id)
        if index is not None:
            job = sched._jobs[index]
            undone = (book.state[job.rows] == PENDING) | (book.state[job.rows] == ASSIGNED)
            sched._remember_lost_run(job, job.rows[undone], ran)
    for elapsed, wall, lost in ended:
        sched._observer.ended(elapsed, wall, lost)
    sched._observer.offer(sched._time(now), len(sched._running), 0)

    probes = [j for j in sched._jobs if j.kind == "probe"]
    last_round = max((j.probe_round for j in probes), default=0)
    bulk_started = any(j.kind != "probe" for j in sched._jobs)
    open_probes = [j for j in probes if j.probe_round == last_round and j.outcome == "running"]
    model = None
    if bulk_started or (probes and not open_probes):
        model = sched._fit(now)
    if model is None and bulk_started and sched.has_model:
        model = sched.model_  # a model given in the options, no usable report to refit it on
    if model is not None:
        sched.model_ = model
        sched._rounds_done = last_round
        pending = np.flatnonzero((book.state == PENDING) & (book.returns > 0) & ~book.alone)
        book.returned = pending[np.argsort(book.position[pending], kind="stable")]
        sched._start_processing()
    elif probes:
        round_jobs = [j for j in probes if j.probe_round == last_round]
        sched._round = ProbeRound(
            number=last_round,
            jobs=[j.rows for j in round_jobs],
            issued=len(round_jobs),
            job_ids=[j.job_id for j in round_jobs],
        )
        sched._rounds_done = last_round - 1
    sched._check_done()
    book.take_dirty()
    return sched
