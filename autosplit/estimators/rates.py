"""Job-level rate estimators: CRAB3's mean of rates (the baseline) and the ratio estimator.

Both use one number per job: the events it processed and its processing seconds (per-unit seconds summed,
else the event-loop time, else wall minus init), and predict ``seconds_per_event * events`` per unit.

:class:`MeanRateEstimator` reproduces CRAB3 (PreDAG): the arithmetic mean over probe jobs of their
throughput (events/s), used with a fixed 0.75 margin. When job speeds vary (log-sd ``s``), the mean of
rates overestimates the work-weighted rate by about ``exp(s**2)``, so it underestimates the time.

:class:`RatioEstimator` is total seconds over total events, the unbiased estimator of the seconds per event
of the work, with a jackknife confidence interval over jobs.

Both are scikit-learn estimators (:class:`sklearn.base.BaseEstimator`: parameters stored by the constructor,
learned attributes ending in ``_`` set by ``fit``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import polars as pl
from sklearn.base import BaseEstimator

from autosplit.estimators._base import (
    EstimatorError,
    as_reports,
    check_fitted,
    collect,
    finite_quantile,
    jackknife_variance,
    overhead_from,
    t_quantile,
    units_frame,
)
from autosplit.jobreport import JobReport


def _job_totals(reports: Iterable[JobReport], units: Any) -> tuple[pl.DataFrame, np.ndarray, np.ndarray]:
    """Usable jobs (successful, events > 0, processing seconds > 0) with their events and seconds."""
    reports = as_reports(reports)
    jobs, _ = collect(reports, units)
    usable = jobs.filter(
        pl.col("ok") & (pl.col("events") > 0) & pl.col("seconds").is_not_null() & (pl.col("seconds") > 0)
    )
    if usable.height == 0:
        raise EstimatorError(
            f"none of the {len(reports)} reports is a successful job with events and processing time "
            "(CRAB3: 'all probe jobs failed or anyhow failed to provide estimates')"
        )
    events = usable["events"].to_numpy().astype(np.float64)
    seconds = usable["seconds"].to_numpy().astype(np.float64)
    return usable, events, seconds


def _events(units: Any) -> np.ndarray:
    return units_frame(units)["events"].cast(pl.Float64).to_numpy()


class MeanRateEstimator(BaseEstimator):
    """CRAB3's estimator: the arithmetic mean of per-job throughputs (events/s), kept as the baseline.

    ``predict_unit_seconds`` gives ``events / rate_`` with no spread; :meth:`predict_quantile` applies
    CRAB3's fixed margin (a job sized to ``margin * L`` is expected to finish under ``L``) whatever ``q``;
    :meth:`events_per_job` is CRAB3's ``int(0.75 * target * rate)``. The per-job overhead is ignored, as
    in CRAB3.

    Parameters
    ----------
    margin:
        CRAB3's runtime margin (0.75: "33 % error margin").
    confidence:
        Level of :meth:`total_seconds_interval` (a t interval of the mean rate).
    """

    overhead_seconds = 0.0
    shared_cv = 0.0

    def __init__(self, *, margin: float = 0.75, confidence: float = 0.95) -> None:
        self.margin = margin
        self.confidence = confidence

    def fit(self, reports: Iterable[JobReport], units: Any = None) -> MeanRateEstimator:
        """Average the throughput ``events / seconds`` of the successful jobs; returns ``self``."""
        _, events, seconds = _job_totals(reports, units)
        rates = events / seconds
        self.rates_ = rates
        self.rate_ = float(rates.mean())
        self.seconds_per_event_ = 1.0 / self.rate_
        self.n_jobs_ = int(rates.size)
        return self

    def predict_unit_seconds(self, units: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``events / rate_`` seconds per unit, standard deviation 0 (CRAB3 has no spread model)."""
        check_fitted(self, "rate_")
        mean = _events(units) * self.seconds_per_event_
        return mean, np.zeros_like(mean)

    def predict_quantile(self, units: pl.DataFrame, q: float) -> np.ndarray:
        """CRAB3's implied upper bound ``mean / margin`` (independent of ``q``)."""
        return self.predict_unit_seconds(units)[0] / self.margin

    def events_per_job(self, target_seconds: float) -> int:
        """CRAB3's job size: ``int(margin * target_seconds * rate_)`` events."""
        check_fitted(self, "rate_")
        return int(self.margin * target_seconds * self.rate_)

    def total_seconds_interval(
        self, units: pl.DataFrame, confidence: float | None = None
    ) -> tuple[float, float, float]:
        """``(low, estimate, high)`` total seconds from a t interval of the mean rate."""
        check_fitted(self, "rate_")
        events = float(_events(units).sum())
        estimate = events / self.rate_
        if self.n_jobs_ < 2:
            return 0.0, estimate, math.inf
        half = t_quantile(confidence or self.confidence, self.n_jobs_ - 1) * float(
            self.rates_.std(ddof=1) / math.sqrt(self.n_jobs_)
        )
        low_rate, high_rate = self.rate_ - half, self.rate_ + half
        return events / high_rate, estimate, (events / low_rate if low_rate > 0 else math.inf)


