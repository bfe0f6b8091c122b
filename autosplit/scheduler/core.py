"""The embeddable scheduler: datasets and job reports in, job requests out. The whole splitting policy.

::

    sched = asp.Scheduler(dataset, target_runtime=8 * 3600, alpha=0.05)
    for req in sched.next_jobs(free_slots=n, now=t):   # JobRequest: job_id, stage, rows, limits, prediction
        start(req)
    sched.job_finished(report, now=t)                  # a JobReport: done, soft-stopped or hard-killed
    sched.job_failed(job_id, now=t)                    # no report came back (node lost, crash)
    sched.finished, sched.summary()

The policy, in the order a task meets it:

1. **Probe.** Slots asking for work get short probe jobs (soft limit ``probe_seconds``) over a stratified
   sample of at most ``probe_fraction`` of the events. Probe work counts. Once a quorum of the probes
   reported, the cost model (:class:`~autosplit.estimators.UnitCostModel`) is fitted on their reports,
   counting the probes still running and the units cut off by kills as *censored* (they took at least so
   long), so the slow units the probes could not finish still weigh in. Probing ends when the model knows
   the total to ``rel_precision`` (else another round, at most ``max_probe_rounds``).
2. **Bind late.** From then on every free slot gets a job cut, at that moment, off the pending units: first
   units that must run alone (longest first), then units handed back by earlier jobs, then fresh units
   whole file by whole file, the files with the costliest predicted units first (``fresh_order``), so the
   units that may turn out longest start early and the cheapest fill the end. A job's ``(1 - alpha)`` runtime quantile stays within
   the packing target; its size is capped by factoring (remaining predicted work over ``factoring`` = 1.5
   times the observed concurrency, never below a floor), so the last jobs are short and end together. No stage waits for
   another: units handed back by a soft stop, a kill or a failure are rebound by the next free slot.
3. **Learn as it goes.** The model is refitted when the usable reports grew by a quarter (running jobs
   count as censored; a refit that moves the predicted total more than 3x is used only when the next one
   agrees); a cost factor per run, shrunk towards 1, re-prices runs the reports show to differ from each
   other, leaving the level to the model (``run_factors``, :mod:`autosplit.scheduler.groups`); units set
   apart as too long to share a job share jobs again when a refit says they fit; the concurrency, the per-job slot overhead and the failure hazard are observed
   from the driver's calls. With failures and no checkpointing, a job's expected length is held to Young's
   optimum ``sqrt(2 * overhead / hazard)``, trading per-job overhead against work lost with a job (its
   ``(1 - alpha)`` quantile still answers to the target).
4. **Give up with a reason.** A unit named as the cause of ``max_unit_failures`` failures, or lost with its
   job ``max_crashes`` times (alone after the second; the last loss while alone; when that loss left no
   report and the pool's loss hazard could explain so many by chance, more, at most twice as many), is
   quarantined; so is a unit whose predicted mean alone exceeds ``max_job_seconds``, and a unit killed (or
   lost while alone, its start known) after running ``give_up_fraction`` (0.8) of ``max_job_seconds``: a
   rerun starts from zero under the same limit. A unit killed sooner runs alone next, with at least twice
   the seconds it was seen to take; the units of a job lost after ``OVERRUN`` (3) times its predicted
   payload run alone too. Processing jobs are killed only at ``max_job_seconds`` (``kill_at_wall``): past
   its soft limit a job is finishing its last unit. Units handed back ``max_tails`` times run without a
   soft limit.

The scheduler is pure: no I/O, no clock (``now`` comes from the driver), deterministic for a ``seed``.
Calls cost time in the size of the job they make, not in the size of the task, except a refit.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

import numpy as np

from autosplit.jobreport import JobReport
from autosplit.scheduler.accounting import AccountingMixin, duplicate_call
from autosplit.scheduler.binding import BindingMixin
from autosplit.scheduler.book import ASSIGNED, DONE, PENDING, QUARANTINED, UnitBook
from autosplit.scheduler.groups import RunFactors
from autosplit.scheduler.jobs import SchedJob, SchedulerError, failed_unit_pair, in_progress_pair, site_name
from autosplit.scheduler.learning import LearningMixin
from autosplit.scheduler.observe import PoolObserver
from autosplit.scheduler.packing import Caps, Predictions
from autosplit.scheduler.probing import ProbeRound, ProbingMixin
from autosplit.scheduler.requests import JobRequest
from autosplit.splitting.limits import default_probe_seconds
from autosplit.splitting.order import planning_order

if TYPE_CHECKING:  # polars comes with the dataset; a restored scheduler reads it only when it needs it
    from autosplit.datasets import Dataset

STATE_FORMAT = "autosplit-scheduler/1"
#: Default ``spread_margin``: how many job-to-job standard deviations (relative) the end-phase share leaves
#: for a job that lands on a slow slot.
SPREAD_MARGIN = 1.0


class DeferredDataset:
    """A dataset read on first use. A restored scheduler holds one: binding and accounting for a job need
    only the scheduler's own arrays, so a job's PRE/POST script neither reads the dataset nor imports polars.

    ``load`` is called once, with no arguments, and returns the :class:`~autosplit.datasets.Dataset`."""

    __slots__ = ("load",)

    def __init__(self, load: Callable[[], Dataset]) -> None:
        self.load = load


def _in_progress_seconds(report: JobReport) -> float:
    """Seconds a report says its job spent on the unit in progress (0 when it does not say)."""
    unit = report.in_progress if isinstance(report.in_progress, dict) else {}
    value = unit.get("seconds")
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return max(float(value), 0.0)


def _positive(name: str, value: Any, *, allow_none: bool = False, allow_zero: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value < 0
        or (value == 0 and not allow_zero)
    ):
        raise SchedulerError(f"{name} must be a finite number {'>=' if allow_zero else '>'} 0, got {value!r}")
    return float(value)


def _count(name: str, value: Any, *, minimum: int = 0, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise SchedulerError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class Scheduler(ProbingMixin, BindingMixin, LearningMixin, AccountingMixin):
    """Turns a dataset into jobs as slots free up, learning the cost from the jobs' reports.

    Parameters
    ----------
    dataset:
        The units to process (a :class:`~autosplit.datasets.Dataset`); ``JobRequest.rows`` index its units.
    target_runtime:
        Seconds: the soft limit of processing jobs; their ``(1 - alpha)`` runtime quantile stays within it.
    alpha:
        Accepted probability that a job reaches its soft limit.
    slots:
        Slots the task can expect, when known; otherwise (and as a floor) the concurrency is observed.
    max_tails:
        Times a unit may be handed back before it runs without a soft limit (its last tail).
    model:
        A fitted cost model to start from (no probes). ``refit`` says whether reports still update it.
    probes:
        Probe jobs in the first round (default: the slots offered by the first call, 20 to 500, and no
        more than lumis of the mean size fit in ``probe_fraction`` of the events).
    probe_seconds:
        Soft limit of a probe (default: :func:`~autosplit.splitting.limits.default_probe_seconds`, a
        sixteenth of the target, 5 to 30 minutes; the pipeline's default too).
    probe_fraction:
        At most this fraction of the pending events goes to a probe round.
    probe_quorum:
        Fraction of a round's probes that must have reported before the model may end the round early.
    rel_precision:
        Probing ends once the 95 % interval of the predicted total is within this relative half-width.
    max_probe_rounds:
        Probe rounds at most; then the best model so far is used.
    max_unit_failures:
        Failures blamed on one unit before it is quarantined.
    max_crashes:
        Times one unit's job may be lost (no report, or a crash without a culprit) before the unit is
        quarantined; from the second it runs alone, and only a loss while alone can quarantine it. Where
        the pool loses jobs itself, a unit lost without a report needs more: until chance would explain
        them less than once in a million, at most twice this (``AccountingMixin._losses_by_chance``).
    grace_seconds:
        Seconds between SIGTERM and SIGKILL at a job's hard limit (part of every hard limit).
    max_job_seconds:
        Longest payload any job may get (the batch system's wall-time limit); default three times the
        target. A unit whose predicted mean exceeds this even alone is quarantined before it runs.
    give_up_fraction:
        A unit killed (or lost while alone, its start known) after running this fraction of
        ``max_job_seconds`` without finishing is quarantined at once, without a rerun alone (which would
        start from zero). At 1, only a unit that had the whole limit is: units that fit can finish, at the
        price of a wall-time-long rerun for each that does not. On the ``grid`` profile of
        ``benchmarks/run_quality.py`` (autosplit, no failures, the four runs where the rule fired, five
        lumis): at 1, three of the five (18-23 h at the pool's mean speed) finished on their rerun, the two
        longer than the limit (25.6 h, 39.5 h) were killed again, and the makespan went 1.53 -> 1.46,
        1.11 -> 1.15, 1.16 -> 1.47 and 1.42 -> 2.08 times the bound (pileup seeds 0 and 1, pareto seeds 0
        and 2; in the last a 20 h lumi on a slow node was given up too). 0.8 stays the default.
    min_job_seconds, floor_overheads:
        Floor of the factoring job size (seconds of predicted payload): ``min_job_seconds`` when given,
        else ``floor_overheads`` times a job's overhead (the observed slot overhead plus per-job set-up).
    factoring:
        Each job takes at most ``remaining / (factoring * concurrency)`` of the predicted work left.
    spread_margin:
        That share is further divided by ``1 + spread_margin * shared_cv``, the cost model's job-to-job
        spread (site and node speed, parameter and shape uncertainty): where jobs' run times differ much
        from job to job, the last jobs are smaller, so one on a slow slot does not end long after the
        rest. 0 turns it off. The default was chosen on the training workloads of
        ``benchmarks/run_quality.py`` (0, 0.5, 1 and 2 compared over six seeds).
    failure_aware:
        Hold a job's expected length to Young's optimum under an observed failure hazard (see the module
        docstring).
    checkpoint_seconds:
        Jobs commit finished units every this many seconds (their loss on a failure is bounded, so jobs are
        not shortened for failures); ``None`` when they do not.
    max_files_per_job, max_events_per_job, max_output_bytes, output_model:
        Caps per job (output bytes need ``output_model`` with ``predict_unit_bytes``).
    split_on_run:
        Never put two runs in one job.
    fresh_order:
        Order fresh units are bound in: ``"longest-first"`` (default: whole files, the files with the
        costliest predicted units first, within each planning segment) or ``"planning"`` (location set,
        file, run, lumi).
    run_factors:
        Learn a cost factor per run from the reports (shrunk towards 1; see
        :mod:`autosplit.scheduler.groups`) and apply it to the model's predictions.
    kill_at_wall:
        Hard limit of processing and tail jobs at ``max_job_seconds`` (the wall-time limit; default) rather
        than a margin past the soft limit: a job past its soft limit is finishing its last unit, and a kill
        would throw that unit's work away and start it again from zero.
    seed:
        Seed of the probe sampling.
    """

    give_up_fraction = 0.8  # what schedulers saved before the option existed read
    _latest_now: float | None = None  # the latest time a call gave (every call uses one clock, seconds)

    def __init__(
        self,
        dataset: Dataset,
        target_runtime: float = 8 * 3600.0,
        alpha: float = 0.05,
        slots: int | None = None,
        max_tails: int = 3,
        *,
        model: Any = None,
        refit: bool = True,
        probes: int | None = None,
        probe_seconds: float | None = None,
        probe_fraction: float = 0.02,
        probe_quorum: float = 0.5,
        rel_precision: float = 0.10,
        max_probe_rounds: int = 3,
        max_unit_failures: int = 2,
        max_crashes: int = 4,
        grace_seconds: float = 60.0,
        max_job_seconds: float | None = None,
        give_up_fraction: float = 0.8,
        min_job_seconds: float | None = None,
        factoring: float = 1.5,
        spread_margin: float = SPREAD_MARGIN,
        floor_overheads: float = 6.0,
        failure_aware: bool = True,
        checkpoint_seconds: float | None = None,
        max_files_per_job: int | None = None,
        max_events_per_job: int | None = None,
        max_output_bytes: float | None = None,
        output_model: Any = None,
        split_on_run: bool = False,
        fresh_order: str = "longest-first",
        kill_at_wall: bool = True,
        run_factors: bool = True,
        seed: int = 0,
    ) -> None:
        from autosplit.datasets import Dataset

        if not isinstance(dataset, Dataset):
            raise SchedulerError(f"expected a Dataset, got {type(dataset).__name__}")
        self.dataset = dataset
        self.target_runtime = _positive("target_runtime", target_runtime)
        if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 0.5:
            raise SchedulerError(f"alpha must be in (0, 0.5), got {alpha!r}")
        self.alpha = float(alpha)
        self.slots = _count("slots", slots, minimum=1, allow_none=True)
        self.max_tails = _count("max_tails", max_tails)
        self.refit = bool(refit)
        self.probes = _count("probes", probes, minimum=1, allow_none=True)
        self.probe_seconds = _positive(
            "probe_seconds",
            default_probe_seconds(self.target_runtime, probe_seconds),
        )
        if not 0 < probe_fraction <= 0.5:
            raise SchedulerError(f"probe_fraction must be in (0, 0.5], got {probe_fraction!r}")
        self.probe_fraction = float(probe_fraction)
        if not 0 < probe_quorum <= 1:
            raise SchedulerError(f"probe_quorum must be in (0, 1], got {probe_quorum!r}")
        self.probe_quorum = float(probe_quorum)
        if not 0 < rel_precision < 1:
            raise SchedulerError(f"rel_precision must be in (0, 1), got {rel_precision!r}")
        self.rel_precision = float(rel_precision)
        self.max_probe_rounds = _count("max_probe_rounds", max_probe_rounds, minimum=1)
        self.max_unit_failures = _count("max_unit_failures", max_unit_failures, minimum=1)
        self.max_crashes = _count("max_crashes", max_crashes, minimum=1)
        self.grace_seconds = float(grace_seconds)
        if not (math.isfinite(self.grace_seconds) and self.grace_seconds >= 0):
            raise SchedulerError(f"grace_seconds must be a finite number >= 0, got {grace_seconds!r}")
        self.max_job_seconds = _positive(
            "max_job_seconds", max_job_seconds if max_job_seconds is not None else 3 * self.target_runtime
        )
        self.give_up_fraction = _positive("give_up_fraction", give_up_fraction)
        if self.give_up_fraction > 1:
            raise SchedulerError(f"give_up_fraction must be in (0, 1], got {give_up_fraction!r}")
        self.min_job_seconds = _positive("min_job_seconds", min_job_seconds, allow_none=True)
        self.factoring = _positive("factoring", factoring)
        self.spread_margin = _positive("spread_margin", spread_margin, allow_zero=True)
        self.floor_overheads = _positive("floor_overheads", floor_overheads)
        self.failure_aware = bool(failure_aware)
        self.checkpoint_seconds = _positive("checkpoint_seconds", checkpoint_seconds, allow_none=True)
        self.max_files_per_job = _count("max_files_per_job", max_files_per_job, minimum=1, allow_none=True)
        self.max_events_per_job = _count("max_events_per_job", max_events_per_job, minimum=1, allow_none=True)
        self.max_output_bytes = _positive("max_output_bytes", max_output_bytes, allow_none=True)
        if self.max_output_bytes is not None and not hasattr(output_model, "predict_unit_bytes"):
            raise SchedulerError("max_output_bytes needs an output_model with predict_unit_bytes(units)")
        self.output_model = output_model
        if fresh_order not in ("longest-first", "planning"):
            raise SchedulerError(f"fresh_order must be 'longest-first' or 'planning', got {fresh_order!r}")
        self.fresh_order = fresh_order
        self.kill_at_wall = bool(kill_at_wall)
        self.run_factors = bool(run_factors)
        self.seed = int(seed)
        self._z = NormalDist().inv_cdf(1.0 - self.alpha)

        run_values = dataset.units["run"].to_numpy()
        self._run_book = (
            RunFactors(np.unique(run_values, return_inverse=True)[1]) if run_values.size else None
        )
        order = planning_order(dataset, split_on_run=split_on_run)
        self._book = UnitBook(order.rows, order.segment_start)
        units = dataset.units
        # (run << 32) | lumi per unit: reports name units by (run, lumi); kept so that accounting for a job
        # never reads the dataset back.
        self._book.keys = (run_values.astype(np.int64) << 32) | units["lumi"].to_numpy().astype(np.int64)
        self._caps = Caps(
            events=units["events"].to_numpy().astype(np.int64),
            file_id=units["file_id"].to_numpy().astype(np.int64),
            extra_files=dataset.unit_file_counts().astype(np.int64) - 1,
            max_files=self.max_files_per_job,
            max_events=self.max_events_per_job,
            max_output_bytes=self.max_output_bytes,
        )
        self._observer = PoolObserver(window_seconds=2 * self.target_runtime)
        self._jobs: list[SchedJob] = []
        self._by_id: dict[str, int] = {}
        self._running: set[int] = set()
        self._counter: dict[str, int] = {}
        self._reports: list[JobReport] = []
        self._n_reports_seen = 0
        self._rng = np.random.default_rng([self.seed, 7])
        self._max_reports = 20_000
        self._round: ProbeRound | None = None
        self._rounds_done = 0
        self._round_checked_at = -1
        self._predictions: Predictions | None = None
        self._pending_mean = 0.0
        self._fits = 0
        self._fit_reports = 0
        self._first_prediction: dict[str, float] | None = None
        self._model: Any = None
        self._model_blob: bytes | None = None
        self._phase = "probing"
        self._fresh_built = False
        self._notes: list[str] = []
        if model is not None:
            if not hasattr(model, "predict_unit_seconds"):
                raise SchedulerError(f"{type(model).__name__} is not a cost model (no predict_unit_seconds)")
            self.model_ = model
            self._start_processing()

    def next_jobs(
        self, free_slots: int, now: float, *, names: list[str] | None = None, site: str | None = None
    ) -> list[JobRequest]:
        """Jobs to start now on up to ``free_slots`` slots (maybe fewer, maybe none while probes run).

        ``names``, when given, names the jobs in order (e.g. the DAG nodes that will run them); ``site``, when
        the caller knows where they will run (a pilot), sizes them for its speed (:meth:`_for_site`).
        """
        free = _count("free_slots", free_slots)
        site = site_name(site)
        now = self._time(now)
        self._observer.offer(now, len(self._running), free)
        out: list[JobRequest] = []
        if free == 0 or self._phase == "done":
            return out
        if self._phase == "probing":
            self._probe_progress(now)
        while len(out) < free:
            name = names[len(out)] if names and len(out) < len(names) else None
            request = (
                self._next_probe(now, name) if self._phase == "probing" else self._next_job(now, name, site)
            )
            if request is None:
                break
            out.append(request)
        if not out and not self._running and self._book.n_pending():
            self._unstick(now)
            if self._phase == "processing":
                name = names[0] if names else None
                request = self._next_job(now, name, site)
                if request is not None:
                    out.append(request)
        self._check_done()
        return out

    def job_started(self, job_id: str, now: float) -> None:
        """Optional: the job's payload started at ``now`` (a lost job is judged by how long it ran then)."""
        job = self._job(job_id)
        if job.outcome == "running" and job.started_at is None:
            job.started_at = self._time(now)

    def job_finished(self, report: JobReport, now: float, *, done: Any = None) -> dict[str, Any]:
        """Account for a job that reported (done, soft-stopped, hard-killed, or failed with a report).

        What the report says: ``job_id``; ``units`` (the units processed, with ``seconds`` and ``events``
        each when known); ``in_progress`` (the unit being processed when the job stopped, with the
        ``seconds`` spent on it) when there was one; ``hard_killed=True`` for a kill at the hard limit (its
        ``exit_code`` is then not read), else a non-zero ``exit_code`` (and ``exit_message``) for a
        failure; ``soft_stopped`` for a stop at the soft limit; ``wall_seconds`` (payload seconds, from the
        payload's start to its end, the clock the limits use; ``None`` when unknown, which leaves the slot
        overhead unmeasured for this job). Used when present: ``site``, ``init_seconds`` (set-up inside the
        payload), ``loop_seconds``, ``events_read``, ``meta.failed_unit``. ``unfinished`` need not be
        listed: every assigned unit not processed goes back. Numbers may be numpy scalars.

        Units the report lists as processed become done (``done``, a list of (run, lumi), overrides which:
        e.g. only the units whose outputs were committed; the report's timings are learned from anyway);
        the unit in progress at a kill runs alone next; a unit named as the cause of a failure
        (``meta.failed_unit``) is blamed; every other unit of the job goes back to pending. Returns what
        changed: ``done``, ``returned``, ``quarantined`` (rows). A second call for a job that already ended
        (by a report or :meth:`job_failed`) changes nothing and returns ``duplicate: True``.
        """
        if not isinstance(report, JobReport):
            raise SchedulerError(f"job_finished needs a JobReport, got {type(report).__name__}")
        now = self._time(now)
        job = self._job(report.job_id)
        if job.outcome != "running":
            return duplicate_call()
        book = self._book
        rows = job.rows
        pairs = [(u["run"], u["lumi"]) for u in report.units] if done is None else list(done)
        done = self._rows_of(job, pairs, "processed")
        cut_pair = in_progress_pair(report)
        cut = self._rows_of(job, [cut_pair], "in progress") if cut_pair else np.zeros(0, np.int64)
        blamed_pair = failed_unit_pair(report)
        blamed = self._rows_of(job, [blamed_pair], "failed") if blamed_pair else np.zeros(0, np.int64)
        book.finish(done)
        rest = rows[book.state[rows] == ASSIGNED]
        ok = report.exit_code == 0
        killed = bool(report.hard_killed)  # cut off at the hard limit: only the unit in progress is suspect
        if killed:
            job.outcome = "killed"
        elif ok:
            job.outcome = "soft-stopped" if report.soft_stopped else "ok"
        else:
            job.outcome = "failed"
        reason = None
        give_up = np.zeros(0, np.int64)
        if cut.size:
            book.set_alone(cut)
            spent = self._note_spent(cut, report)
            wall = self.max_job_seconds
            if killed and (
                spent >= self.give_up_fraction * wall or (job.kind == "alone" and job.hard >= wall)
            ):
                # The unit used (most of) the wall-time limit and a rerun starts from zero: another attempt
                # under the same limit would most likely be killed again. Give up with the reason.
                give_up = cut
                reason = (
                    f"ran {spent:.0f} s without finishing (killed at the hard limit of {job.hard:.0f} s, "
                    f"the longest allowed job is {wall:.0f} s); resubmit with a larger max runtime"
                )
            elif job.kind == "alone" and killed:
                book.failures[cut] += 1
                reason = f"killed at the hard limit of {job.hard:.0f} s while running alone"
        if not ok and not killed:
            message = (report.exit_message or f"exit code {report.exit_code}").strip().splitlines()
            reason = message[-1][:300] if message else f"exit code {report.exit_code}"
            culprit = blamed[np.isin(blamed, rest)]
            if culprit.size:
                book.failures[culprit] += 1
                book.set_alone(culprit)
            else:
                book.crashes[rest] += 1
        quarantined = self._hand_back(job, rest, reason, give_up=give_up)
        self._observer.ended(now - job.requested_at, report.wall_seconds, lost=False)
        self._measure(job, report, done)
        self._learn(report)
        self._end(job, now)
        return {"done": done, "returned": rest[book.state[rest] == PENDING], "quarantined": quarantined}

    def _note_spent(self, cut: np.ndarray, report: JobReport) -> float:
        """Remember the seconds the unit in progress (``cut``, one row) ran without finishing; returns them."""
        spent = _in_progress_seconds(report)
        self._book.note_spent(int(cut[0]), spent)
        return spent

    def job_failed(self, job_id: str, now: float, reason: str | None = None) -> dict[str, Any]:
        """Account for a job that left no report (node lost, crash before reporting): its units go back,
        alone when it ran long past its prediction, or given up on (see ``_judge_loss``)."""
        now = self._time(now)
        job, rest = self._ending(job_id, "lost")
        if job is None:
            return duplicate_call()
        book = self._book
        book.crashes[rest] += 1
        reason, give_up = self._judge_loss(job, rest, now, reason or "the job was lost without a report")
        # The pool's loss count includes this loss before the chance test of its units' losses.
        self._observer.ended(now - job.requested_at, None, lost=True)
        quarantined = self._hand_back(job, rest, reason, give_up=give_up, without_report=True, now=now)
        self._end(job, now)
        return {
            "done": np.zeros(0, np.int64),
            "returned": rest[book.state[rest] == PENDING],
            "quarantined": quarantined,
        }

    def _measure(self, job: SchedJob, report: JobReport, done: np.ndarray) -> None:
        """Keep what the report measured of its done units, for the per-run factors."""
        book = getattr(self, "_run_book", None)
        if book is None or not getattr(self, "run_factors", False) or done.size == 0:
            return
        try:
            if report.has_unit_seconds and len(report.units) == done.size:
                book.add(job.index, done, seconds=[float(u["seconds"]) for u in report.units])
            elif report.exit_code == 0 and not report.hard_killed and report.in_progress is None:
                total = report.processing_seconds
                if total is not None:
                    book.add(job.index, done, total=float(total))
        except (TypeError, ValueError):  # an odd report measures nothing
            return

    @property
    def dataset(self) -> Dataset:
        """The units being scheduled (``JobRequest.rows`` index its units), read now if it was deferred."""
        if isinstance(self._dataset, DeferredDataset):
            self._dataset = self._dataset.load()
        return self._dataset

    @dataset.setter
    def dataset(self, value: Dataset | DeferredDataset) -> None:
        self._dataset = value

    @property
    def finished(self) -> bool:
        """True once every unit is done or quarantined and no job runs."""
        self._check_done()
        return self._phase == "done"

    def summary_light(self) -> dict[str, Any]:
        """The cheap part of :meth:`summary`: phase, fits, what was observed (no model evaluation)."""
        observer = self._observer
        return {
            "phase": self._phase,
            "fits": self._fits,
            "concurrency": self._concurrency(),
            "slot_overhead_seconds": observer.slot_overhead(),
            "failure_rate_per_hour": self._hazard() * 3600.0,
            "packing_target_seconds": self._packing_target() if self._predictions else None,
            "failure_cap_seconds": self._failure_cap_or_none(),
        }

    def summary(self) -> dict[str, Any]:
        """Units by state, jobs by stage and outcome, the model's prediction, what was observed.

        Keys: ``phase`` (``"probing"``, ``"processing"``, ``"done"``); ``units`` (``total``, ``done``,
        ``pending``, ``assigned``, ``quarantined``); ``quarantine_reasons`` (reason -> units); ``jobs``
        (``total``, ``running``, ``by_stage``: stage -> ``jobs`` and a count per outcome); ``probe_rounds``;
        ``concurrency`` (slots seen busy at once); ``slot_overhead_seconds`` (observed time from request to
        payload start, ``None`` before any); ``failure_rate_per_hour``; ``packing_target_seconds``;
        ``failure_cap_seconds`` (``None`` while failures do not shorten jobs); ``fits``;
        ``predicted_total_cpu_seconds`` (the *first* prediction after probing, a dict with ``estimate``,
        ``low``, ``high`` and more; ``None`` before it); ``notes``; and, with a model,
        ``model_total_cpu_seconds`` (the current model's ``estimate``, ``low``, ``high``).
        """
        counts = self._book.counts()
        stages: dict[str, dict[str, int]] = {}
        for job in self._jobs:
            entry = stages.setdefault(job.stage, {"jobs": 0})
            entry["jobs"] += 1
            entry[job.outcome] = entry.get(job.outcome, 0) + 1
        observer = self._observer
        out: dict[str, Any] = {
            "phase": self._phase,
            "units": {
                "total": self._book.n,
                "done": counts["done"],
                "pending": counts["pending"],
                "assigned": counts["assigned"],
                "quarantined": counts["quarantined"],
            },
            "quarantine_reasons": dict(self._book.reasons),
            "jobs": {"total": len(self._jobs), "running": len(self._running), "by_stage": stages},
            "probe_rounds": self._rounds_done + (1 if self._round is not None else 0),
            "concurrency": self._concurrency(),
            "slot_overhead_seconds": observer.slot_overhead(),
            "failure_rate_per_hour": self._hazard() * 3600.0,
            "packing_target_seconds": self._packing_target() if self._predictions else None,
            "failure_cap_seconds": self._failure_cap_or_none(),
            "fits": self._fits,
            "predicted_total_cpu_seconds": self._first_prediction,
            "notes": list(self._notes),
        }
        if self.has_model and hasattr(self.model_, "total_seconds_interval"):
            low, estimate, high = self.model_.total_seconds_interval(self.dataset.units)
            scale = self._run_scale()
            out["model_total_cpu_seconds"] = {
                "estimate": estimate * scale,
                "low": low * scale,
                "high": high * scale,
            }
        return out

    def observe_concurrency(self, slots: int, now: float) -> None:
        """Tell the scheduler how many slots are running the task's jobs now (e.g. from the schedd)."""
        self._observer.offer(self._time(now), 0, _count("slots", slots))

    @property
    def running_jobs(self) -> list[str]:
        return [self._jobs[i].job_id for i in sorted(self._running)]

    def unit_states(self) -> np.ndarray:
        """Per unit: 0 pending, 1 assigned, 2 done, 3 quarantined (a copy)."""
        return self._book.state.copy()

    def quarantine_reason(self, row: int) -> str | None:
        return self._book.reason_of.get(int(row))

    def changed_units(self) -> dict[str, Any]:
        """The units changed since the last call, with their new records (for a durable ledger).

        Keys: ``rows`` (int64), ``state`` (0 pending, 1 assigned, 2 done, 3 quarantined), ``job_id`` (the job
        holding or having done the unit, else ``None``), ``failures``, ``returns``, ``crashes``, ``alone``,
        ``reason`` (quarantine reason or ``None``).
        """
        book = self._book
        rows = book.take_dirty()
        job_ids = [self._jobs[j].job_id if j >= 0 else None for j in book.job[rows].tolist()]
        return {
            "rows": rows,
            "state": book.state[rows].copy(),
            "job_id": job_ids,
            "failures": book.failures[rows].copy(),
            "returns": book.returns[rows].copy(),
            "crashes": book.crashes[rows].copy(),
            "alone": book.alone[rows].copy(),
            "reason": [book.reason_of.get(r) for r in rows.tolist()],
        }

    def requeue(self, rows: np.ndarray, now: float) -> int:
        """Give quarantined or pending units a fresh start (``autosplit resubmit``): pending, counters reset."""
        book = self._book
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[(book.state[rows] == QUARANTINED) | (book.state[rows] == PENDING)]
        if rows.size == 0:
            return 0
        book.drop_from_queues(rows)
        was_quarantined = rows[book.state[rows] == QUARANTINED]
        book.state[rows] = PENDING
        book.job[rows] = -1
        book.returns[rows] = 0
        book.crashes[rows] = 0
        book.failures[rows] = 0
        book.alone[rows] = book.oversized[rows] = False
        for row in was_quarantined.tolist():
            book.reason_of.pop(row, None)
        book.mark(rows)
        if self._predictions is not None:
            self._pending_mean += float(self._predictions.mean[was_quarantined].sum())
        if self._fresh_built:
            book.push_returned(rows[~np.isin(rows, book.fresh_left())])
        if self._phase == "done":
            self._phase = "processing" if self.has_model else "probing"
        self._time(now)
        return int(rows.size)

    def close(self, reason: str, now: float) -> list[str]:
        """End the task's scheduling (its DAG ended or was killed): jobs still running are cancelled (their
        units count no crash), every unit not done is quarantined with ``reason``; returns the cancelled
        job ids. :meth:`requeue` brings units back afterwards (``autosplit resubmit``)."""
        now = self._time(now)
        cancelled = []
        for index in sorted(self._running):
            job = self._jobs[index]
            self._release(job.rows[self._book.state[job.rows] == ASSIGNED])
            job.outcome = "cancelled"
            job.ended_at = now
            cancelled.append(job.job_id)
        self._running.clear()
        self._round = None  # a probe round cut short is drawn again (cancelled probes measured nothing)
        left = np.flatnonzero(self._book.state == PENDING)
        self._quarantine(left, reason)
        self._check_done()
        return cancelled

    @property
    def model_(self) -> Any:
        """The fitted cost model (``None`` before the first fit)."""
        if self._model_blob is not None:
            self._model = pickle.loads(self._model_blob)  # noqa: S301 - written by to_bytes
            self._model_blob = None
        return self._model

    @model_.setter
    def model_(self, model: Any) -> None:
        self._model, self._model_blob = model, None

    @property
    def has_model(self) -> bool:
        """Whether a cost model was fitted (without loading it)."""
        return self._model is not None or self._model_blob is not None

    def to_bytes(self) -> bytes:
        """The scheduler's state (without its dataset), for :meth:`from_bytes` in another process.

        The cost model is kept as its own pickle and loaded only when used: a process that just binds work
        needs the per-unit predictions, not the model (nor scikit-learn)."""
        state = dict(self.__dict__)
        state.pop("_dataset")
        if state["_model"] is not None:
            state["_model_blob"] = pickle.dumps(state["_model"], protocol=pickle.HIGHEST_PROTOCOL)
            state["_model"] = None
        return pickle.dumps((STATE_FORMAT, state), protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes, dataset: Dataset) -> Scheduler:
        """Restore a scheduler saved by :meth:`to_bytes` over the same ``dataset``."""
        try:
            fmt, state = pickle.loads(data)  # noqa: S301 - the task's own state file, written by to_bytes
        except Exception as exc:
            raise SchedulerError(f"cannot read the scheduler state ({exc})") from None
        if fmt != STATE_FORMAT:
            raise SchedulerError(f"scheduler state format {fmt!r}, expected {STATE_FORMAT!r}")
        if state["_book"].n != dataset.n_units:
            raise SchedulerError(
                f"the scheduler state holds {state['_book'].n} units, the dataset {dataset.n_units}"
            )
        obj = cls.__new__(cls)
        obj.__dict__.update(state)
        obj.dataset = dataset
        return obj

    def _time(self, now: Any) -> float:
        if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
            raise SchedulerError(f"now must be a finite number of seconds, got {now!r}")
        self._latest_now = float(now) if self._latest_now is None else max(self._latest_now, float(now))
        return float(now)

    def _job(self, job_id: str) -> SchedJob:
        index = self._by_id.get(job_id)
        if index is None:
            raise SchedulerError(f"no job {job_id!r} was handed out by this scheduler")
        return self._jobs[index]

    def _open(self, stage, kind, rows, now, soft, hard, predicted, name) -> SchedJob:
        if name is None:
            prefix = {"processing": "job"}.get(stage, stage)
            number = self._counter.get(prefix, 0) + 1
            self._counter[prefix] = number
            name = f"{prefix}-{number}"
        if name in self._by_id:
            raise SchedulerError(f"job name {name!r} was already used")
        job = SchedJob(
            len(self._jobs), name, stage, kind, np.asarray(rows, dtype=np.int64), now, soft, hard, predicted
        )
        self._jobs.append(job)
        self._by_id[name] = job.index
        self._running.add(job.index)
        self._book.assign(job.rows, job.index)
        if self._predictions is not None:
            self._pending_mean -= float(self._predictions.mean[job.rows].sum())
        return job

    def _request(self, job: SchedJob, alone: bool = False, meta: dict | None = None) -> JobRequest:
        return JobRequest(
            job_id=job.job_id,
            stage=job.stage,
            rows=job.rows,
            soft_limit_seconds=job.soft,
            hard_limit_seconds=job.hard,
            predicted_seconds=job.predicted,
            alone=alone,
            meta=dict(meta or {}),
        )

    def _end(self, job: SchedJob, now: float) -> None:
        job.ended_at = now
        self._running.discard(job.index)
        if self._phase == "probing":
            self._probe_progress(now)
        late = getattr(self, "_late_probes", None)
        if late and job.index in late:
            late.discard(job.index)
            if not late:
                self._refit_on_whole_round(now)
        self._check_done()

    def _failure_cap_or_none(self) -> float | None:
        """Young's cap on a job's expected length (seconds), ``None`` while it does not apply."""
        if self._predictions is None:
            return None
        cap = self._failure_cap()
        return cap if math.isfinite(cap) else None

    def _concurrency(self) -> int:
        return max(self._observer.concurrency(), self.slots or 1)

    def _check_done(self) -> None:
        if self._phase != "done" and not self._running and self._book.n_pending() == 0:
            self._phase = "done"


__all__ = ["JobRequest", "Scheduler", "SchedulerError", "ASSIGNED", "DONE", "PENDING", "QUARANTINED"]
