"""autosplit's own policy: the library calls the pipeline makes (``autosplit predag``), in the same order.

Stage by stage, as :mod:`autosplit.pipeline.predag` plans them:

1. **probe** rounds: :func:`~autosplit.estimators.choose_probes` over the pending units (``probes`` jobs,
   :func:`~autosplit.estimators.probes.probe_budget` events at most, the round's own
   :func:`~autosplit.estimators.probes.probe_round_seed`, soft limit ``probe_seconds``, hard limit
   :func:`~autosplit.splitting.limits.probe_hard_limit`); after each round
   :class:`~autosplit.estimators.UnitCostModel` ``(match_quantile=1 - alpha)`` is fitted on every report so
   far, and another round follows while :func:`~autosplit.estimators.enough_probes` says the total is not
   known to ``rel_precision`` (at most ``max_probe_rounds`` rounds). Probe work counts.
2. **processing**: :func:`autosplit.regroup` ``(n_slots=slots)`` packs the pending units at
   ``target_runtime`` and ``alpha`` with sizes decreasing towards the end (so the stage's last wave is not
   ragged); units that cannot fit alone are quarantined; jobs get the soft limit ``target_runtime`` and the
   hard limit :func:`~autosplit.splitting.limits.job_hard_limit` (``soft + max(0.25 soft, 3 q99, 60) +
   grace``, ``q99``: the job's largest per-unit 99 % quantile).
3. **tail-1 .. tail-max_tails**: units that failed ``max_unit_failures`` times are quarantined; the model is
   refitted; units named as the cause of a failure run alone (no soft limit, hard limit
   ``3 target + grace``); the rest are regrouped with :func:`autosplit.regroup` ``(n_slots=slots)``. The last
   tail has no soft limit (hard limit ``3 target + grace``); whatever it leaves is quarantined.

A job stopped at its hard limit keeps its units when the unit in progress ends within the grace period
(the worker stops cleanly on SIGTERM); when it is killed mid-unit its journaled units do not count (their
outputs were never written) and the cut-off unit re-runs at once, alone, without soft limit and with the
last tail's hard limit (the pipeline's postjob retries the node with a rewritten spec;
``rescue_overruns``). A crash (no report) is retried ``retries`` times with the same units, then its units
go back to pending with one more failure; a job whose user code fails on a unit blames that unit and
returns the others (no retry). Stages are separated by the pool's ``stage_delay_seconds``.

With ``model`` given the probe stage is skipped and the model is never refitted (what dry runs simulate).
The probe budget, seeds and hard limits are the pipeline's own functions; the parameter defaults are the
pipeline's configuration defaults (``autosplit.pipeline.config``; a test keeps them in step).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from autosplit.errors import OversizedUnitsWarning
from autosplit.estimators import UnitCostModel, choose_probes, enough_probes
from autosplit.estimators.probes import MAX_PROBE_ROUNDS, probe_budget, probe_round_seed
from autosplit.jobreport import JobReport
from autosplit.sim.jobs import Attempt, SimJob
from autosplit.sim.reports import attempt_reports
from autosplit.sim.synthetic import SyntheticWorkload
from autosplit.splitting import regroup
from autosplit.splitting.limits import default_probe_seconds, job_hard_limit, probe_hard_limit

_Z99 = NormalDist().inv_cdf(0.99)


def unit_quantile_99(model: Any, units: Any) -> np.ndarray:
    """Per-unit 99 % quantile (seconds): the model's own, else a normal quantile of mean and std."""
    if hasattr(model, "predict_quantile"):
        return np.asarray(model.predict_quantile(units, 0.99), dtype=np.float64)
    mean, std = model.predict_unit_seconds(units)
    return np.asarray(mean) + _Z99 * np.asarray(std)


