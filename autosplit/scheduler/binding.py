"""Binding work to a free slot: which units, how many, and with which limits (a :class:`Scheduler` part).

Pending units are bound in this order: units that must run alone (longest predicted first), units handed
back by earlier jobs, fresh units in planning order. A job is cut off the front of its queue
(:func:`~autosplit.scheduler.packing.cut_job`) so that its ``(1 - alpha)`` runtime quantile stays within
the packing target and its predicted payload within the size budget:

* the **packing target** is the target runtime (the soft limit);
* under an observed failure hazard (without checkpointing) the job's **expected** length is held to Young's
  optimum ``sqrt(2 * overhead / hazard)`` (:meth:`BindingMixin._failure_cap`): the size budget below is
  capped by it too;
* the **size budget** is the predicted work left per slot (pending units plus what the running jobs still
  have to do, over the observed concurrency) divided by ``factoring`` and by ``1 + spread_margin * shared_cv``
  (the model's job-to-job spread: site and node speed, parameter and shape uncertainty), never below
  ``floor_overheads`` per-job overheads: jobs keep the target size while much work remains and shrink
  towards the end, so slots finish together, a job on a slow slot included;
* nor above the **pending work over the idle slots** (the observed concurrency less the running jobs,
  :meth:`BindingMixin._idle_share`): work handed back when slots already stand idle at the end (a lost
  job's units, a soft stop's rest) is spread over them, not packed into floor-sized jobs while the
  others idle (on the ``grid`` training workloads with node failures, 16 of 21 runs ended sooner, 1 later);
* a job asked for a known **site** (``next_jobs(..., site=...)``) has the budget and the target divided by
  that site's learned time factor, and the between-site spread left out of its quantile.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import warnings
from statistics import NormalDist
from typing import Any

import numpy as np

from autosplit.scheduler.book import PENDING
from autosplit.scheduler.jobs import SchedulerError
from autosplit.scheduler.observe import slots_per_site
from autosplit.scheduler.packing import Predictions, cut_job
from autosplit.scheduler.requests import JobRequest
from autosplit.splitting.limits import alone_hard_limit, job_hard_limit


def longest_files_first(rows: np.ndarray, mean: np.ndarray, book, file_id: np.ndarray) -> np.ndarray:
    """``rows`` (in planning order) regrouped file by file, the files with the costliest units first.

    Files stay whole (a job still reads few files) and keep their planning segment's order; within a
    segment, files go by the mean predicted seconds of their units, highest first. Unit costs that no
    feature explains scale with the predicted cost, so the units that may turn out longest start earliest,
    while the cheapest units fill the end of the task.
    """
    if rows.size < 2:
        return rows
    files = file_id[rows]
    seg = book.segment[rows]
    # Runs of consecutive rows of one file (a file's units are contiguous in planning order).
    start = np.ones(rows.size, dtype=bool)
    start[1:] = (files[1:] != files[:-1]) | (seg[1:] != seg[:-1])
    group = np.cumsum(start) - 1
    n_groups = int(group[-1]) + 1
    cost = np.bincount(group, weights=mean[rows], minlength=n_groups) / np.bincount(group, minlength=n_groups)
    group_seg = seg[start]
    order = np.lexsort((-cost, group_seg))  # segment order kept (segments are sorted), costliest first
    rank = np.empty(n_groups, dtype=np.int64)
    rank[order] = np.arange(n_groups)
    return rows[np.argsort(rank[group], kind="stable")]


#: A refit may quarantine at most this many pending units (or 1 % of them) as too long even alone.
MAX_HOPELESS_ON_REFIT = 10


class BindingMixin:
    """Processing-phase job making of :class:`~autosplit.scheduler.Scheduler` (see the module docstring)."""

    def _start_processing(self) -> None:
        self._phase = "processing"
        self._candidate = None
        self._refresh_predictions()
        if self._first_prediction is None:
            self._record_first_prediction()

    def _record_first_prediction(self, model: Any = None) -> None:
        """The total the probes predict (``summary()['predicted_total_cpu_seconds']``): from the model
        processing starts with (or ``model``), replaced once by a fit on the whole probe round's reports
        when probes were still running then (the first probes to end are the fast ones: fast nodes, cheap
        units)."""
        model = self.model_ if model is None else model
        model = self._at_work_shares(model)
        if hasattr(model, "total_seconds_interval"):
            low, estimate, high = model.total_seconds_interval(self.dataset.units)
            # The per-run factors (when learned) re-price the runs the probes showed to differ.
            scale = self._run_scale()
            low, estimate, high = low * scale, estimate * scale, high * scale
            probed = sum(int(self._caps.events[j.rows].sum()) for j in self._jobs if j.kind == "probe")
            total = max(int(self._caps.events.sum()), 1)
            self._first_prediction = {
                "estimate": float(estimate),
                "low": float(low),
                "high": float(high),
                "probe_event_fraction": probed / total,
                "probe_jobs": sum(1 for j in self._jobs if j.kind == "probe"),
            }

    def _at_work_shares(self, model: Any) -> Any:
        """``model`` predicting for the sites' shares of the task's work, when the probes ran at several.

        A probe round puts about one probe on each slot, so the probes weigh the sites by their slots. The
        task's work goes to a site in proportion to its slots times its speed: a slow site takes fewer units.
        The slots are the most probes seen running at once there; the speed is the model's site factor. On
        the ``sites`` workloads (sites 0.7x/1.0x/1.8x) the probes' mix over-predicted the task by 8-14 %."""
        factors = getattr(model, "site_factors_", None)
        if not factors or len(factors) < 2 or not hasattr(model, "get_params"):
            return model
        params = model.get_params()
        if "site_weights" not in params or params["site_weights"]:
            return model  # a model without the parameter, or destinations the caller chose
        sites, starts, ends = [], [], []
        for report in self._reports:
            index = self._by_id.get(report.job_id)
            if index is None or self._jobs[index].kind != "probe" or not report.site:
                continue
            job = self._jobs[index]
            wall = report.wall_seconds
            if job.ended_at is None or wall is None or not math.isfinite(wall):
                continue
            sites.append(report.site)
            starts.append(job.ended_at - wall)
            ends.append(job.ended_at)
        slots = slots_per_site(sites, np.array(starts), np.array(ends))
        weights = {site: n / factors[site] for site, n in slots.items() if n > 0 and factors.get(site, 0) > 0}
        if len(weights) < 2:
            return model
        return copy.copy(model).set_params(site_weights=weights)

    def _run_scale(self) -> float:
        """Total predicted seconds with the per-run factors over the total without them (1 when unused)."""
        runs = getattr(self, "_run_book", None)
        if runs is None or not getattr(self, "run_factors", False) or self._predictions is None:
            return 1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                raw = np.asarray(self.model_.predict_unit_seconds(self.dataset.units)[0], dtype=np.float64)
        except Exception:  # noqa: BLE001
            return 1.0
        total = float(raw.sum())
        scaled = float(self._predictions.mean.sum())
        return scaled / total if total > 0 and np.isfinite(scaled) else 1.0

    def _refresh_predictions(self, refit: bool = False) -> None:
        """Per-unit predictions from the current model; queues re-sorted; oversized units set aside.

        With ``refit``, a model that would quarantine more than ``MAX_HOPELESS_ON_REFIT`` pending units (and
        more than 1 % of them) as too long even alone raises :class:`SchedulerError` before anything
        changes, and the caller keeps its previous model: on ``grid``/``run-cost`` seed 1 one refit
        quarantined 26,695 of 30,000 units that way."""
        model = self.model_
        units = self.dataset.units
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mean, std = model.predict_unit_seconds(units)
        mean = np.asarray(mean, dtype=np.float64)
        std = np.asarray(std, dtype=np.float64)
        if hasattr(model, "predict_quantile"):
            q99 = np.asarray(model.predict_quantile(units, 0.99), dtype=np.float64)
        else:
            q99 = mean + NormalDist().inv_cdf(0.99) * std
        shared = float(getattr(model, "shared_cv", 0.0) or 0.0)
        runs = getattr(self, "_run_book", None)
        if runs is not None and getattr(self, "run_factors", False) and np.isfinite(mean).all():
            factor, shrink = runs.factors(mean)
            mean, std, q99, shared = mean * factor, std * factor, q99 * factor, shared * shrink
        overhead = float(getattr(model, "overhead_seconds", 0.0) or 0.0)
        output = None
        if self.output_model is not None and self.max_output_bytes is not None:
            output = np.asarray(self.output_model.predict_unit_bytes(units), dtype=np.float64)
        if not (np.isfinite(mean).all() and np.isfinite(std).all()):
            raise SchedulerError("the cost model predicted a non-finite unit time")
        book = self._book
        pending = book.state == PENDING
        # Hopeless: expected to outlast the wall-time limit alone (an upper quantile beyond it is no proof;
        # such a unit runs alone, up to the limit).
        hopeless = pending & (mean + overhead > self.max_job_seconds)
        beyond = int(np.count_nonzero(hopeless))
        if refit and beyond > max(MAX_HOPELESS_ON_REFIT, 0.01 * int(np.count_nonzero(pending))):
            # Quarantine cannot be undone: so many at once is more likely one bad fit than the task.
            raise SchedulerError(
                f"it predicts {beyond} pending units above the longest allowed job even alone"
            )
        self._predictions = Predictions(mean, std**2, q99, overhead, shared, self._z, output)
        self._pending_mean = float(mean[pending].sum())
        # Units that cannot share a job: alone, longest first; beyond the hard limit even alone: quarantined.
        alone_q = self._predictions.alone_quantile()
        if beyond:
            rows = np.flatnonzero(hopeless)
            self._quarantine(
                rows,
                f"predicted above the longest allowed job ({self.max_job_seconds:.0f} s) even alone; "
                "resubmit with a larger max runtime",
            )
            pending = book.state == PENDING
        too_long = alone_q > self._packing_target()
        # Units set apart by an earlier model that this one says fit in a job share jobs again.
        book.release_oversized(np.flatnonzero(pending & book.oversized & ~too_long))
        book.set_oversized(np.flatnonzero(pending & too_long & ~book.alone))
        alone_rows = np.flatnonzero(pending & book.alone)
        book.alone_queue = alone_rows[np.argsort(-mean[alone_rows], kind="stable")].tolist()
        book.returned = book.returned[~book.alone[book.returned]]
        if not self._fresh_built:
            book.rebuild_fresh()
            self._fresh_built = True
        else:
            left = book.fresh_left()
            book.fresh, book.cursor = left[(book.state[left] == PENDING) & ~book.alone[left]], 0
        if getattr(self, "fresh_order", "planning") == "longest-first":
            book.fresh, book.cursor = (
                longest_files_first(book.fresh_left(), mean, book, self._caps.file_id),
                0,
            )

    def _packing_target(self) -> float:
        """Seconds a job's ``(1 - alpha)`` runtime quantile must stay within: the target (its soft limit).
        One place for it: the binding, the too-long test and the summary all read it here."""
        return self.target_runtime

    def _running_exposure(self, now: float) -> float:
        """Slot-seconds the running jobs have held their slots until ``now`` (they may still be lost)."""
        jobs = self._jobs
        return float(
            sum(
                max(now - jobs[index].requested_at, 0.0)
                for index in self._running
                if jobs[index].outcome == "running"  # a job being accounted for counts as ended
            )
        )

    def _hazard(self, now: float | None = None, excluding=0):
        """Jobs lost per slot-second, the running jobs' slot time until ``now`` counted (default: the latest
        time a call gave); ``excluding`` losses left out (see :meth:`PoolObserver.hazard`)."""
        observer = self._observer
        if observer.hazard() <= 0:  # too few losses: no need to sum the running jobs' slot time
            return observer.hazard(excluding=excluding)
        now = self._latest_now if now is None else now
        running = self._running_exposure(now) if now is not None else 0.0
        return observer.hazard(running_seconds=running, excluding=excluding)

    def _failure_cap(self, now: float | None = None) -> float:
        """Seconds a job's *expected* length (slot overhead, set-up and payload) may reach under the observed
        failure hazard (:meth:`_hazard` at ``now``) without checkpointing: Young's
        optimum ``sqrt(2 * overhead / hazard)``, at least four job overheads (and 240 s) and an eighth of the
        target; infinite while no failure hazard is seen or when that is no shorter than a job at the target
        (slot overhead plus the target).

        Young's optimum balances the expected work a failure loses against the overhead of more jobs, so it
        bounds a job's mean, not a quantile. Holding the ``(1 - alpha)`` quantile to it instead made jobs on
        spread-out workloads a half to a quarter of the optimum: on the ``grid`` training workloads with node
        failures, 1.5-2x as many jobs, more makespan and more waste (``heavy-tail``: 19,500 jobs against
        9,500, waste 1.48x CRAB3's against 0.95x). The floor of four overheads leaves a job at least three
        overheads of payload."""
        hazard = self._hazard(now)
        if not self.failure_aware or hazard <= 0 or self.checkpoint_seconds is not None:
            return math.inf
        overhead = max(self._job_overhead(), 60.0)
        cap = max(math.sqrt(2.0 * overhead / hazard), 4.0 * overhead, self.target_runtime / 8.0)
        at_target = self.target_runtime + self._observer.slot_overhead(default=0.0)
        return float(cap) if cap < at_target else math.inf

    def _job_overhead(self) -> float:
        """Seconds a job costs its slot beyond its units: outside the payload (observed) and inside it
        (the model's per-job set-up)."""
        inside = self._predictions.overhead if self._predictions is not None else 0.0
        return self._observer.slot_overhead(default=0.0) + inside

    def _mean_budget(self, now: float, shared: float | None = None) -> float:
        """Predicted payload seconds the next job may take: the work left per slot (pending plus what the
        running jobs still have to do) over ``factoring * (1 + spread_margin * shared_cv)``, never below
        ``floor_overheads`` job overheads."""
        overhead = self._job_overhead()
        n = self._concurrency()
        horizon = (max(self._pending_mean, 0.0) + self._running_remaining(now)) / n
        floor = self.min_job_seconds if self.min_job_seconds is not None else self.floor_overheads * overhead
        # A job lands on a slot of unknown speed: towards the end, a share cut by the job-to-job spread
        # lets a job on a slow slot still end about when the others do.
        if shared is None:
            shared = self._predictions.shared_cv if self._predictions is not None else 0.0
        spread = 1.0 + getattr(self, "spread_margin", 0.0) * max(shared, 0.0)
        return max(horizon / (self.factoring * spread), floor, 1.0)

    def _idle_share(self) -> float:
        """Predicted payload seconds of pending work per idle slot: the observed concurrency less the
        running jobs (at least one slot), never below one second."""
        idle = max(self._concurrency() - len(self._running), 1)
        return max(self._pending_mean / idle, 1.0)

    def _running_remaining(self, now: float) -> float:
        """Predicted payload seconds the running jobs still have to do."""
        slot = self._observer.slot_overhead(default=0.0)
        total = 0.0
        for index in self._running:
            job = self._jobs[index]
            predicted = job.predicted if job.predicted is not None else (job.soft or 0.0)
            start = job.started_at if job.started_at is not None else job.requested_at + slot
            total += max(predicted - max(now - start, 0.0), 0.0)
        return total

    def _for_site(self, site: str | None, p: Predictions) -> tuple[float, Predictions]:
        """The time factor of ``site`` relative to the pool's mix of sites (the model's learned
        ``site_factors_``, within 1/4 to 4) and the predictions with the job-to-job spread of a job known
        to run there (the between-sites part left out); ``(1, p)`` when the site is not given or learned.

        A job bound for a known site has its size budget and packing target divided by the factor and its
        prediction multiplied by it: on a site 1.8x slower a job holds 1/1.8 of the work and still ends
        when one bound for an average slot would."""
        if not site:
            return 1.0, p  # (without reading self.model_: a restored scheduler loads it only when needed)
        model = self.model_
        factors = getattr(model, "site_factors_", None)
        if not factors or site not in factors or not hasattr(model, "for_site"):
            return 1.0, p
        factor = float(factors[site])
        if not (math.isfinite(factor) and factor > 0):
            return 1.0, p
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                narrow = float(model.for_site(site).shared_cv) / float(model.shared_cv)
        except Exception:  # noqa: BLE001 - a model that cannot say keeps the mix's spread
            narrow = 1.0
        narrow = min(max(narrow, 0.0), 1.0) if math.isfinite(narrow) else 1.0
        return min(max(factor, 0.25), 4.0), dataclasses.replace(p, shared_cv=p.shared_cv * narrow)

    def _next_job(self, now: float, name: str | None, site: str | None = None) -> JobRequest | None:
        self._maybe_refit(now)
        book = self._book
        p = self._predictions
        if p is None:
            return None
        while book.alone_queue:
            row = book.alone_queue.pop(0)
            if book.state[row] == PENDING:
                return self._alone_job(np.array([row], dtype=np.int64), now, name)
        if book.returned.size:
            queue, source = book.returned, "returned"
        elif book.cursor < book.fresh.size:
            queue, source = book.fresh_left(), "fresh"
        else:
            return None
        target = self._packing_target()
        failure_cap = self._failure_cap(now) - self._observer.slot_overhead(default=0.0) - p.overhead
        speed, p = self._for_site(site, p)
        share = min(self._mean_budget(now, p.shared_cv), self._idle_share())
        budget = min(share, target - p.overhead, failure_cap) / speed
        cut_target = p.overhead + (target - p.overhead) / speed
        k = cut_job(queue, book.segment, p, self._caps, mean_budget=budget, target=cut_target)
        if source == "returned":
            rows = book.pop_returned(k)
        else:
            rows = book.fresh[book.cursor : book.cursor + k]
            book.cursor += k
        level = int(book.returns[rows].max()) if rows.size else 0
        stage = "processing" if level == 0 else f"tail-{min(level, max(self.max_tails, 1))}"
        last = level > 0 and level >= self.max_tails
        soft = None if last else self.target_runtime
        q99 = float(p.q99[rows].max()) * speed
        hard = job_hard_limit(soft, q99, self.target_runtime, self.grace_seconds, self.max_job_seconds)
        if getattr(self, "kill_at_wall", False):
            # A kill throws away the unit in progress and its rerun starts from zero: past the soft limit
            # a job is finishing its last unit, so only the wall-time limit stops it.
            hard = max(hard, self.max_job_seconds + self.grace_seconds)
        predicted = p.overhead + speed * float(p.mean[rows].sum())
        job = self._open(stage, "bulk", rows, now, soft, hard, predicted, name)
        m, v = speed * p.mean[rows].sum(), speed * speed * p.var[rows].sum()
        meta = {"predicted_quantile": float(p.quantile(m, v)), "tail_level": level}
        return self._request(job, meta={**meta, "site": site} if site else meta)

    def _alone_job(self, rows: np.ndarray, now: float, name: str | None) -> JobRequest:
        p = self._predictions
        level = int(self._book.returns[rows].max())
        stage = "processing" if level == 0 else f"tail-{min(level, max(self.max_tails, 1))}"
        hard = alone_hard_limit(
            float(p.q99[rows].max()), self.target_runtime, self.grace_seconds, self.max_job_seconds
        )
        spent = max((self._book.spent.get(int(r), 0.0) for r in rows.tolist()), default=0.0)
        if spent > 0:
            # A kill already showed the unit takes at least ``spent`` seconds: give it twice that, whatever
            # the model predicts, and the whole wall-time limit when twice that would reach the share of it
            # after which a kill gives the unit up (it must have had the whole limit then).
            wall = self.max_job_seconds
            need = min(2.0 * spent, wall)
            if need >= self.give_up_fraction * wall:
                need = wall
            hard = max(hard, need + self.grace_seconds)
        predicted = p.overhead + float(p.mean[rows].sum())
        job = self._open(stage, "alone", rows, now, None, hard, predicted, name)
        return self._request(job, alone=True, meta={"tail_level": level})

    def _unstick(self, now: float) -> None:
        """Nothing runs, units are pending, and no job came out: put every pending unit back in a queue."""
        book = self._book
        if self._phase == "probing":
            self._round = None
            self._rounds_done = max(self._rounds_done, 0)
            if self.has_model:
                self._start_processing()
            else:
                self._give_up_round(now)
            return
        pending = np.flatnonzero(book.state == PENDING)
        queued = set(book.alone_queue) | set(book.returned.tolist()) | set(book.fresh_left().tolist())
        missing = np.array([r for r in pending.tolist() if r not in queued], dtype=np.int64)
        if missing.size:
            book.push_returned(missing)