class RatioEstimator(BaseEstimator):
    """Seconds per event = total processing seconds / total events, with a jackknife confidence interval.

    The spread of whole jobs around ``seconds_per_event_ * events`` (their relative standard deviation
    ``job_cv_``) and the estimator's own relative standard error form :attr:`shared_cv`, so the
    planner's quantile covers job-to-job variation; the per-unit standard deviation is 0 (nothing is
    known per unit). :meth:`predict_quantile` scales by out-of-fold job ratios (split-conformal).

    Parameters
    ----------
    confidence:
        Level of :attr:`ci_` and :meth:`total_seconds_interval` (Student-t over jobs).
    """

    def __init__(self, *, confidence: float = 0.95) -> None:
        self.confidence = confidence

    def fit(self, reports: Iterable[JobReport], units: Any = None) -> RatioEstimator:
        """Learn seconds per event from successful jobs; returns ``self``."""
        usable, events, seconds = _job_totals(reports, units)
        n = events.size
        spe = float(seconds.sum() / events.sum())
        self.seconds_per_event_ = spe
        self.n_jobs_ = n
        self.overhead_seconds_ = overhead_from(usable)
        if n >= 2:
            loo = (seconds.sum() - seconds) / (events.sum() - events)
            self.se_ = math.sqrt(float(jackknife_variance(loo[:, None])[0]))
            ratios = seconds / (spe * events)
            self.job_cv_ = float(ratios.std(ddof=1))
            self.scores_ = np.sort(seconds / (loo * events))
        else:
            self.se_ = math.inf
            self.job_cv_ = 0.0
            self.scores_ = np.ones(1)
        half = t_quantile(self.confidence, n - 1) * self.se_ if n >= 2 else math.inf
        self.ci_ = (max(spe - half, 0.0), spe + half)
        return self

    @property
    def overhead_seconds(self) -> float:
        """Mean fixed seconds per job (wall minus processing time of the reports)."""
        check_fitted(self, "seconds_per_event_")
        return self.overhead_seconds_

    @property
    def shared_cv(self) -> float:
        """Relative spread of whole jobs plus the estimator's relative standard error."""
        check_fitted(self, "seconds_per_event_")
        rel_se = self.se_ / self.seconds_per_event_ if math.isfinite(self.se_) else 0.0
        return math.sqrt(self.job_cv_**2 + rel_se**2)

    def predict_unit_seconds(self, units: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """``seconds_per_event_ * events`` per unit; standard deviation 0 (the spread is job-wide)."""
        check_fitted(self, "seconds_per_event_")
        mean = _events(units) * self.seconds_per_event_
        return mean, np.zeros_like(mean)

    def predict_quantile(self, units: pl.DataFrame, q: float) -> np.ndarray:
        """Per-unit ``q``-quantile: the mean times the conformal quantile of out-of-fold job ratios."""
        return self.predict_unit_seconds(units)[0] * finite_quantile(self.scores_, q)

    def total_seconds_interval(
        self, units: pl.DataFrame, confidence: float | None = None
    ) -> tuple[float, float, float]:
        """``(low, estimate, high)`` of the total seconds of ``units`` (t interval over jobs)."""
        check_fitted(self, "seconds_per_event_")
        events = float(_events(units).sum())
        if self.n_jobs_ < 2:
            return 0.0, events * self.seconds_per_event_, math.inf
        half = t_quantile(confidence or self.confidence, self.n_jobs_ - 1) * self.se_
        spe = self.seconds_per_event_
        return events * max(spe - half, 0.0), events * spe, events * (spe + half)
