"""Job runtime predictions from any cost model, with the planner's exact arithmetic.

A job holding units ``U`` has mean runtime ``overhead_seconds + sum(mean[U])`` and variance
``sum(std[U]**2) + (shared_cv * sum(mean[U]))**2`` (the protocol of :mod:`autosplit.splitting.model`;
estimators sit below splitting, so the arithmetic is repeated here rather than imported); its
``q``-quantile is the overhead plus the payload's quantile (:mod:`autosplit._quantile`: lognormal with that
mean and variance, at least the normal one). These helpers evaluate that for many jobs at once (one
``bincount`` per quantity), e.g. for dry runs and for checking calibration.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from autosplit._quantile import payload_quantile
from autosplit.estimators._base import EstimatorError, normal_quantile, units_frame


def job_runtime_distribution(model: Any, units: Any, job_index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (seconds) of each job's runtime.

    ``job_index[i]`` is the job (0 .. n_jobs-1) of row ``i`` of ``units``; -1 leaves a unit out.
    """
    table: pl.DataFrame = units_frame(units)
    job_index = np.asarray(job_index, dtype=np.int64)
    if job_index.shape != (table.height,):
        raise EstimatorError("job_index must have one entry per unit")
    n_jobs = int(job_index.max()) + 1 if job_index.size and job_index.max() >= 0 else 0
    mean, std = model.predict_unit_seconds(table)
    used = job_index >= 0
    total = np.bincount(job_index[used], weights=np.asarray(mean)[used], minlength=n_jobs)
    var = np.bincount(job_index[used], weights=np.asarray(std)[used] ** 2, minlength=n_jobs)
    var += (float(getattr(model, "shared_cv", 0.0) or 0.0) * total) ** 2
    return float(model.overhead_seconds) + total, np.sqrt(var)


def job_runtime_quantile(model: Any, units: Any, job_index: np.ndarray, q: float) -> np.ndarray:
    """The planner's ``q``-quantile (seconds) of each job's runtime: the overhead plus the payload's quantile
    (:func:`~autosplit._quantile.payload_quantile`)."""
    if not 0 < q < 1:
        raise EstimatorError(f"q must be in (0, 1), got {q}")
    mean, sd = job_runtime_distribution(model, units, job_index)
    overhead = float(model.overhead_seconds)
    return overhead + payload_quantile(mean - overhead, sd**2, normal_quantile(q))
