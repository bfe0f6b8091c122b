"""Memory and output-size models: per-job peak RSS and output bytes as a function of events.

Both fit ``value = intercept_ + slope_ * events`` over jobs (Huber-robust, relative errors, non-negative
coefficients) and give an upper quantile by split-conformal calibration on out-of-fold ratios
``value / predicted`` (each job predicted by a fit without it). With ``n`` jobs the largest attainable level
is ``n / (n + 1)``; beyond it the largest ratio seen is used.

Both are scikit-learn estimators without parameters (:class:`sklearn.base.BaseEstimator`; learned attributes
end in ``_`` and are set by ``fit``).
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
    robust_nnls,
)
from autosplit.jobreport import JobReport


def _fit_line(events: np.ndarray, values: np.ndarray) -> np.ndarray:
    X = np.column_stack([np.ones_like(events), events])
    if events.size == 1 or np.ptp(events) == 0:
        return np.array([float(values.mean()), 0.0])
    coef = robust_nnls(X, values)
    predicted = X @ coef
    return coef * (values.sum() / predicted.sum()) if predicted.sum() > 0 else coef


class _PerJobLinear(BaseEstimator):
    _column = ""
    _label = ""

    def fit(self, reports: Iterable[JobReport], units: Any = None) -> Any:
        reports = as_reports(reports)
        jobs, _ = collect(reports, units)
        usable = jobs.filter(pl.col(self._column).is_not_null() & pl.col("events").is_not_null())
        if usable.height == 0:
            raise EstimatorError(f"none of the {len(reports)} reports has {self._label} and events")
        events = usable["events"].to_numpy().astype(np.float64)
        values = usable[self._column].to_numpy().astype(np.float64)
        coef = _fit_line(events, values)
        self.intercept_, self.slope_ = float(coef[0]), float(coef[1])
        if events.size >= 2:
            scores = np.empty(events.size)
            for j in range(events.size):
                others = np.arange(events.size) != j
                c = _fit_line(events[others], values[others])
                scores[j] = values[j] / max(c[0] + c[1] * events[j], 1e-300)
        else:
            scores = np.ones(1)
        self.scores_ = np.sort(scores)
        self.n_jobs_ = int(events.size)
        return self

    def predict(self, events: Any) -> np.ndarray:
        """Mean value for jobs of ``events`` events (array or scalar)."""
        check_fitted(self, "slope_")
        return self.intercept_ + self.slope_ * np.asarray(events, dtype=np.float64)

    def quantile(self, events: Any, q: float = 0.95) -> np.ndarray:
        """Upper ``q``-quantile for jobs of ``events`` events (split-conformal)."""
        return self.predict(events) * finite_quantile(self.scores_, q)

    def quantile_line(self, q: float = 0.95) -> tuple[float, float]:
        """``(a, b)`` with ``quantile(events, q) == a + b * events``: the upper quantile as a line, to keep
        (e.g. in a small file) and evaluate without the model."""
        check_fitted(self, "slope_")
        factor = finite_quantile(self.scores_, q)
        return self.intercept_ * factor, self.slope_ * factor

    def max_events(self, limit: float, q: float = 0.95) -> float:
        """Largest events per job whose ``q``-quantile stays within ``limit`` (inf when it never exceeds)."""
        check_fitted(self, "slope_")
        factor = finite_quantile(self.scores_, q)
        room = limit / factor - self.intercept_
        if room < 0:
            return 0.0
        return math.inf if self.slope_ <= 0 else room / self.slope_


class MemoryModel(_PerJobLinear):
    """Peak resident memory (bytes) of a job as a function of its events.

    ``intercept_`` (bytes) is the memory of an empty job, ``slope_`` bytes per event;
    :meth:`quantile` gives the calibrated upper quantile and :meth:`max_events` the largest job that
    stays under a memory limit with probability ``q``.
    """

    _column = "peak_rss"
    _label = "peak RSS"

    def fit(self, reports: Iterable[JobReport], units: Any = None) -> MemoryModel:
        """Fit peak RSS (bytes) against events over the reports that measured both; returns ``self``."""
        return super().fit(reports, units)


class OutputModel(_PerJobLinear):
    """Output bytes of a job as a function of its events.

    ``slope_`` is bytes per event, ``intercept_`` bytes per job (file headers); ``bytes_per_event_`` is
    the plain ratio of total output bytes to total events. :meth:`predict_unit_bytes` gives per-unit
    bytes for the planner's output-size cap.
    """

    _column = "output_bytes"
    _label = "output sizes"

    def fit(self, reports: Iterable[JobReport], units: Any = None) -> OutputModel:
        """Fit output bytes against events over the reports that measured both; returns ``self``."""
        super().fit(reports, units)
        reports = as_reports(reports)
        jobs, _ = collect(reports, units)
        usable = jobs.filter(pl.col("output_bytes").is_not_null() & (pl.col("events") > 0))
        total_events = float(usable["events"].sum() or 0)
        self.bytes_per_event_ = (
            float(usable["output_bytes"].sum()) / total_events if total_events else math.nan
        )
        return self

    def predict_unit_bytes(self, units: pl.DataFrame) -> np.ndarray:
        """Mean output bytes of each unit (``slope_ * events``; the per-job intercept is not included)."""
        check_fitted(self, "slope_")
        table = getattr(units, "units", units)
        return self.slope_ * table["events"].cast(pl.Float64).to_numpy()
