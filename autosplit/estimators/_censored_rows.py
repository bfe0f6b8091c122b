"""The unit cost model's right-censored measurements as design rows, with the ``censored`` table checked.

Private to :mod:`autosplit.estimators`; :meth:`UnitCostModel.fit <autosplit.estimators.UnitCostModel.fit>`
documents the two sources: every report's ``in_progress`` unit (a *single*: it took at least so many
seconds) and the ``censored`` table of jobs still running (a *group*: its units took at least so many
seconds in total). Both are looked up by (run, lumi) in the units table for their events and features.
What the model makes of them is in :mod:`autosplit.estimators._censored_fit`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from autosplit.estimators._base import EstimatorError, design, units_frame
from autosplit.jobreport import JobReport


@dataclass
class Censored:
    """Censored measurements as design rows; see :func:`censored_rows`.

    Singles (the units in progress of reports): terms ``Xs``, seconds spent ``cs``, ``site_s``, ``job_s``
    (the report's position among the used jobs, -1 when it measured nothing else) and ``ext_s`` (its
    *extended* job: used jobs are 0 .. n_jobs-1, then one job per other report with a unit in progress,
    then one per group). Groups: summed terms ``Xg``, per-unit terms ``Xg_rows`` with ``row_group``,
    bound ``cg`` (seconds), ``site_g``, ``units_g`` (units per group), ``ext_g``.
    """

    Xs: np.ndarray
    cs: np.ndarray
    site_s: list[str]
    job_s: np.ndarray
    ext_s: np.ndarray
    Xg: np.ndarray
    Xg_rows: np.ndarray
    row_group: np.ndarray
    cg: np.ndarray
    site_g: list[str]
    units_g: np.ndarray
    ext_g: np.ndarray
    n_extra: int

    @property
    def empty(self) -> bool:
        return not (self.cs.size or self.cg.size)


def censored_rows(
    reports: list[JobReport],
    units: Any,
    censored: Any,
    used: pl.DataFrame,
    terms: list[str],
    fill: dict[str, float],
) -> Censored:
    """The reports' units in progress and the ``censored`` groups as design rows.

    ``used`` is the table of the jobs with exact measurements (in job order), ``terms`` and ``fill`` the
    model's terms and feature fill values. Warns (for the caller's caller) when units in progress cannot be
    looked up; raises :class:`EstimatorError` for groups without the units table or with unknown units.
    """
    n_terms = len(terms)
    remap = np.full(len(reports), -1, dtype=np.int64)
    remap[used["job"].to_numpy()] = np.arange(used.height)
    table = units_frame(units) if units is not None else None
    keys = (
        table.select(pl.col("run").cast(pl.Int64), pl.col("lumi").cast(pl.Int64))
        if table is not None
        else None
    )

    # ------------------------------------------------------------ units in progress (singles)
    picks = [(j, r.in_progress, r.site or "") for j, r in enumerate(reports) if r.in_progress is not None]
    Xs, cs, site_s, job_s = np.zeros((0, n_terms)), np.zeros(0), [], np.zeros(0, dtype=np.int64)
    ext_s = np.zeros(0, dtype=np.int64)
    n_extra = 0
    if picks and table is None:
        warnings.warn(
            f"{len(picks)} report(s) name a unit in progress, which is left out of the fit without the "
            "units table (its events and features); pass fit(reports, units=...)",
            stacklevel=3,
        )
    elif picks:
        wanted = pl.DataFrame(
            {
                "run": [u["run"] for _, u, _ in picks],
                "lumi": [u["lumi"] for _, u, _ in picks],
                "__pick": np.arange(len(picks)),
            },
            schema={"run": pl.Int64, "lumi": pl.Int64, "__pick": pl.Int64},
        )
        found = (
            wanted.join(keys.with_row_index("__row"), on=["run", "lumi"], how="inner")
            .unique("__pick", keep="first")
            .sort("__pick")
        )
        if found.height < len(picks):
            warnings.warn(
                f"{len(picks) - found.height} unit(s) in progress are not in the units table and are "
                "left out of the fit",
                stacklevel=3,
            )
        index = found["__pick"].to_numpy()
        Xs = design(table[found["__row"].to_numpy()], terms, fill)
        cs = np.array([float(picks[i][1]["seconds"]) for i in index], dtype=np.float64)
        site_s = [picks[i][2] for i in index]
        job_s = remap[[picks[i][0] for i in index]] if index.size else np.zeros(0, dtype=np.int64)
        # Reports that measured nothing else are jobs of their own for the jackknife.
        ext_s = job_s.copy()
        alone = job_s < 0
        if alone.any():
            reports_alone = np.array([picks[i][0] for i in index])[alone]
            _, ext = np.unique(reports_alone, return_inverse=True)
            ext_s[alone] = used.height + ext
            n_extra = int(ext.max()) + 1

    # ------------------------------------------------------------ groups (jobs still running)
    Xg, Xg_rows = np.zeros((0, n_terms)), np.zeros((0, n_terms))
    row_group, cg, site_g = np.zeros(0, dtype=np.int64), np.zeros(0), []
    units_g, ext_g = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if censored is not None:
        frame = check_censored(censored)
        if frame.height:
            if table is None:
                raise EstimatorError(
                    "censored groups need the units table for their units' events and features; "
                    "pass fit(reports, units=..., censored=...)"
                )
            frame = frame.with_row_index("__order")
            joined = frame.join(keys.with_row_index("__row"), on=["run", "lumi"], how="left").sort("__order")
            missing = joined.filter(pl.col("__row").is_null())
            if missing.height:
                first = missing.row(0, named=True)
                raise EstimatorError(
                    f"censored group {first['group']}: unit run {first['run']} lumi {first['lumi']} is not "
                    f"in the units table ({missing.height} such row(s))"
                )
            ids, row_group = np.unique(joined["group"].to_numpy(), return_inverse=True)
            row_group = row_group.astype(np.int64)
            n_groups = ids.size
            Xg_rows = design(table[joined["__row"].to_numpy()], terms, fill)
            Xg = np.zeros((n_groups, n_terms))
            np.add.at(Xg, row_group, Xg_rows)
            first_row = np.unique(row_group, return_index=True)[1]
            cg = joined["seconds_at_least"].to_numpy()[first_row].astype(np.float64)
            if "site" in joined.columns:
                site_g = [s or "" for s in joined["site"].gather(first_row).to_list()]
            else:
                site_g = [""] * n_groups
            units_g = np.bincount(row_group, minlength=n_groups).astype(np.int64)
            ext_g = used.height + n_extra + np.arange(n_groups, dtype=np.int64)
            n_extra += n_groups
    return Censored(
        Xs=Xs,
        cs=cs,
        site_s=site_s,
        job_s=np.asarray(job_s, dtype=np.int64),
        ext_s=np.asarray(ext_s, dtype=np.int64),
        Xg=Xg,
        Xg_rows=Xg_rows,
        row_group=row_group,
        cg=cg,
        site_g=site_g,
        units_g=units_g,
        ext_g=ext_g,
        n_extra=n_extra,
    )


def check_censored(censored: Any) -> pl.DataFrame:
    """The ``censored`` table with its columns checked and cast (group, run, lumi: Int64;
    seconds_at_least: Float64; site: String when present)."""
    if not isinstance(censored, pl.DataFrame):
        raise EstimatorError(f"censored must be a polars DataFrame, got {type(censored).__name__}")
    missing = [c for c in ("group", "run", "lumi", "seconds_at_least") if c not in censored.columns]
    if missing:
        raise EstimatorError(
            f"censored is missing column(s) {', '.join(missing)}; it needs group, run, lumi, "
            "seconds_at_least (and optionally site)"
        )
    columns = [
        pl.col("group").cast(pl.Int64),
        pl.col("run").cast(pl.Int64),
        pl.col("lumi").cast(pl.Int64),
        pl.col("seconds_at_least").cast(pl.Float64),
    ]
    if "site" in censored.columns:
        columns.append(pl.col("site").cast(pl.String))
    try:
        frame = censored.select(columns)
    except pl.exceptions.PolarsError as exc:
        raise EstimatorError(f"censored: a column has the wrong type ({exc})") from None
    if frame.height == 0:
        return frame
    for name in ("group", "run", "lumi", "seconds_at_least"):
        if frame[name].null_count():
            raise EstimatorError(f"censored: column {name} has missing values")
    bounds = frame["seconds_at_least"].to_numpy()
    bad = ~np.isfinite(bounds) | (bounds < 0)
    if bad.any():
        row = frame.row(int(np.flatnonzero(bad)[0]), named=True)
        raise EstimatorError(
            f"censored group {row['group']}: seconds_at_least must be finite and >= 0, "
            f"got {row['seconds_at_least']!r}"
        )
    varying = (
        frame.group_by("group").agg(pl.col("seconds_at_least").n_unique().alias("n")).filter(pl.col("n") > 1)
    )
    if varying.height:
        raise EstimatorError(
            f"censored group {varying['group'][0]}: seconds_at_least differs between its rows; it is the "
            "group's bound on the total seconds of its units, one value per group"
        )
    if frame.select(pl.struct("group", "run", "lumi").is_duplicated().any()).item():
        raise EstimatorError("censored: a unit is listed twice in the same group")
    return frame
