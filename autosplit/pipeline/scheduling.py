"""The pipeline's scheduler: one :class:`autosplit.Scheduler` per task, shared by all DAG scripts.

Every PRE script that binds work to a chain node and every POST script that accounts for a job does so in
a *session*: it takes the task's scheduler lock, opens the ledger, loads the scheduler's saved state, makes
its call, records the scheduler's decisions in the ledger (one transaction, which advances the ledger's
version), and saves the new state stamped with that version.

The ledger is the durable record; the saved state is a cache of it. A state whose version is not the
ledger's (a script killed between the two writes, a lost or corrupt file) is rebuilt from the ledger
(:func:`autosplit.scheduler.restore.restore_scheduler`): units, jobs, usable reports, slot times.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autosplit.jobreport import JobReport, JobReportError
from autosplit.ledger import Ledger, UnitChanges
from autosplit.pipeline import statestore
from autosplit.pipeline.taskdir import TaskDir
from autosplit.scheduler import Scheduler
from autosplit.scheduler.core import DeferredDataset
from autosplit.scheduler.restore import JobRecord, restore_scheduler

if TYPE_CHECKING:  # polars and the dataset are imported where they are used; binding and accounting do not
    import polars as pl

    from autosplit.datasets import Dataset
    from autosplit.pipeline.config import TaskConfig


def scheduler_options(task: TaskDir) -> dict[str, Any]:
    """The scheduler's keyword arguments from the task configuration."""
    return scheduler_options_for(task.config)


def scheduler_options_for(config: TaskConfig) -> dict[str, Any]:
    """The scheduler's keyword arguments from a configuration (the benchmarks use this too, so the
    simulated autosplit gets exactly what the pipeline would pass)."""
    splitting = config.splitting
    return {
        "target_runtime": config.target_seconds,
        "alpha": splitting.alpha,
        "slots": config.slots,
        "max_tails": splitting.max_tails,
        "probes": splitting.probes,
        "probe_seconds": config.probe_seconds,
        "probe_fraction": splitting.probe_fraction,
        "rel_precision": splitting.rel_precision,
        "max_unit_failures": config.limits.max_unit_failures,
        "grace_seconds": config.grace_seconds,
        "checkpoint_seconds": config.limits.checkpoint_interval,
        "max_files_per_job": splitting.max_files_per_job,
        "seed": 0,
    }


class Session:
    """A task's scheduler and ledger, held under the scheduler lock (see the module docstring)."""

    def __init__(
        self, task: TaskDir, ledger: Ledger, scheduler: Scheduler, loaded: statestore.Loaded | None = None
    ) -> None:
        self.task = task
        self.ledger = ledger
        self.scheduler = scheduler
        self._loaded = loaded
        self._dirty: list[np.ndarray] = []

    def changes(self) -> UnitChanges:
        """The units the scheduler changed since the last call, as ledger records."""
        raw = self.scheduler.changed_units()
        if raw["rows"].size:
            self._dirty.append(raw["rows"])
        return UnitChanges(
            ids=raw["rows"],
            state=raw["state"],
            node=raw["job_id"],
            failures=raw["failures"],
            returns=raw["returns"],
            crashes=raw["crashes"],
            alone=raw["alone"],
            reason=raw["reason"],
        )

    def save(self) -> None:
        """Save the scheduler's state stamped with the ledger's current version; when the cost model was
        refitted, also its estimate (``estimate`` in the ledger's meta, for ``status``)."""
        statestore.save(
            state_path(self.task), self.scheduler, self.ledger.version(), self._loaded, self._dirty
        )
        self._dirty = []
        fits = str(self.scheduler.summary_light()["fits"])
        if self.scheduler.has_model and self.ledger.get_meta("estimate_fits") != fits:
            self.ledger.set_meta(estimate=estimate_info(self.scheduler), estimate_fits=fits)


def estimate_info(scheduler: Scheduler) -> dict[str, Any]:
    """What ``status`` shows of the scheduler's cost model: seconds per event (with a 95 % interval) and the
    predicted CPU seconds of the units not yet done, per-job overhead, spreads, what was observed."""
    import polars as pl

    model = scheduler.model_
    units = scheduler.dataset.units
    states = scheduler.unit_states()
    left = units.filter(pl.Series(states < 2))
    info: dict[str, Any] = {"model": model.summary() if hasattr(model, "summary") else {}}
    light = scheduler.summary_light()
    info.update(
        concurrency=light["concurrency"],
        packing_target_seconds=light["packing_target_seconds"],
        failure_cap_seconds=light["failure_cap_seconds"],
        failure_rate_per_hour=light["failure_rate_per_hour"],
        slot_overhead_seconds=light["slot_overhead_seconds"],
    )
    events = float(units["events"].sum() or 0)
    if events > 0 and hasattr(model, "total_seconds_interval"):
        low, est, high = model.total_seconds_interval(units)
        info["seconds_per_event"] = {"estimate": est / events, "low": low / events, "high": high / events}
        if left.height:
            low, est, high = model.total_seconds_interval(left)
            info["remaining_cpu_seconds"] = {"estimate": est, "low": low, "high": high}
        else:
            info["remaining_cpu_seconds"] = {"estimate": 0.0, "low": 0.0, "high": 0.0}
    return info