@dataclass
class AutosplitPolicy:
    """autosplit's pipeline as a simulator policy; parameters as in the task configuration (seconds).

    Attributes set while running: ``model_`` (the last fitted model), ``reports_`` (every report),
    ``probe_rounds_``, ``plan_`` (the processing plan).
    """

    target_runtime: float = 8 * 3600.0
    alpha: float = 0.05
    max_tails: int = 3
    probes: int | None = None
    probe_seconds: float | None = None  #: default: the pipeline's (a sixteenth of the target, 5-30 min)
    probe_fraction: float = 0.02
    rel_precision: float = 0.10
    max_probe_rounds: int = MAX_PROBE_ROUNDS
    retries: int = 1
    max_unit_failures: int = 2
    slots: int | None = None
    max_files_per_job: int | None = None
    rescue_overruns: bool = True
    tail_min_job_seconds: float | None = None
    model: Any = None
    refit: bool = True
    report_workload: SyntheticWorkload | None = None
    name: str = "autosplit"
    model_: Any = field(default=None, init=False, repr=False)
    reports_: list[JobReport] = field(default_factory=list, init=False, repr=False)
    probe_rounds_: int = field(default=0, init=False, repr=False)
    plan_: Any = field(default=None, init=False, repr=False)
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False)

    # ------------------------------------------------------------------ helpers
    def _fit(self, sim: Any) -> Any:
        model = UnitCostModel(match_quantile=1.0 - self.alpha)
        return model.fit(self.reports_, units=sim.dataset)

    def _learn(self, sim: Any, attempts: list[Attempt], prefix: str) -> None:
        if self.model is None or self.refit:
            self.reports_ += attempt_reports(sim, attempts, prefix=prefix, workload=self.report_workload)

    def _account(self, sim: Any, events: list[Any]) -> list[Attempt]:
        """Failure counts and blame from the stage's final attempts (the postjob's ledger updates)."""
        finals = [event.value for event in events]
        for attempt in finals:
            if attempt.outcome == "crash":
                self.failures_[attempt.job.rows] += 1
            elif attempt.outcome == "unit":
                self.failures_[attempt.failed_unit] += 1
                self.blamed_[attempt.failed_unit] = True
        return [a for job_attempt in finals for a in job_attempt.job.attempts]

    def _job(self, rows: np.ndarray, stage: str, soft: float | None, hard: float, priority: float) -> SimJob:
        return SimJob(
            rows,
            stage=stage,
            soft_limit=soft,
            hard_limit=hard,
            retries=self.retries,
            retry_on=("crash",),
            keep_on_kill=False,
            graceful_stop=True,
            priority=priority,
            on_done=self._rescue if self.rescue_overruns else None,
        )

    def _rescue(self, attempt: Attempt) -> None:
        """Proposed: re-run a unit cut off by a hard kill at once, alone, with the last tail's limits."""
        row = attempt.in_progress
        if row < 0 or attempt.job.stage.startswith("probe"):
            return  # a probe's cut-off unit is planned with the rest; waiting for it would hold the stage
        sim = self._sim
        hard = job_hard_limit(None, 0.0, self.target_runtime, sim.pool.grace_seconds)
        job = SimJob(
            np.array([row]), stage=attempt.job.stage, hard_limit=hard, retries=self.retries, priority=1e9
        )
        self._rescues.append(sim.submit(job))

    def _wait(self, sim: Any, events: list[Any]) -> Generator[Any, Any, list[Any]]:
        """Wait for a stage's jobs and for any rescue job they caused."""
        self._rescues = []
        yield sim.wait_all(events)
        waited = list(events)
        while len(self._rescues) > len(waited) - len(events):
            fresh = self._rescues[len(waited) - len(events) :]
            waited += fresh
            yield sim.wait_all(fresh)
        return waited

    def _jobs_from_plan(
        self, sim: Any, job_plan: Any, rows: np.ndarray, stage: str, soft: float | None
    ) -> list:
        grace = sim.pool.grace_seconds
        q99 = unit_quantile_99(self.model_, job_plan.dataset.units)
        jobs = []
        for j in range(job_plan.n_jobs):
            members = job_plan.job_rows(j)
            hard = job_hard_limit(soft, float(q99[members].max()), self.target_runtime, grace)
            jobs.append(self._job(rows[members], stage, soft, hard, float(job_plan.n_jobs - j)))
        return jobs

    def _caps(self) -> dict[str, Any]:
        return {"max_files_per_job": self.max_files_per_job}

    def _probe_seconds(self) -> float:
        return default_probe_seconds(self.target_runtime, self.probe_seconds)

    # ------------------------------------------------------------------ stages
    def _probe_jobs(self, sim: Any, round_number: int, stage: str, pending: np.ndarray) -> list[SimJob]:
        units = sim.dataset.units[pending]
        # As the pipeline's config.n_probes: one per slot (at most 500) unless set.
        n_probes = self.probes or min(self.slots or sim.pool.n_slots, 500)
        budget = probe_budget(units["events"].to_numpy(), n_probes, self.probe_fraction)
        soft = self._probe_seconds()
        chosen = choose_probes(
            units,
            n_probes,
            soft,
            model=self.model_,
            max_events=budget,
            seed=probe_round_seed(round_number),
        )
        hard = probe_hard_limit(soft, sim.pool.grace_seconds)
        probe_of = chosen["probe"].to_numpy()
        picked = chosen["row"].to_numpy().astype(np.int64)
        return [
            self._job(pending[picked[probe_of == p]], stage, soft, hard, 0.0)
            for p in sorted(set(probe_of.tolist()))
        ]

    def _processing_jobs(self, sim: Any, pending: np.ndarray) -> list[SimJob]:
        cached = self._cache.get("processing")
        if cached is not None and cached[0] is self.model_ and np.array_equal(cached[1], pending):
            # A fixed model and the same pending units give the same plan (dry runs repeat it per run).
            _, _, oversized, templates = cached
            sim.quarantine(oversized, "alone predicted above the target runtime")
            return [
                self._job(rows, "processing", self.target_runtime, hard, prio)
                for rows, hard, prio in templates
            ]
        subset = sim.dataset.take(pending)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OversizedUnitsWarning)
            slots = self.slots or sim.pool.n_slots
            job_plan = regroup(
                subset, self.model_, self.target_runtime, n_slots=slots, alpha=self.alpha, **self._caps()
            )
        self.plan_ = job_plan
        oversized = pending[job_plan.assignment < 0]
        sim.quarantine(oversized, "alone predicted above the target runtime")
        jobs = self._jobs_from_plan(sim, job_plan, pending, "processing", self.target_runtime)
        if self.model is not None and not self.refit:
            templates = [(job.rows, job.hard_limit, job.priority) for job in jobs]
            self._cache["processing"] = (self.model_, pending.copy(), oversized, templates)
        return jobs

    def _tail_jobs(self, sim: Any, k: int, pending: np.ndarray) -> list[SimJob]:
        stage = f"tail-{k}"
        soft = None if k >= self.max_tails else self.target_runtime
        blamed = self.blamed_[pending]
        jobs: list[SimJob] = []
        clean = pending[~blamed]
        if clean.size:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", OversizedUnitsWarning)
                job_plan = regroup(
                    sim.dataset.take(clean),
                    self.model_,
                    self.target_runtime,
                    n_slots=self.slots or sim.pool.n_slots,
                    alpha=self.alpha,
                    min_job_seconds=self.tail_min_job_seconds,
                    **self._caps(),
                )
            sim.quarantine(clean[job_plan.assignment < 0], "alone predicted above the target runtime")
            jobs += self._jobs_from_plan(sim, job_plan, clean, stage, soft)
        alone = pending[blamed]
        if alone.size:  # alone, without soft limit and with the last tail's hard limit (as predag)
            hard = job_hard_limit(None, 0.0, self.target_runtime, sim.pool.grace_seconds)
            for row in alone.tolist():
                jobs.append(self._job(np.array([row]), stage, None, hard, 0.0))
        return jobs

    # ------------------------------------------------------------------ the task
    def run(self, sim: Any) -> Generator[Any, Any, None]:
        """The task from the first probe to the last tail (a SimPy process)."""
        self._sim = sim
        self._rescues: list[Any] = []
        self.failures_ = np.zeros(sim.dataset.n_units, dtype=np.int64)
        self.blamed_ = np.zeros(sim.dataset.n_units, dtype=bool)
        self.reports_ = []
        self.model_ = self.model
        delay = sim.pool.stage_delay_seconds
        if self.model_ is None:
            for round_number in range(1, self.max_probe_rounds + 1):
                stage = "probe" if round_number == 1 else f"probe-r{round_number}"
                pending = sim.pending_rows()
                if pending.size == 0:
                    return
                probes = self._probe_jobs(sim, round_number, stage, pending)
                events = yield from self._wait(sim, sim.submit_many(probes))
                self._learn(sim, self._account(sim, events), stage)
                self.probe_rounds_ = round_number
                yield sim.delay(delay)
                pending = sim.pending_rows()
                if pending.size == 0:
                    return
                if not self.reports_:
                    sim.quarantine(pending, "no probe measured anything: the cost cannot be estimated")
                    return
                self.model_ = self._fit(sim)
                if not enough_probes(self.model_, sim.dataset.units[pending], self.rel_precision):
                    continue
                break

        pending = sim.pending_rows()
        if pending.size == 0:
            return
        events = yield from self._wait(sim, sim.submit_many(self._processing_jobs(sim, pending)))
        self._learn(sim, self._account(sim, events), "processing")

        for k in range(1, self.max_tails + 1):
            yield sim.delay(delay)
            pending = sim.pending_rows()
            sim.quarantine(
                pending[self.failures_[pending] >= self.max_unit_failures],
                f"failed {self.max_unit_failures} time(s)",
            )
            pending = sim.pending_rows()
            if pending.size == 0:
                return
            if self.refit and self.reports_:
                self.model_ = self._fit(sim)
            events = yield from self._wait(sim, sim.submit_many(self._tail_jobs(sim, k, pending)))
            self._learn(sim, self._account(sim, events), f"tail-{k}")
        sim.quarantine(sim.pending_rows(), "unfinished after the last stage")
