"""The unit cost model's regression rows: which cost terms to fit, and the measurements as design rows.

Private to :mod:`autosplit.estimators`; :class:`~autosplit.estimators.unitcost.UnitCostModel` documents the
model. The terms are ``unit``, ``events``, ``events*f`` (and ``events*f^2``) for per-event features ``f``
and ``bytes`` (see :func:`~autosplit.estimators._base.design`). Jobs with per-unit timing give one row per
unit; jobs with job-level timing only give one row per job, its units' terms summed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from autosplit.estimators._base import EstimatorError, collect, design, numeric_features, term_columns
from autosplit.jobreport import JobReport


@dataclass
class Rows:
    """The measurements as regression rows.

    Unit rows (jobs with per-unit timing): terms ``Xu``, seconds ``yu``, job ``ju``, events ``eu``.
    Job rows (jobs with job-level timing only): summed terms ``Xj``, seconds ``yj``, job ``jj``, events
    ``ej``. Jobs are numbered 0 .. n_jobs-1 in report order.
    """

    Xu: np.ndarray
    yu: np.ndarray
    ju: np.ndarray
    eu: np.ndarray
    Xj: np.ndarray
    yj: np.ndarray
    jj: np.ndarray
    ej: np.ndarray
    n_jobs: int

    def job_totals(self, coef: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Observed and predicted seconds of every job."""
        observed = np.bincount(self.ju, weights=self.yu, minlength=self.n_jobs)
        predicted = np.bincount(self.ju, weights=self.Xu @ coef, minlength=self.n_jobs)
        observed[self.jj] = self.yj
        predicted[self.jj] = self.Xj @ coef
        return observed, predicted


def choose_terms(
    unit_rows: pl.DataFrame,
    jobs: pl.DataFrame,
    *,
    features: Sequence[str] | str,
    per_unit_cost: bool,
    quadratic: bool,
    use_bytes: bool | str,
) -> list[str]:
    """The cost terms to fit, from the model's parameters of the same names and the measured units."""
    terms = (["unit"] if per_unit_cost else []) + ["events"]
    # Terms beyond unit/events need per-unit feature values for every measured unit.
    if jobs.filter(~pl.col("per_unit")).height and not units_complete(unit_rows, jobs):
        if features not in ("auto", [], ()):
            raise EstimatorError(
                "features were requested but some job-level reports lack per-unit events/features; "
                "pass the dataset's units table to fit(reports, units=...)"
            )
        return terms
    if features == "auto":
        # A feature known for at least 90 % of the measured units; the others take its mean.
        wanted = [
            f for f in numeric_features(unit_rows) if unit_rows[f].null_count() <= 0.1 * unit_rows.height
        ]
    else:
        wanted = list(features)
        for f in wanted:
            if f not in unit_rows.columns or unit_rows[f].null_count() == unit_rows.height:
                raise EstimatorError(f"feature {f!r} is missing for the measured units")
    for f in wanted:
        terms.append(f"events*{f}")
        if quadratic:
            terms.append(f"events*{f}^2")
    has_bytes = "bytes" in unit_rows.columns and unit_rows["bytes"].null_count() == 0
    if use_bytes is True and not has_bytes:
        raise EstimatorError("use_bytes=True but the measured units have no 'bytes'")
    if has_bytes and use_bytes and float(unit_rows["bytes"].cast(pl.Float64).sum()) > 0:
        terms.append("bytes")
    return terms


def units_complete(unit_rows: pl.DataFrame, jobs: pl.DataFrame) -> bool:
    """Whether every unit of the job-level jobs is known with its events (from the units table)."""
    job_level = jobs.filter(~pl.col("per_unit"))["job"]
    rows = unit_rows.filter(pl.col("job").is_in(job_level.implode()))
    n_units = int(jobs.filter(~pl.col("per_unit"))["n_units"].sum())
    return rows.height == n_units and n_units > 0 and rows["events"].null_count() == 0


def cost_rows(
    reports: list[JobReport],
    units: Any,
    *,
    features: Sequence[str] | str,
    per_unit_cost: bool,
    quadratic: bool,
    use_bytes: bool | str,
) -> tuple[Rows, list[str], pl.DataFrame, dict[str, float]]:
    """Regression rows, terms (:func:`choose_terms`), the table of the jobs used (in job order) and the
    fill value of every term column (its mean over the measured units, for missing values).

    ``units`` (a Dataset or units table, or None) completes the reports' units by (run, lumi).
    """
    jobs, unit_rows = collect(reports, units)
    unit_jobs = jobs.filter(pl.col("per_unit") & (pl.col("n_units") > 0))
    job_jobs = jobs.filter(
        ~pl.col("per_unit")
        & pl.col("ok")
        & pl.col("seconds").is_not_null()
        & pl.col("events").is_not_null()
        & (pl.col("n_units") > 0)
    )
    used = pl.concat([unit_jobs, job_jobs]).sort("job")
    if used.height == 0:
        raise EstimatorError(
            f"none of the {len(reports)} reports measured processing time and events for processed units"
        )
    unit_rows = unit_rows.filter(pl.col("job").is_in(used["job"].implode()))
    terms = choose_terms(
        unit_rows,
        used,
        features=features,
        per_unit_cost=per_unit_cost,
        quadratic=quadratic,
        use_bytes=use_bytes,
    )
    fill = {
        c: float(unit_rows[c].cast(pl.Float64).mean() or 0.0)
        for t in terms
        for c in term_columns(t)
        if c in unit_rows.columns
    }
    remap = np.full(len(reports), -1, dtype=np.int64)
    remap[used["job"].to_numpy()] = np.arange(used.height)
    n_jobs = used.height

    in_unit_mode = unit_rows["job"].is_in(unit_jobs["job"].implode())
    urows = unit_rows.filter(in_unit_mode)
    jrows = unit_rows.filter(~in_unit_mode)
    jj = remap[job_jobs["job"].to_numpy()]
    if not job_jobs.height:
        Xj = np.zeros((0, len(terms)))
    elif jrows.height == int(job_jobs["n_units"].sum()) and not jrows["events"].null_count():
        # Job-level rows: the sums of their units' terms.
        summed = np.zeros((n_jobs, len(terms)))
        np.add.at(summed, remap[jrows["job"].to_numpy()], design(jrows, terms, fill))
        Xj = summed[jj]
    else:  # only the job's unit count and events are known (terms are then unit and events)
        known = {"unit": job_jobs["n_units"].to_numpy(), "events": job_jobs["events"].to_numpy()}
        Xj = np.column_stack([known[t] for t in terms]).astype(np.float64)
    rows = Rows(
        Xu=design(urows, terms, fill),
        yu=urows["seconds"].to_numpy().astype(np.float64),
        ju=remap[urows["job"].to_numpy()],
        eu=urows["events"].cast(pl.Float64).to_numpy(),
        Xj=Xj,
        yj=job_jobs["seconds"].to_numpy().astype(np.float64),
        jj=jj,
        ej=job_jobs["events"].cast(pl.Float64).to_numpy(),
        n_jobs=n_jobs,
    )
    if rows.yu.sum() + rows.yj.sum() <= 0:
        raise EstimatorError("the reports measured zero processing seconds in total")
    return rows, terms, used, fill