@contextmanager
def session(task: TaskDir) -> Iterator[Session]:
    """Lock the task's scheduler, open the ledger and load (or rebuild) the scheduler."""
    task.require()
    lock_path = task.root / "scheduler.lock"
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with task.ledger() as ledger:
            scheduler, loaded = _load(task, ledger)
            yield Session(task, ledger, scheduler, loaded)
    finally:
        os.close(fd)  # closing releases the lock


def state_path(task: TaskDir) -> Path:
    """The saved state's header (deleting it makes the next session rebuild the scheduler from the ledger)."""
    return task.root / "scheduler.state"


def save_state(task: TaskDir, scheduler: Scheduler, version: int) -> None:
    """Save ``scheduler`` whole (every array and job written), stamped with ``version``."""
    statestore.save(state_path(task), scheduler, version, None, [])


def load_scheduler(task: TaskDir, ledger: Ledger) -> Scheduler:
    """The saved scheduler when its version is the ledger's, else one rebuilt from the ledger."""
    return _load(task, ledger)[0]


def _load(task: TaskDir, ledger: Ledger) -> tuple[Scheduler, statestore.Loaded | None]:
    version = ledger.version()
    found = statestore.load(state_path(task), version, lazy_dataset(task))
    if found is not None:
        return found
    return rebuild_scheduler(task, ledger), None


# ---------------------------------------------------------------------- the dataset, loaded cheaply
def lazy_dataset(task: TaskDir) -> Dataset | DeferredDataset:
    """The task's dataset if this process read it already, else one read when something uses it (a refit,
    a rebuild): binding and accounting for a job need only the scheduler's own arrays."""
    if "dataset" in task.__dict__:
        return task.__dict__["dataset"]
    return DeferredDataset(lambda: task_dataset(task))


def task_dataset(task: TaskDir) -> Dataset:
    """The task's dataset (``dataset.parquet``), read fast: its files table is cached as parquet next to it
    (the parquet metadata holds it as JSON, slow to turn into a table of 100,000 files), and a dataset the
    task already validated is not validated again."""
    import polars as pl

    from autosplit.datasets import Dataset
    from autosplit.datasets.dataset import PARQUET_FORMAT

    if "dataset" in task.__dict__:
        return task.__dict__["dataset"]
    cache = task.root / "dataset.files.parquet"
    try:
        metadata = pl.read_parquet_metadata(task.dataset_path)
        if metadata.get("autosplit.format") != PARQUET_FORMAT:
            raise ValueError("not written by autosplit")
        try:
            if cache.stat().st_mtime_ns < task.dataset_path.stat().st_mtime_ns:
                raise OSError("stale")
            files = pl.read_parquet(cache)
        except OSError:
            files = _files_table(json.loads(metadata["autosplit.files"]))
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
            files.write_parquet(tmp)
            os.replace(tmp, cache)
        units = pl.read_parquet(task.dataset_path)
        dataset = Dataset.__new__(Dataset)
        dataset._units = units
        dataset._files = files
        dataset.name = metadata.get("autosplit.name", "")
        dataset.meta = json.loads(metadata.get("autosplit.meta", "{}"))
        dataset._cache = {}
    except (OSError, ValueError, KeyError, TypeError, pl.exceptions.PolarsError):
        dataset = Dataset.from_parquet(task.dataset_path)
    task.__dict__["dataset"] = dataset
    return dataset


