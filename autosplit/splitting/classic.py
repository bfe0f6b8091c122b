"""WMCore-compatible classic splitting algorithms, vectorized.

Semantics follow WMCore's ``JobSplitting`` modules as CRAB3 uses them (see reference notes, crab3.md §2),
with parameter names in snake_case:

* ``FileBased(files_per_job)``: every ``files_per_job`` files (per location set, in LFN order) make a job.
* ``LumiBased(lumis_per_job, split_on_run=False, halt_on_file_boundaries=False)``: exactly
  ``lumis_per_job`` lumis per job (the last of a segment may hold fewer).
* ``EventAwareLumiBased(events_per_job, split_on_run=False, halt_on_file_boundaries=False)``: whole lumis
  are added while the job stays within ``events_per_job`` events; a lumi larger than that is a job alone.
  Exact per-lumi counts are used when known; estimated counts are the file average (WMCore's rule).
* ``EventBased(events_per_job)``: event ranges within files, for data without lumis; lumis are ignored.

Invariants (property-tested): every unit is in exactly one job; a lumi is never split across jobs (except
EventBased); a job's files are exactly the files holding its units, so a lumi spanning files brings all of
them; jobs never mix location sets; the output depends only on the input.

Differences from WMCore, on purpose: units are packed in (location set, LFN, run, lumi) order rather than by
each file's lowest run; a lumi spanning files is one unit with all its files (LumiChecker) in every
algorithm; FileBased skips files that hold no selected unit.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import polars as pl

from autosplit.datasets import Dataset
from autosplit.errors import SplittingError
from autosplit.splitting.jobplan import JobPlan
from autosplit.splitting.order import PlanningOrder, planning_order
from autosplit.splitting.packing import additive_ends, cumulative, job_starts, segment_ends, starts_to_jobs


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value <= 0:
        raise SplittingError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _plan_from_starts(
    dataset: Dataset, order: PlanningOrder, starts: np.ndarray, algorithm: str, params: dict[str, Any]
) -> JobPlan:
    assignment = order.scatter(starts_to_jobs(starts, order.n), dataset.n_units)
    return JobPlan(dataset, assignment, algorithm=algorithm, params=params)


def file_based(dataset: Dataset, files_per_job: int) -> JobPlan:
    """Group ``files_per_job`` files per job, per location set; every unit goes with its first file."""
    files_per_job = _positive_int("files_per_job", files_per_job)
    order = planning_order(dataset)
    ends = segment_ends(order.segment_start)
    if order.n:
        file_count = cumulative(order.file_start.astype(np.int64))
        np.minimum(ends, additive_ends(file_count, files_per_job), out=ends)
    starts = job_starts(ends)
    return _plan_from_starts(dataset, order, starts, "FileBased", {"files_per_job": files_per_job})


def lumi_based(
    dataset: Dataset, lumis_per_job: int, split_on_run: bool = False, halt_on_file_boundaries: bool = False
) -> JobPlan:
    """Exactly ``lumis_per_job`` lumis per job (fewer at the end of a location set, run or file segment)."""
    lumis_per_job = _positive_int("lumis_per_job", lumis_per_job)
    order = planning_order(
        dataset, split_on_run=split_on_run, halt_on_file_boundaries=halt_on_file_boundaries
    )
    ends = np.minimum(segment_ends(order.segment_start), np.arange(order.n) + lumis_per_job)
    starts = job_starts(ends)
    params = {
        "lumis_per_job": lumis_per_job,
        "split_on_run": split_on_run,
        "halt_on_file_boundaries": halt_on_file_boundaries,
    }
    return _plan_from_starts(dataset, order, starts, "LumiBased", params)


def event_aware_lumi_based(
    dataset: Dataset, events_per_job: int, split_on_run: bool = False, halt_on_file_boundaries: bool = False
) -> JobPlan:
    """Whole lumis per job while the job's events stay <= ``events_per_job`` (at least one lumi per job)."""
    events_per_job = _positive_int("events_per_job", events_per_job)
    order = planning_order(
        dataset, split_on_run=split_on_run, halt_on_file_boundaries=halt_on_file_boundaries
    )
    ends = segment_ends(order.segment_start)
    if order.n:
        events = order.take(dataset.units["events"].to_numpy())
        np.minimum(ends, additive_ends(cumulative(events), events_per_job), out=ends)
    starts = job_starts(ends)
    params = {
        "events_per_job": events_per_job,
        "split_on_run": split_on_run,
        "halt_on_file_boundaries": halt_on_file_boundaries,
    }
    return _plan_from_starts(dataset, order, starts, "EventAwareLumiBased", params)


def event_based(dataset: Dataset, events_per_job: int) -> JobPlan:
    """Cut every file into ranges of ``events_per_job`` events (a 0-event file gets one job)."""
    events_per_job = _positive_int("events_per_job", events_per_job)
    files = dataset.files.sort("file_id")
    file_ids = files["file_id"].to_numpy().astype(np.int64)
    file_events = files["events"].to_numpy().astype(np.int64)
    n_ranges = np.maximum(-(-file_events // events_per_job), 1)
    job_file = np.repeat(file_ids, n_ranges)
    job_events = np.repeat(file_events, n_ranges)
    first_job_of_file = np.concatenate(([0], np.cumsum(n_ranges)[:-1]))
    index_in_file = np.arange(job_file.size) - np.repeat(first_job_of_file, n_ranges)
    first_event = index_in_file * events_per_job
    n_events = np.clip(job_events - first_event, 0, events_per_job)
    ranges = pl.DataFrame(
        {
            "job_id": np.arange(job_file.size, dtype=np.int64),
            "file_id": job_file.astype(np.uint32),
            "first_event": first_event.astype(np.int64),
            "n_events": n_events.astype(np.int64),
        }
    )
    assignment = np.full(dataset.n_units, -1, dtype=np.int64)
    return JobPlan(
        dataset,
        assignment,
        algorithm="EventBased",
        params={"events_per_job": events_per_job},
        event_ranges=ranges,
    )


ALGORITHMS = {
    "FileBased": file_based,
    "LumiBased": lumi_based,
    "EventAwareLumiBased": event_aware_lumi_based,
    "EventBased": event_based,
}


def split(dataset: Dataset, algorithm: str, **params: Any) -> JobPlan:
    """Split ``dataset`` with a classic WMCore algorithm (``FileBased``, ``LumiBased``,
    ``EventAwareLumiBased``, ``EventBased``) and its snake_case parameters."""
    if not isinstance(dataset, Dataset):
        raise SplittingError(f"split() needs a Dataset, got {type(dataset).__name__}")
    func = ALGORITHMS.get(algorithm)
    if func is None:
        raise SplittingError(f"unknown algorithm {algorithm!r}; choose one of {', '.join(ALGORITHMS)}")
    signature = list(inspect.signature(func).parameters.items())[1:]
    accepted = [name for name, _ in signature]
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        raise SplittingError(
            f"{algorithm} does not take {', '.join(unknown)}; it takes {', '.join(accepted)}"
        )
    required = [name for name, p in signature if p.default is inspect.Parameter.empty and name not in params]
    if required:
        raise SplittingError(f"{algorithm} needs {', '.join(required)}")
    return func(dataset, **params)
