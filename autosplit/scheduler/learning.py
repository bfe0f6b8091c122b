"""Learning the cost from reports (a :class:`Scheduler` part).

Every report that measured something is kept (a uniform reservoir of at most ``_max_reports`` once there
are more). The cost model (:class:`~autosplit.estimators.UnitCostModel`) is fitted on them plus the jobs
still running, as censored groups: a running job's units have together taken at least the payload time
elapsed so far. Without these, a fit made while slow jobs still run would only see the fast ones. During
processing the model is refitted when the reports grew by a quarter; a refit that moves the predicted
total by more than ``MAX_REFIT_JUMP`` is used only when the next refit agrees.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from autosplit.errors import AutosplitError
from autosplit.jobreport import JobReport
from autosplit.scheduler.jobs import in_progress_pair


class LearningMixin:
    """Report keeping and model fitting of :class:`~autosplit.scheduler.Scheduler`."""

    def _maybe_refit(self, now: float) -> None:
        if not self.refit or self._phase != "processing":
            return
        n = self._n_reports_seen
        if n < max(1.25 * self._fit_reports, self._fit_reports + 20):
            return
        self._refit(now)

    def _refit_on_whole_round(self, now: float) -> None:
        """Every probe of the round processing started on has ended: refit on every report, and let a fit
        on the probe reports alone give the probes' prediction of the total.

        By then the first processing jobs have ended too, the short ones first, and the running ones enter
        the refit as censored; that mix is the model to bind with, but it is not what the probes say (with
        node failures shrinking the jobs it over-predicted the task by up to 1.5x on ``grid``)."""
        if self._phase != "processing":
            return
        self._refit(now)
        probes = [report for report in self._reports if self._is_probe_report(report)]
        model = self._fit(now, reports=probes) if probes else None
        if model is not None:
            self._record_first_prediction(model)

    def _is_probe_report(self, report: JobReport) -> bool:
        """Whether ``report`` came from a probe job (by the scheduler's own record of the job)."""
        index = self._by_id.get(report.job_id)
        return index is not None and self._jobs[index].kind == "probe"

    def _refit(self, now: float) -> bool:
        """Fit on the reports so far and bind with the new model; False when it cannot be used (the
        previous model stays)."""
        model = self._fit(now)
        if model is None:
            return False
        previous = self.model_
        jump = _total_ratio(model, previous, self.dataset.units)
        if jump is not None and not 1.0 / MAX_REFIT_JUMP <= jump <= MAX_REFIT_JUMP:
            self._refit_jumps = getattr(self, "_refit_jumps", 0) + 1
            if self._refit_jumps < 2:
                self._notes.append(
                    f"refit at {now:.0f} s not used: it moved the predicted total {jump:.3g}x "
                    "(the next refit is used if it agrees)"
                )
                return False
        self._refit_jumps = 0
        self.model_ = model
        try:
            self._refresh_predictions(refit=True)
        except Exception as exc:  # noqa: BLE001 - keep binding with the previous model
            self._notes.append(f"refit not used ({type(exc).__name__}): {exc}")
            self.model_ = previous
            return False
        return True

    def _learn(self, report: JobReport) -> None:
        if not (report.has_unit_seconds or report.processing_seconds is not None or in_progress_pair(report)):
            return
        self._n_reports_seen += 1
        if len(self._reports) < self._max_reports:
            self._reports.append(report)
            return
        # Reservoir sampling keeps a uniform sample of every report seen, in bounded memory.
        k = int(self._rng.integers(self._n_reports_seen))
        if k < self._max_reports:
            self._reports[k] = report

    def _usable_reports(self) -> bool:
        return bool(self._reports)

    def _fit(self, now: float, reports: list[JobReport] | None = None) -> Any:
        """A model fitted on every kept report and the running jobs (censored), or, with ``reports``, on
        those alone; ``None`` when the fit fails or cannot be used (the reason goes to the notes)."""
        from autosplit.estimators import UnitCostModel

        model = UnitCostModel(match_quantile=1.0 - self.alpha)
        censored = self._censored_groups(now) if reports is None else None
        reports = self._reports if reports is None else reports
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if censored is not None and _accepts_censored(model):
                    fitted = model.fit(reports, units=self.dataset, censored=censored)
                else:
                    fitted = model.fit(reports, units=self.dataset)
        except AutosplitError as exc:
            self._notes.append(f"fit failed: {exc}")
            self._fit_reports = self._n_reports_seen
            return None
        except Exception as exc:  # noqa: BLE001 - odd but valid reports must never stop the scheduler
            self._notes.append(f"fit failed ({type(exc).__name__}): {exc}")
            self._fit_reports = self._n_reports_seen  # do not retry on every call; wait for more reports
            return None
        problem = _unusable(fitted, self.dataset.units)
        if problem is not None:
            self._notes.append(f"fit discarded: {problem}")
            self._fit_reports = self._n_reports_seen
            return None
        self._fits += 1
        self._fit_reports = self._n_reports_seen
        return fitted

    def _censored_groups(self, now: float) -> Any:
        """Running jobs as censored groups: their units took at least the payload time elapsed so far."""
        import polars as pl

        overhead = self._observer.slot_overhead(default=0.0)
        groups, rows, bounds = [], [], []
        for index in self._running:
            job = self._jobs[index]
            start = job.started_at if job.started_at is not None else job.requested_at + overhead
            elapsed = now - start
            if elapsed <= 0 or (job.soft is not None and elapsed >= job.soft):
                continue
            groups.append(np.full(job.rows.size, len(bounds), dtype=np.int64))
            rows.append(job.rows)
            bounds.append(elapsed)
        if not bounds:
            return None
        all_rows = np.concatenate(rows)
        units = self.dataset.units
        group = np.concatenate(groups)
        return pl.DataFrame(
            {
                "group": group,
                "run": units["run"].to_numpy()[all_rows],
                "lumi": units["lumi"].to_numpy()[all_rows],
                "seconds_at_least": np.asarray(bounds, dtype=np.float64)[group],
            }
        )


#: A refit that moves the predicted total of the dataset by more than this factor (either way) from the
#: model in use is held back once: the censored running jobs can, rarely, drive one fit's tail far out
#: (a 12x level on ``grid``/``pileup`` seed 1, gone at the next refit). Two such refits in a row are used.
MAX_REFIT_JUMP = 3.0


def _total_ratio(model: Any, previous: Any, units: Any) -> float | None:
    """The predicted total seconds of ``units`` under ``model`` over that under ``previous`` (``None`` when
    there is no previous model or either total is not a positive number)."""
    if previous is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            new = float(np.sum(model.predict_unit_seconds(units)[0]))
            old = float(np.sum(previous.predict_unit_seconds(units)[0]))
    except Exception:  # noqa: BLE001 - _unusable judges the new model; an odd old one allows any jump
        return None
    if not (np.isfinite(new) and np.isfinite(old)) or new <= 0 or old <= 0:
        return None
    return new / old


def _unusable(model: Any, units: Any) -> str | None:
    """Why a fitted model cannot be used (non-finite predictions or spread, or an error computing them);
    ``None`` when it can. The scheduler keeps its previous model (or probes on) instead."""
    import math

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mean, std = model.predict_unit_seconds(units)
            numbers = [float(getattr(model, "shared_cv", 0.0) or 0.0)]
            numbers.append(float(getattr(model, "overhead_seconds", 0.0) or 0.0))
            if hasattr(model, "predict_quantile"):
                q99 = np.asarray(model.predict_quantile(units, 0.99), dtype=np.float64)
                if not np.isfinite(q99).all():
                    return "non-finite unit quantile"
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {exc}"
    if not (np.isfinite(np.asarray(mean, dtype=np.float64)).all() and np.isfinite(np.asarray(std)).all()):
        return "non-finite unit prediction"
    if not all(math.isfinite(x) for x in numbers):
        return "non-finite spread or overhead"
    return None


def _accepts_censored(model: Any) -> bool:
    import inspect

    try:
        return "censored" in inspect.signature(model.fit).parameters
    except (TypeError, ValueError):
        return False