def _files_table(columns: dict[str, list]) -> pl.DataFrame:
    """The files table from its JSON columns, built column-wise (the list column ``locations`` through one
    flat column and a group-by: building it list by list costs seconds for 100,000 files)."""
    import polars as pl

    from autosplit.datasets.dataset import FILE_SCHEMA

    locations = columns.get("locations") or []
    n = len(columns["file_id"])
    lengths = np.fromiter((len(x or ()) for x in locations), dtype=np.int64, count=len(locations))
    flat = pl.DataFrame(
        {
            "row": np.repeat(np.arange(len(locations), dtype=np.int64), lengths),
            "locations": pl.Series([v for x in locations for v in (x or ())], dtype=pl.String),
        }
    )
    nested = flat.group_by("row").agg(pl.col("locations"))
    base = pl.DataFrame(
        {
            name: pl.Series(name, values, dtype=FILE_SCHEMA[name])
            for name, values in columns.items()
            if name != "locations"
        }
        | {"row": np.arange(n, dtype=np.int64)}
    )
    table = base.join(nested, on="row", how="left").sort("row")
    table = table.with_columns(pl.col("locations").fill_null(pl.lit([], dtype=pl.List(pl.String))))
    return table.select([c for c in FILE_SCHEMA if c in table.columns]).cast(
        {c: t for c, t in FILE_SCHEMA.items() if c in table.columns}
    )


def rebuild_scheduler(task: TaskDir, ledger: Ledger) -> Scheduler:
    """A scheduler rebuilt from the ledger (see :mod:`autosplit.scheduler.restore`)."""
    import polars as pl

    dataset = task_dataset(task)
    if ledger.version() == 0 and not ledger.jobs().height:
        return Scheduler(dataset, **scheduler_options(task))  # a new task: nothing to restore
    units = ledger.units()
    n = dataset.n_units
    codes = {"pending": 0, "assigned": 1, "done": 2, "quarantined": 3}
    state = np.zeros(n, dtype=np.int8)
    record: dict[str, Any] = {"state": state}
    if units.height:
        ids = units["unit_id"].to_numpy()
        state[ids] = units["state"].replace_strict(codes, return_dtype=pl.Int8).to_numpy()
        for name in ("failures", "returns", "crashes", "alone"):
            values = np.zeros(n, dtype=np.int64)
            values[ids] = units[name].to_numpy()
            record[name] = values
        quarantined = units.filter(units["state"] == "quarantined")
        record["reason"] = dict(
            zip(quarantined["unit_id"].to_list(), quarantined["reason"].to_list(), strict=True)
        )
    jobs_frame = ledger.jobs()
    members = ledger.all_job_units()
    rows_of: dict[str, np.ndarray] = {}
    if members.height:
        for node, group in members.group_by("node", maintain_order=True):
            rows_of[node[0]] = group.sort("seq")["unit_id"].to_numpy().astype(np.int64)
    attempts = ledger.attempts()  # in time order
    # A job whose last attempt its user killed before it reported was cancelled (Scheduler.job_cancelled).
    silent_kill: set[str] = set()
    if attempts.height:
        last = attempts.group_by("node", maintain_order=True).last()
        no_report = last["report_path"].cast(pl.String).fill_null("") == ""
        silent_kill = set(last.filter((last["outcome"] == "killed") & no_report)["node"].to_list())
    jobs = []
    for row in jobs_frame.iter_rows(named=True) if jobs_frame.height else []:
        outcome = "running" if row["state"] == "planned" else (row["outcome"] or row["state"])
        if outcome == "killed" and row["node"] in silent_kill:
            outcome = "cancelled"
        jobs.append(
            JobRecord(
                job_id=row["node"],
                stage=row["stage"],
                kind=row["kind"],
                rows=rows_of.get(row["node"], np.zeros(0, np.int64)),
                requested_at=float(row["created"] or 0.0),
                soft=row["soft_limit_seconds"],
                hard=float(row["hard_limit_seconds"] or 0.0),
                predicted=row["predicted_seconds"],
                outcome=outcome,
                ended_at=row["ended"],
            )
        )
    reports: list[JobReport] = []
    ended: list[tuple[float, float | None, bool]] = []
    lost_runs: list[tuple[str, float]] = []
    if attempts.height:
        for row in attempts.iter_rows(named=True):
            no_report = not row["report_path"]
            # How long it ran, from the event log (a job its user killed says nothing of its units).
            if no_report and row["wall_seconds"] is not None and row["outcome"] != "killed":
                lost_runs.append((row["node"], float(row["wall_seconds"])))
            if row["usable_report"] and row["report_path"]:
                try:
                    reports.append(JobReport.from_json(row["report_path"]))
                except JobReportError:
                    pass
            if row["elapsed_seconds"] is not None:
                wall = None if no_report else row["wall_seconds"]  # a payload's wall time: slot overhead
                ended.append((float(row["elapsed_seconds"]), wall, row["outcome"] == "lost"))
    return restore_scheduler(
        dataset,
        units=record,
        jobs=jobs,
        reports=reports,
        ended=ended,
        now=time.time(),
        options=scheduler_options(task),
        lost_runs=lost_runs,
    )
