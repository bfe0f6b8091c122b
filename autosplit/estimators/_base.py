"""Shared machinery of the estimators: reading reports into tables, design matrices, robust fits, quantiles.

Private to :mod:`autosplit.estimators`; the public estimators document what they compute.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import polars as pl

from autosplit.errors import AutosplitError
from autosplit.jobreport import JobReport

#: Columns of a units table that are bookkeeping, never cost features.
NON_FEATURES = frozenset(
    {"run", "lumi", "events", "bytes", "events_exact", "file_id", "file_ids", "seconds", "job", "site"}
)


class EstimatorError(AutosplitError, ValueError):
    """An estimator cannot be fitted or used (no usable reports, not fitted, missing unit features)."""


def check_fitted(estimator: Any, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise EstimatorError(f"{type(estimator).__name__} is not fitted yet; call fit(reports) first")


def units_frame(units: Any) -> pl.DataFrame:
    """A units table from a :class:`~autosplit.datasets.Dataset` or a polars DataFrame."""
    table = getattr(units, "units", units)
    if not isinstance(table, pl.DataFrame):
        raise EstimatorError(f"expected a Dataset or a polars units table, got {type(units).__name__}")
    if "events" not in table.columns:
        raise EstimatorError("units table has no 'events' column")
    return table


def as_reports(reports: Iterable[JobReport]) -> list[JobReport]:
    out = list(reports)
    for i, report in enumerate(out):
        if not isinstance(report, JobReport):
            raise EstimatorError(f"reports[{i}] is a {type(report).__name__}, not a JobReport")
    return out


# ---------------------------------------------------------------------- reports -> tables
def collect(reports: Sequence[JobReport], units: Any = None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Tables of what the reports measured.

    Returns ``(jobs, unit_rows)``:

    * ``jobs``: one row per report: ``job`` (position), ``job_id``, ``site`` ("" when unknown), ``ok``,
      ``per_unit`` (every processed unit has seconds and events), ``n_units``, ``events`` (Int64, null when
      unknown), ``seconds`` (processing seconds, null when unknown), ``wall``, ``init``, ``overhead`` (wall
      minus processing seconds), ``peak_rss``, ``output_bytes``.
    * ``unit_rows``: every processed unit: ``job``, ``run``, ``lumi``, ``events``, ``seconds`` and the
      feature columns, completed from ``units`` (a Dataset or units table) by (run, lumi) when given.
    """
    rows: list[dict[str, Any]] = []
    unit_dicts: list[dict[str, Any]] = []
    for j, report in enumerate(reports):
        processing = report.processing_seconds
        overhead = None
        if report.wall_seconds is not None and processing is not None:
            overhead = max(report.wall_seconds - processing, 0.0)
        elif report.init_seconds is not None:
            overhead = report.init_seconds
        rows.append(
            {
                "job": j,
                "job_id": report.job_id,
                "site": report.site or "",
                "ok": report.ok,
                "n_units": len(report.units),
                "events": report.total_events,
                "seconds": processing,
                "wall": report.wall_seconds,
                "init": report.init_seconds,
                "overhead": overhead,
                "peak_rss": report.peak_rss_bytes,
                "output_bytes": report.output_bytes,
                "has_unit_seconds": report.has_unit_seconds,
            }
        )
        for unit in report.units:
            unit_dicts.append({"job": j, **unit})
    jobs = pl.DataFrame(
        rows,
        schema={
            "job": pl.Int64,
            "job_id": pl.String,
            "site": pl.String,
            "ok": pl.Boolean,
            "n_units": pl.Int64,
            "events": pl.Int64,
            "seconds": pl.Float64,
            "wall": pl.Float64,
            "init": pl.Float64,
            "overhead": pl.Float64,
            "peak_rss": pl.Float64,
            "output_bytes": pl.Float64,
            "has_unit_seconds": pl.Boolean,
        },
    )
    if unit_dicts:
        unit_rows = pl.from_dicts(unit_dicts, infer_schema_length=None, strict=False)
    else:
        unit_rows = pl.DataFrame(schema={"job": pl.Int64, "run": pl.Int64, "lumi": pl.Int64})
    unit_rows = unit_rows.with_columns(
        pl.col("job").cast(pl.Int64),
        pl.col("run").cast(pl.Int64),
        pl.col("lumi").cast(pl.Int64),
        *[
            (pl.col(c) if c in unit_rows.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in (("events", pl.Int64), ("seconds", pl.Float64))
        ],
    )
    if units is not None:
        table = units_frame(units)
        extra = [c for c in table.columns if c not in ("run", "lumi", "file_id", "file_ids", "events_exact")]
        lookup = table.select("run", "lumi", *extra).rename({c: f"__ds_{c}" for c in extra})
        unit_rows = unit_rows.join(lookup, on=["run", "lumi"], how="left")
        fills = []
        for column in extra:
            src = f"__ds_{column}"
            if column in unit_rows.columns:
                fills.append(
                    pl.coalesce(pl.col(column), pl.col(src).cast(unit_rows[column].dtype)).alias(column)
                )
            else:
                fills.append(pl.col(src).alias(column))
        unit_rows = unit_rows.with_columns(fills).drop([f"__ds_{c}" for c in extra])
    # Per-unit events may now be known from the dataset: recompute the per-unit flag and job events.
    per_job = unit_rows.group_by("job").agg(
        pl.col("events").is_not_null().all().alias("_all_events"),
        pl.col("events").sum().alias("_events_sum"),
    )
    jobs = (
        jobs.join(per_job, on="job", how="left")
        .with_columns(
            (pl.col("has_unit_seconds") & pl.col("_all_events").fill_null(False)).alias("per_unit"),
            pl.when(pl.col("events").is_null() & pl.col("_all_events").fill_null(False))
            .then(pl.col("_events_sum"))
            .otherwise(pl.col("events"))
            .alias("events"),
        )
        .drop("_all_events", "_events_sum")
        .sort("job")
    )
    return jobs, unit_rows


def numeric_features(table: pl.DataFrame) -> list[str]:
    """Extra floating-point columns of a units table, candidates for per-event cost features (pileup, ...).

    Integer columns are left out (they are usually bookkeeping: ids, row numbers); name them explicitly
    to use them.
    """
    return [
        c
        for c, dtype in table.schema.items()
        if c not in NON_FEATURES and not c.startswith("_") and dtype.is_float()
    ]


# ---------------------------------------------------------------------- design matrices
def term_columns(term: str) -> tuple[str, ...]:
    """Unit-table columns a design term multiplies together.

    Terms: ``unit`` (1 per unit) -> (); ``events``; ``bytes``; ``events*f`` -> (events, f);
    ``events*f^2`` -> (events, f, f).
    """
    if term == "unit":
        return ()
    if term in ("events", "bytes"):
        return (term,)
    if term.startswith("events*"):
        feature = term[len("events*") :]
        if feature.endswith("^2"):
            return ("events", feature[:-2], feature[:-2])
        return ("events", feature)
    raise EstimatorError(f"unknown cost term {term!r}")


def design(table: pl.DataFrame, terms: Sequence[str], fill: dict[str, float] | None = None) -> np.ndarray:
    """Design matrix (rows x terms, float64) of per-unit cost terms; nulls in features take ``fill``."""
    fill = fill or {}
    out = np.empty((table.height, len(terms)), dtype=np.float64)
    cache: dict[str, np.ndarray] = {}

    def column(name: str) -> np.ndarray:
        if name not in cache:
            if name not in table.columns:
                raise EstimatorError(
                    f"units table has no column {name!r}, which the cost model was fitted with; "
                    "pass the same unit features (e.g. the dataset's units table)"
                )
            series = table[name].cast(pl.Float64)
            if series.null_count():
                if name not in fill:
                    raise EstimatorError(f"units table column {name!r} has missing values")
                series = series.fill_null(fill[name])
            cache[name] = series.to_numpy()
        return cache[name]

    for k, term in enumerate(terms):
        needed = term_columns(term)
        out[:, k] = 1.0
        for name in needed:
            out[:, k] *= column(name)
    return out


# ---------------------------------------------------------------------- fitting helpers
def _weighted_nnls(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """argmin over b >= 0 of sum(w * (y - X b)**2), solved on the p x p Cholesky-reduced system.

    ``|sqrt(w)(y - Xb)|^2 = |R b - c|^2 + const`` with ``R^T R = X^T W X`` and ``R^T c = X^T W y``, so the
    non-negative solve costs nothing however many rows there are.
    """
    from scipy.linalg import cho_factor, solve_triangular
    from scipy.optimize import nnls

    gram = (X * w[:, None]).T @ X
    rhs = (X * w[:, None]).T @ y
    gram[np.diag_indices_from(gram)] += 1e-12 * max(float(np.trace(gram)), 1e-300)
    upper, _ = cho_factor(gram, lower=False)
    upper = np.triu(upper)
    c = solve_triangular(upper, rhs, trans="T", lower=False)
    coef, _ = nnls(upper, c)
    return coef


def robust_nnls(X: np.ndarray, y: np.ndarray, *, huber_k: float = 1.345, n_iter: int = 4) -> np.ndarray:
    """Non-negative coefficients ``b`` with ``y ~ X @ b`` under multiplicative (relative) errors.

    Iteratively re-weighted non-negative least squares: weights ``1 / yhat**2`` make every row count by
    its *relative* error, and Huber weights (``huber_k`` robust standard deviations of the relative
    residuals, centred on their median) limit the pull of heavy-tailed rows on the *shape* of the fit.
    The caller re-levels the result with a ratio estimator, so the robust down-weighting never biases
    the mean.
    """
    p = X.shape[1]
    scale = np.abs(X).mean(axis=0)
    scale[scale == 0] = 1.0
    Xs = X / scale
    positive = y[y > 0]
    typical = float(np.median(positive)) if positive.size else 1.0
    weights = 1.0 / (np.maximum(y, 0.0) + typical) ** 2
    coef = np.zeros(p)
    for _ in range(max(n_iter, 1)):
        coef = _weighted_nnls(Xs, y, weights)
        yhat = Xs @ coef
        if not np.any(yhat > 0):
            break
        floor = 0.01 * float(np.median(yhat[yhat > 0]))
        yhat = np.maximum(yhat, floor)
        rel = (y - yhat) / yhat
        centred = np.abs(rel - np.median(rel))
        spread = 1.4826 * float(np.median(centred))
        if not spread > 0:
            spread = float(np.std(rel)) or 1.0
        huber = np.minimum(1.0, huber_k * spread / np.maximum(centred, 1e-300))
        weights = huber / yhat**2
    return coef / scale


def finite_quantile(sorted_scores: np.ndarray, q: float) -> float:
    """Split-conformal quantile: the ``ceil((n + 1) q)``-th smallest score (the largest when beyond n)."""
    n = sorted_scores.size
    if n == 0:
        raise EstimatorError("no calibration scores")
    if not 0.0 < q < 1.0:
        raise EstimatorError(f"quantile level must be in (0, 1), got {q}")
    rank = min(max(math.ceil((n + 1) * q), 1), n)
    return float(sorted_scores[rank - 1])


def t_quantile(confidence: float, dof: int) -> float:
    """Two-sided Student-t critical value for ``confidence`` (normal when ``dof`` is large)."""
    from scipy import stats

    if not 0.0 < confidence < 1.0:
        raise EstimatorError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.t.ppf(0.5 + confidence / 2.0, max(dof, 1)))


def normal_quantile(q: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(q)


def lognormal_quantile(mean: np.ndarray, cv: float, q: float) -> np.ndarray:
    """``q``-quantile of lognormal variables with the given means and coefficient of variation."""
    if cv <= 0:
        return np.asarray(mean, dtype=np.float64).copy()
    sigma2 = math.log1p(cv * cv)
    return np.asarray(mean) * math.exp(-sigma2 / 2.0 + math.sqrt(sigma2) * normal_quantile(q))


def fold_ids(n_groups: int, max_folds: int, seed: int) -> np.ndarray:
    """Assign ``n_groups`` jobs to jackknife folds: one job per fold when few, else ``max_folds`` folds."""
    if n_groups <= max_folds:
        return np.arange(n_groups)
    rng = np.random.default_rng(seed)
    ids = np.arange(n_groups) % max_folds
    rng.shuffle(ids)
    return ids


def jackknife_variance(estimates: np.ndarray) -> np.ndarray:
    """Grouped (delete-a-group) jackknife variance along axis 0 of ``estimates`` (K x ...)."""
    k = estimates.shape[0]
    if k < 2:
        return np.full(estimates.shape[1:], np.inf)
    return (k - 1) / k * ((estimates - estimates.mean(axis=0)) ** 2).sum(axis=0)


def overhead_from(jobs: pl.DataFrame) -> float:
    """Mean per-job overhead (seconds): wall minus processing time, else init time, else 0."""
    values = jobs["overhead"].drop_nulls()
    return float(values.mean()) if values.len() else 0.0
