"""autosplit in the simulator: a driver of :class:`autosplit.Scheduler`, exactly as any workload manager drives it.

Whenever slots are free the pool asks the scheduler for jobs (``next_jobs(free_slots, now)``); when a job
ends, its attempt becomes what the real system would see: a :class:`~autosplit.jobreport.JobReport` for a
job that ended on its own, at its soft limit or at its hard limit (the unit cut off by a kill reported as
``in_progress`` with the seconds spent on it), a failure report naming the unit the user code failed on,
or ``job_failed`` when the attempt was lost without a report. The policy holds no splitting logic of its
own: every decision is the scheduler's.

What the reports carry is the driver's choice, to model what a real job can measure:
``per_unit_timing=False`` drops the per-unit seconds (job-level timing only, like a CMSSW framework job
report); ``timing_noise`` (a log-sd, e.g. 0.07) multiplies every reported per-unit time by its own
lognormal measurement error with mean 1, while the job's wall, loop and set-up times stay exact.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autosplit.jobreport import JobReport
from autosplit.scheduler import JobRequest, Scheduler
from autosplit.scheduler.book import QUARANTINED
from autosplit.sim.jobs import Attempt, SimJob
from autosplit.sim.reports import ReportBuilder


@dataclass
class SchedulerPolicy:
    """Run a task with :class:`~autosplit.Scheduler` (keyword arguments in ``options``).

    ``per_unit_timing=False`` gives the scheduler job-level timings only (what CMSSW's FJR has);
    ``timing_noise`` is the log-sd of the multiplicative measurement error of reported per-unit seconds
    (mean 1; 0 for exact timings); ``tell_site`` asks for jobs site by site, naming the site.
    Attributes set while running: ``scheduler_`` (the scheduler), ``requests_`` (every request).
    """

    options: dict[str, Any] = field(default_factory=dict)
    name: str = "autosplit"
    report_workload: Any = None
    per_unit_timing: bool = True
    timing_noise: float = 0.0
    #: Tell the scheduler where the jobs will run (``next_jobs(free_slots=<free at the site>, site=...)``), as
    #: a pull-based workload manager can (a pilot asks for work for its own slot); a DAG node's job cannot.
    tell_site: bool = False
    scheduler_: Scheduler | None = field(default=None, init=False, repr=False)
    requests_: list[JobRequest] = field(default_factory=list, init=False, repr=False)

    def run(self, sim: Any) -> Generator[Any, Any, None]:
        options = {"grace_seconds": sim.pool.grace_seconds, **self.options}
        self.scheduler_ = Scheduler(sim.dataset, **options)
        self._sim = sim
        self._noise_rng = np.random.default_rng([sim.seed, 77])
        self._builder = ReportBuilder(sim, self.report_workload)
        self._buffers: dict[int, list[JobRequest]] = {}  # per site index when told sites, else under -1
        self._site_names = list(sim.pool.site_names)
        self._done = sim.env.event()
        sim.set_feeder(self._feed)
        self._sync()
        if not self._done.triggered:
            yield self._done

    # ------------------------------------------------------------------ pool -> scheduler
    def _feed(self, sim: Any, site: int) -> SimJob | None:
        # Told sites, jobs are asked for per site (as many as the site has free slots) once a model exists;
        # the probes are one round over every free slot.
        key = site if self.tell_site and self.scheduler_.has_model else -1
        buffer = self._buffers.setdefault(key, [])
        if not buffer:
            if key < 0:
                free = max(len(sim._free), 1)
                buffer += self.scheduler_.next_jobs(free_slots=free, now=sim.now)
            else:
                free = max(int(np.count_nonzero(sim.pool.slot_site[sim._free] == site)), 1)
                buffer += self.scheduler_.next_jobs(free_slots=free, now=sim.now, site=self._site_names[site])
            self.requests_ += buffer
            self._sync()
        if not buffer:
            return None
        request = buffer.pop(0)
        return SimJob(
            request.rows,
            stage=request.stage,
            soft_limit=request.soft_limit_seconds,
            hard_limit=request.hard_limit_seconds,
            retries=0,
            keep_on_kill=False,
            graceful_stop=True,
            name=request.job_id,
            on_done=self._on_done,
        )

    def _on_done(self, attempt: Attempt) -> None:
        sim, sched = self._sim, self.scheduler_
        job_id = attempt.job.name
        # The payload started after the slot overhead (a pool's job event log says when).
        sched.job_started(job_id, now=attempt.dispatched + attempt.overhead)
        if attempt.outcome == "crash":
            sched.job_failed(job_id, now=attempt.end)
        else:
            sched.job_finished(self._report(attempt), now=attempt.end)
        self._sync()
        sim.wake()

    def _report(self, attempt: Attempt) -> JobReport:
        job_id = attempt.job.name
        builder = self._builder
        if attempt.outcome == "unit":
            run, lumi = builder.unit_key(attempt.failed_unit)
            return JobReport(
                job_id=job_id,
                stage=attempt.job.stage,
                exit_code=80,
                exit_message="user code failed",
                wall_seconds=attempt.overhead + attempt.payload,
                meta={"failed_unit": [run, lumi]},
            )
        noise = None
        if self.per_unit_timing and self.timing_noise > 0 and attempt.n_kept:
            s = float(self.timing_noise)
            noise = self._noise_rng.lognormal(-0.5 * s * s, s, attempt.n_kept)
        in_progress = None
        if attempt.in_progress >= 0:
            run, lumi = builder.unit_key(attempt.in_progress)
            before = attempt.job.cum[attempt.n_run - 1] * attempt.factor if attempt.n_run else 0.0
            in_progress = {"run": run, "lumi": lumi, "seconds": float(max(attempt.payload - before, 0.0))}
        return builder.report(
            attempt, job_id=job_id, per_unit=self.per_unit_timing, noise=noise, in_progress=in_progress
        )

    def _sync(self) -> None:
        """Mirror the scheduler's quarantines into the simulation's ledger; end the run when it is done."""
        sim, sched = self._sim, self.scheduler_
        gone = np.flatnonzero((sched.unit_states() == QUARANTINED) & (sim.state == 0))
        if gone.size:
            reasons: dict[str, list[int]] = {}
            for row in gone.tolist():
                reasons.setdefault(sched.quarantine_reason(row) or "quarantined", []).append(row)
            for reason, rows in reasons.items():
                sim.quarantine(np.array(rows, dtype=np.int64), reason)
        if sched.finished and not self._done.triggered:
            self._done.succeed()
