"""Learning the cost from reports (a :class:`Scheduler` part).

Every report that measured something is kept (a uniform reservoir of at most ``_max_reports`` once there
are more). The cost model (:class:`~autosplit.estimators.UnitCostModel`) is fitted on them plus the jobs
still running, as censored groups: a running job's units have together taken at least the payload time
elapsed so far. Without these, a fit made while slow jobs still run would only see the fast ones. During
processing the model is refitted when the reports grew by a quarter.
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
        """Every probe of the round processing started on has ended: refit on all of them, and let this
        fit give the probes' prediction of the total."""
        if self._phase == "processing" and self._refit(now):
            self._record_first_prediction()

    def _refit(self, now: float) -> bool:
        """Fit on the reports so far and bind with the new model; False when it cannot be used (the
        previous model stays)."""
        model = self._fit(now)
        if model is None:
            return False
        previous = self.model_
        self.model_ = model
        try:
            self._refresh_predictions()
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

    def _fit(self, now: float) -> Any:
        from autosplit.estimators import UnitCostModel

        model = UnitCostModel(match_quantile=1.0 - self.alpha)
        censored = self._censored_groups(now)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if censored is not None and _accepts_censored(model):
                    fitted = model.fit(self._reports, units=self.dataset, censored=censored)
                else:
                    fitted = model.fit(self._reports, units=self.dataset)
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
