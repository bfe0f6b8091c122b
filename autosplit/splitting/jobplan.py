"""JobPlan: the result of splitting — which units go to which job.

A plan holds the dataset it was made from and one integer per unit: the job that processes it (``-1`` for
units left out, e.g. oversized units that no job could finish). Jobs are numbered 0..n_jobs-1.

JSON format ``autosplit-jobplan/1`` (written by :meth:`JobPlan.to_json`)::

    {
      "format": "autosplit-jobplan/1",
      "algorithm": "EventAwareLumiBased", "params": {...},
      "dataset": {"name": str, "files": {"file_id": [...], "lfn": [...], "events": [...], "size": [...],
                                         "block": [...], "locations": [[...], ...]}},
      "units": {"run": [...], "lumi": [...], "events": [...], "bytes": [...], "events_exact": [...],
                "file_id": [...], "file_ids": [[...], ...], <extra feature columns>, "job": [...]},
      "jobs": {"job_id": [...], "n_units": [...], "events": [...], "bytes": [...], "n_files": [...],
               "predicted_seconds": [...], ...},
      "event_ranges": null | {"job_id": [...], "file_id": [...], "first_event": [...], "n_events": [...]},
      "summary": {...}
    }

Columns are stored as parallel arrays (compact for millions of units). ``job`` is -1 for units outside
every job. ``event_ranges`` is set only by EventBased splitting, whose jobs are event ranges of files.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import polars as pl

from autosplit._arrays import sorted_unique
from autosplit._io import atomic_write_text, json_default, load_json_source
from autosplit._quantile import payload_quantile
from autosplit.datasets import Dataset, LumiMask
from autosplit.datasets.dataset import FILE_SCHEMA, UNIT_SCHEMA
from autosplit.errors import SplittingError

PLAN_FORMAT = "autosplit-jobplan/1"


class JobPlan:
    """Jobs made from a dataset: the unit -> job assignment, a jobs table, and per-job accessors.

    Attributes
    ----------
    dataset:
        The dataset that was split (its ``units`` rows are what ``assignment`` indexes).
    assignment:
        int64 array, one entry per unit row: the job id, or -1 when the unit is in no job.
    algorithm, params:
        How the plan was made.
    jobs:
        polars table, one row per job: ``job_id``, ``n_units``, ``events``, ``bytes`` (input),
        ``n_files``; plans made with a cost model add ``predicted_seconds`` (mean runtime including the
        per-job overhead), ``predicted_std`` and ``predicted_quantile`` (the planner's upper quantile).
    """

    def __init__(
        self,
        dataset: Dataset,
        assignment: np.ndarray,
        *,
        algorithm: str,
        params: dict[str, Any] | None = None,
        prediction: dict[str, Any] | None = None,
        event_ranges: pl.DataFrame | None = None,
        jobs: pl.DataFrame | None = None,
    ) -> None:
        self.dataset = dataset
        self.assignment = np.asarray(assignment, dtype=np.int64)
        if self.assignment.shape != (dataset.n_units,):
            raise SplittingError(f"assignment has {self.assignment.size} entries for {dataset.n_units} units")
        self.algorithm = algorithm
        self.params = dict(params or {})
        self.event_ranges = event_ranges
        self._prediction = prediction
        assigned = self.assignment[self.assignment >= 0]
        if event_ranges is not None:
            self.n_jobs = event_ranges.height
        else:
            self.n_jobs = int(assigned.max()) + 1 if assigned.size else 0
        # Rows of each job, job after job; None stands for 0..n-1 when the units already are in job order.
        self._rows_by_job: np.ndarray | None = None
        monotone = self.assignment.size < 2 or bool((self.assignment[1:] >= self.assignment[:-1]).all())
        if not (monotone and (self.assignment.size == 0 or self.assignment[0] >= 0)):
            order = np.argsort(self.assignment, kind="stable")
            self._rows_by_job = order[self.assignment[order] >= 0]
        counts = np.bincount(assigned, minlength=self.n_jobs) if self.n_jobs else np.zeros(0, np.int64)
        self._offsets = np.concatenate(([0], np.cumsum(counts)))
        self.jobs = jobs if jobs is not None else self._jobs_table(counts)

    # ------------------------------------------------------------------ tables
    def _jobs_table(self, n_units: np.ndarray) -> pl.DataFrame:
        if self.event_ranges is not None:
            return self._event_jobs_table()
        units = self.dataset.units
        n_jobs = self.n_jobs
        table = pl.DataFrame(
            {
                "job_id": np.arange(n_jobs, dtype=np.int64),
                "n_units": n_units.astype(np.int64),
                "events": self._per_job_sum(units["events"].to_numpy()),
                "bytes": self._per_job_sum(units["bytes"].to_numpy()),
                "n_files": self._files_per_job(),
            }
        )
        prediction = self._prediction
        if prediction is not None:
            job_mean = self._per_job_sum(prediction["unit_mean"])
            job_var = (
                self._per_job_sum(prediction["unit_std"] ** 2) + (prediction["shared_cv"] * job_mean) ** 2
            )
            total = prediction["overhead"] + job_mean
            table = table.with_columns(
                pl.Series("predicted_seconds", total),
                pl.Series("predicted_std", np.sqrt(job_var)),
                pl.Series(
                    "predicted_quantile",
                    prediction["overhead"] + payload_quantile(job_mean, job_var, prediction["z"]),
                ),
            )
        return table

    def _per_job_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of a per-unit array over each job's units (dtype kept)."""
        if self.n_jobs == 0:
            return np.zeros(0, dtype=values.dtype)
        if self._rows_by_job is not None:
            values = values[self._rows_by_job]
        return np.add.reduceat(values, self._offsets[:-1])

    def _event_jobs_table(self) -> pl.DataFrame:
        ranges = self.event_ranges
        files = self.dataset.files.select("file_id", pl.col("events").alias("events_file"), "size")
        joined = ranges.join(files, on="file_id", how="left")
        share = (pl.col("n_events") / pl.col("events_file").clip(lower_bound=1)).fill_nan(1.0)
        return joined.select(
            "job_id",
            pl.lit(0, dtype=pl.Int64).alias("n_units"),
            pl.col("n_events").alias("events"),
            (pl.col("size") * share).round().cast(pl.Int64).alias("bytes"),
            pl.lit(1, dtype=pl.Int64).alias("n_files"),
        )

    def _files_per_job(self) -> np.ndarray:
        """Distinct files per job, counting every file of a lumi that spans files."""
        units = self.dataset.units
        if self.n_jobs == 0:
            return np.zeros(0, np.int64)
        if not self.dataset.has_multifile_units and self.dataset.is_file_sorted():
            # A job's rows ascend, so its files ascend too: count the file changes strictly inside each job.
            files = units["file_id"].to_numpy()
            if self._rows_by_job is not None:
                files = files[self._rows_by_job]
            changes = np.flatnonzero(files[1:] != files[:-1]) + 1
            inside = np.searchsorted(changes, self._offsets[1:], side="left")
            inside -= np.searchsorted(changes, self._offsets[:-1], side="right")
            return inside + 1
        lengths = self.dataset.unit_file_counts()
        files = units["file_ids"].explode().to_numpy().astype(np.int64)
        jobs = np.repeat(self.assignment, lengths)
        keep = jobs >= 0
        width = int(files.max()) + 1 if files.size else 1
        pairs = np.sort(jobs[keep] * width + files[keep])
        distinct = np.ones(pairs.size, dtype=bool)
        distinct[1:] = pairs[1:] != pairs[:-1]
        return np.bincount(pairs[distinct] // width, minlength=self.n_jobs).astype(np.int64)

    # ------------------------------------------------------------------ per-job access
    def _check_job(self, job: int) -> int:
        job = int(job)
        if not 0 <= job < self.n_jobs:
            raise SplittingError(f"job {job} does not exist (the plan has jobs 0..{self.n_jobs - 1})")
        return job

    def job_rows(self, job: int) -> np.ndarray:
        """Row positions (in ``dataset.units``) of the units of ``job``."""
        job = self._check_job(job)
        if self._rows_by_job is None:
            return np.arange(self._offsets[job], self._offsets[job + 1])
        return self._rows_by_job[self._offsets[job] : self._offsets[job + 1]]

    def job_units(self, job: int) -> pl.DataFrame:
        """The units table rows of ``job``."""
        return self.dataset.units[self.job_rows(job)]

    def job_mask(self, job: int) -> LumiMask:
        """The lumis ``job`` must process, as a LumiMask (empty for EventBased jobs)."""
        units = self.job_units(job)
        return LumiMask.from_pairs(units["run"].to_numpy(), units["lumi"].to_numpy())

    def job_files(self, job: int) -> list[str]:
        """Sorted LFNs the job reads: every file holding one of its units (or its event range's file)."""
        job = self._check_job(job)
        if self.event_ranges is not None:
            ids = self.event_ranges.filter(pl.col("job_id") == job)["file_id"].to_numpy()
        else:
            ids = sorted_unique(self.job_units(job)["file_ids"].explode().to_numpy())
        files = self.dataset.files
        return sorted(files.filter(pl.col("file_id").is_in(ids.tolist()))["lfn"].to_list())

    @property
    def unassigned(self) -> pl.DataFrame:
        """Units in no job (``assignment == -1``)."""
        return self.dataset.units.filter(pl.Series(self.assignment < 0))

    @property
    def oversized(self) -> pl.DataFrame:
        """Units that alone cannot meet the planner's limits; they are in no job."""
        return self.unassigned

    # ------------------------------------------------------------------ summaries
    def summary(self) -> dict[str, Any]:
        """Counts and min/avg/max per job, like CRAB's splitting-summary.json."""
        jobs = self.jobs
        out: dict[str, Any] = {
            "algorithm": self.algorithm,
            "total_jobs": self.n_jobs,
            "total_lumis": int((self.assignment >= 0).sum()),
            "total_events": int(jobs["events"].sum()) if jobs.height else 0,
            "unassigned_lumis": int((self.assignment < 0).sum()),
        }
        for label, column in (("lumis", "n_units"), ("events", "events"), ("files", "n_files")):
            values = jobs[column].to_numpy() if jobs.height else np.zeros(1)
            out[f"min_{label}"] = int(values.min())
            out[f"avg_{label}"] = float(values.mean())
            out[f"max_{label}"] = int(values.max())
        if "predicted_seconds" in jobs.columns and jobs.height:
            for label, column in (
                ("seconds", "predicted_seconds"),
                ("quantile_seconds", "predicted_quantile"),
            ):
                values = jobs[column].to_numpy()
                out[f"min_{label}"] = float(values.min())
                out[f"avg_{label}"] = float(values.mean())
                out[f"max_{label}"] = float(values.max())
        return out

    def __repr__(self) -> str:
        return (
            f"JobPlan({self.algorithm}, jobs={self.n_jobs}, units={int((self.assignment >= 0).sum())}, "
            f"unassigned={int((self.assignment < 0).sum())})"
        )

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The plan as plain JSON-ready data (see the module docstring for the format)."""
        units = self.dataset.units.with_columns(pl.Series("job", self.assignment))
        return {
            "format": PLAN_FORMAT,
            "algorithm": self.algorithm,
            "params": self.params,
            "dataset": {"name": self.dataset.name, "files": self.dataset.files.to_dict(as_series=False)},
            "units": units.to_dict(as_series=False),
            "jobs": self.jobs.to_dict(as_series=False),
            "event_ranges": None if self.event_ranges is None else self.event_ranges.to_dict(as_series=False),
            "summary": self.summary(),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """JSON text of the plan; also written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), default=json_default)
        if path is not None:
            atomic_write_text(path, text)
        return text

    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> JobPlan:
        """Read a plan written by :meth:`to_json` (a path, or the JSON text itself)."""
        data, origin = load_json_source(source, SplittingError, "plan")
        if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise SplittingError(f"{origin}: not an {PLAN_FORMAT} plan (format: {found!r})")
        try:
            files = pl.DataFrame(data["dataset"]["files"], schema=FILE_SCHEMA)
            units = pl.DataFrame(data["units"])
            if units.height == 0:
                units = pl.DataFrame(schema={**UNIT_SCHEMA, "job": pl.Int64})
            assignment = units["job"].to_numpy()
            dataset = Dataset(units.drop("job"), files, name=data["dataset"].get("name", ""))
            ranges = data.get("event_ranges")
            jobs = pl.DataFrame(data["jobs"]) if data["jobs"]["job_id"] else None
            return cls(
                dataset,
                assignment,
                algorithm=data["algorithm"],
                params=data.get("params", {}),
                event_ranges=None if ranges is None else pl.DataFrame(ranges),
                jobs=jobs,
            )
        except (KeyError, TypeError, pl.exceptions.PolarsError) as exc:
            raise SplittingError(f"{origin}: malformed plan ({type(exc).__name__}: {exc})") from None
