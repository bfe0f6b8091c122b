"""The task's DAG shape, and turning a bound job into its files.

The shape is static and plain DAGMan: ``N`` parallel **chains** of job nodes, each node bound to work only
when its turn comes::

    task.dag:    c1-1 -> c1-2 -> ... -> c1-L  \\
                 c2-1 -> c2-2 -> ... -> c2-L   >--> SUBDAG tail-1 (tail-1.dag: the same shape, for what is
                 ...                          /                      left when every chain has ended)
                 cN-1 -> ...         -> cN-L /
                 FINAL finalize

* Each chain node's PRE script (:mod:`autosplit.pipeline.bind`) asks the task's scheduler for a job at
  that moment and writes the node's spec and submit file (the submit file is read by DAGMan only when
  the node is submitted, after its PRE script). While the scheduler has nothing to hand out yet (probes
  still running) the script exits with ``BIND_DEFER`` and DAGMan runs it again later (``SCRIPT DEFER``);
  once the task is finished it exits ``PRE_SKIP`` and the rest of the chain skips through at once.
* Each chain node's POST script (:mod:`autosplit.pipeline.postjob`) accounts for the job.
* Chains give late binding with a static DAG: a slot freed by a chain's job is given the next job of that
  chain, cut from whatever is pending then; units handed back by a soft stop, a kill or a failure are
  bound again by the next chain node that asks. ``N`` bounds the task's concurrency.
* A chain ends when it reached its length ``L``; the ``tail-K`` sub-DAG waits for every chain and, if
  units are still pending, its PRE script (:mod:`autosplit.pipeline.predag`) writes another set of chains
  for them (at most ``MAX_TAIL_DAGS`` times), else skips. So "nested sub-DAGs regroup what is left" still
  holds, but a tail sub-DAG is only needed when chains run out.

Node names: ``c<chain>-<k>`` in ``task.dag``, ``t<K>c<chain>-<k>`` in ``tail-K.dag``, ``r<K>c<chain>-<k>`` in
``resubmit-K.dag``. A job's stage (``probe``, ``processing``, ``tail-K``) is the scheduler's label, kept in
the ledger.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from autosplit.dagbuilder import DagFile, DagNode, job_submit
from autosplit.pipeline.taskdir import PRE_SKIP_CODE, TaskDir
from autosplit.worker import FileUnits, JobSpec

if TYPE_CHECKING:  # the job scripts read the unit columns cached by the first one, not the dataset
    from autosplit.datasets import Dataset

# SCRIPT DEFER 4 <seconds>: re-run a postjob that waits for its stage-out, sooner on one machine.
POSTJOB_DEFER_SECONDS = {"local": 5, "condor": 300}
# SCRIPT DEFER 98 <seconds>: re-run a bind script while the scheduler has nothing to hand out yet.
BIND_DEFER = 98
BIND_DEFER_SECONDS = {"local": 2, "condor": 60}
FATAL = 2  # postjob exit code that stops retries (RETRY ... UNLESS-EXIT 2)
ABORT = 3  # postjob exit code that aborts the DAG (ABORT-DAG-ON ... 3)
NODE_RETRIES = 2  # DAGMan retries of a node whose PRE or POST script itself failed
MAX_CHAIN_LENGTH = 64
MAX_TAIL_DAGS = 5


def chain_count(task: TaskDir) -> int:
    """Chains of a task: the slots it may use at once (local: the job limit; condor: slots, else 500)."""
    config = task.config
    if config.backend.kind == "local":
        return config.max_jobs
    return config.splitting.slots or config.backend.max_jobs or 500


def chain_length(n_units: int, n_chains: int) -> int:
    """Nodes per chain: room for every unit in jobs of one unit, up to ``MAX_CHAIN_LENGTH``."""
    return int(min(MAX_CHAIN_LENGTH, max(4, math.ceil(n_units / max(n_chains, 1)) + 1)))


def chain_prefix(dag_key: str) -> str:
    """Node name prefix of a DAG's chains: ``c`` (task), ``t<J>c`` (tail-J), ``r<K>c`` (resubmit-K),
    ``r<K>t<J>c`` (resubmit-K-tail-J)."""
    if dag_key == "task":
        return "c"
    parts = dag_key.split("-")
    return "".join(f"{parts[i][0]}{parts[i + 1]}" for i in range(0, len(parts) - 1, 2)) + "c"


def chain_dag(task: TaskDir, dag_key: str, n_chains: int, length: int, *, next_tail: str | None) -> DagFile:
    """``n_chains`` chains of ``length`` job nodes, then the ``next_tail`` sub-DAG node (if any)."""
    config = task.config
    kind = config.backend.kind
    prefix = chain_prefix(dag_key)
    dag = DagFile(
        node_status_file=str(task.dag_dir / f"{dag_key}.status"),
        comment=f"autosplit task {task.name}: {n_chains} chains of {length} job nodes ({dag_key})",
    )
    last = []
    for chain in range(1, n_chains + 1):
        previous = None
        for k in range(1, length + 1):
            node = f"{prefix}{chain}-{k}"
            dag.add(
                DagNode(
                    name=node,
                    submit=str(task.job_dir(node) / "job.sub"),
                    pre=task.script_argv("bind", str(task.root), node),
                    pre_defer=(
                        BIND_DEFER,
                        int(config.backend.bind_defer_seconds or BIND_DEFER_SECONDS[kind]),
                    ),
                    pre_skip=PRE_SKIP_CODE,
                    post=task.script_argv(
                        "postjob", str(task.root), node, "$RETURN", "$RETRY", "$MAX_RETRIES"
                    ),
                    post_defer=(4, POSTJOB_DEFER_SECONDS[kind]),
                    retries=NODE_RETRIES,
                    retry_unless_exit=FATAL,
                    abort_on=(ABORT, 1),
                    script_log=str(task.logs_dir / "scripts.err"),
                    parents=[previous] if previous else [],
                )
            )
            previous = node
        last.append(previous)
    if next_tail is not None:
        dag.add(subdag_node(task, next_tail, parents=last))
    dag.config_file = write_dag_config(task, dag_key)
    return dag


def subdag_node(task: TaskDir, key: str, parents: list[str] | None = None) -> DagNode:
    """The sub-DAG node of ``key``: its PRE script (predag) writes the sub-DAG, or skips it."""
    return DagNode(
        name=key,
        subdag=str(task.stage_dag(key)),
        pre=task.script_argv("predag", str(task.root), key),
        pre_skip=PRE_SKIP_CODE,
        script_log=str(task.logs_dir / "scripts.err"),
        parents=list(parents or []),
    )


def finalize_node(task: TaskDir) -> DagNode:
    """The FINAL node: a NOOP whose PRE script closes the ledger however the DAG ended."""
    noop = task.dag_dir / "noop.sub"
    if not noop.exists():
        noop.write_text("executable = /bin/true\nqueue\n")
    return DagNode(
        name="finalize",
        submit=str(noop),
        noop=True,
        pre=task.script_argv("finalize", str(task.root), "$DAG_STATUS"),
        script_log=str(task.logs_dir / "scripts.err"),
    )


def write_dag_config(task: TaskDir, dag_key: str) -> str:
    """The DAGMan CONFIG file of one DAG (script throttles; the chains bound the jobs)."""
    path = task.dag_dir / f"{dag_key}.config"
    path.write_text("DAGMAN_MAX_PRE_SCRIPTS = 20\nDAGMAN_MAX_POST_SCRIPTS = 20\n")
    return str(path)


# ---------------------------------------------------------------------- job files
class UnitColumns:
    """What a job spec needs of every unit, as flat arrays (numpy, memory-mapped when read from a task's
    cache): run, lumi, events, first file, every file (offsets into a flat list), LFN by file, each file's
    sites (offsets into a flat list), and the extra scalar columns (unit features). Gathering a job's units
    is then a few array takes."""

    def __init__(self, arrays: dict[str, np.ndarray], extras: list[str]) -> None:
        self.arrays = arrays
        self.extras = extras

    @classmethod
    def from_dataset(cls, ds: Dataset) -> UnitColumns:
        import polars as pl

        from autosplit.datasets.dataset import UNIT_SCHEMA

        units = ds.units
        files = ds.files
        file_ids = files["file_id"].to_numpy().astype(np.int64)
        lfns = files["lfn"].to_numpy().astype(object)
        size = int(file_ids.max()) + 1 if file_ids.size else 0
        lfn = np.zeros(size, dtype=object)
        lfn[file_ids] = lfns
        lists = units["file_ids"]
        arrays = {
            "run": units["run"].to_numpy().astype(np.int64),
            "lumi": units["lumi"].to_numpy().astype(np.int64),
            "events": units["events"].to_numpy().astype(np.int64),
            "file_id": units["file_id"].to_numpy().astype(np.int64),
            "files_offsets": np.concatenate(
                [[0], np.cumsum(lists.list.len().fill_null(0).to_numpy())]
            ).astype(np.int64),
            "files_values": lists.explode().drop_nulls().to_numpy().astype(np.int64),
            "lfn": np.array([str(x) if x is not None else "" for x in lfn], dtype=str),
        }
        # Per-file site lists (DBS listings; empty when the dataset has none), flat in file-id order.
        counts = np.zeros(size, dtype=np.int64)
        values = np.zeros(0, dtype=str)
        if "locations" in files.columns and files.height:
            by_id = files.select("file_id", pl.col("locations").list.drop_nulls()).sort("file_id")
            counts[by_id["file_id"].to_numpy()] = by_id["locations"].list.len().fill_null(0).to_numpy()
            values = by_id["locations"].explode().drop_nulls().cast(pl.String).to_numpy().astype(str)
        arrays["sites_offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        arrays["sites_values"] = values
        extras = []
        for column in units.columns:
            if column in UNIT_SCHEMA:
                continue
            series = units[column]
            if series.dtype.is_numeric() or series.dtype == pl.Boolean or series.dtype == pl.String:
                values = series.to_numpy()
                if series.dtype == pl.String:
                    values = np.array(["" if v is None else v for v in series.to_list()], dtype=str)
                    arrays[f"null.{column}"] = series.is_null().to_numpy()
                elif series.null_count():
                    arrays[f"null.{column}"] = series.is_null().to_numpy()
                    values = series.fill_null(0).to_numpy()
                arrays[f"x.{column}"] = values
                extras.append(column)
        return cls(arrays, extras)

    def save(self, directory: Path) -> None:
        directory.mkdir(mode=0o700, exist_ok=True)
        for name, array in self.arrays.items():
            np.save(directory / f"{name}.npy", array, allow_pickle=False)
        (directory / "extras.json").write_text(json.dumps(self.extras))

    @classmethod
    def load(cls, directory: Path) -> UnitColumns:
        extras = json.loads((directory / "extras.json").read_text())
        names = ["run", "lumi", "events", "file_id", "files_offsets", "files_values", "lfn"]
        if (directory / "sites_offsets.npy").exists():  # absent from caches written before they were kept
            names += ["sites_offsets", "sites_values"]
        for column in extras:
            names.append(f"x.{column}")
            if (directory / f"null.{column}.npy").exists():
                names.append(f"null.{column}")
        return cls({n: np.load(directory / f"{n}.npy", mmap_mode="r") for n in names}, extras)

    def _files_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For units ``ids``: their first file, every file holding them (flat, unit after unit) and how
        many each has (file ids)."""
        a = self.arrays
        starts, ends = a["files_offsets"][ids], a["files_offsets"][ids + 1]
        counts = ends - starts
        flat = np.repeat(starts - np.concatenate([[0], np.cumsum(counts)[:-1]]), counts) + np.arange(
            int(counts.sum())
        )
        all_files = a["files_values"][flat] if flat.size else np.zeros(0, np.int64)
        return a["file_id"][ids], all_files, counts

    def file_sites(self, unit_ids: np.ndarray) -> list[list[str]] | None:
        """The site list of every file holding units ``unit_ids``, in LFN order (what the condor backend
        turns into ``DESIRED_Sites``; an empty list: not known); None for a cache written before sites
        were kept."""
        a = self.arrays
        if "sites_offsets" not in a:
            return None
        first, all_files, _ = self._files_of(np.asarray(unit_ids, dtype=np.int64))
        used = np.unique(np.concatenate([first, all_files]))
        used = used[np.argsort(a["lfn"][used], kind="stable")]
        offsets = a["sites_offsets"]
        return [a["sites_values"][offsets[f] : offsets[f + 1]].tolist() for f in used.tolist()]

    def spec_files(self, unit_ids: np.ndarray) -> list[FileUnits]:
        ids = np.asarray(unit_ids, dtype=np.int64)
        a = self.arrays
        run = a["run"][ids].tolist()
        lumi = a["lumi"][ids].tolist()
        events = a["events"][ids].tolist()
        first, all_files, counts = self._files_of(ids)
        used = np.unique(np.concatenate([first, all_files]))
        lfn_of = dict(zip(used.tolist(), a["lfn"][used].tolist(), strict=True))
        names = [lfn_of[f] for f in all_files.tolist()]
        extra_values = []
        for key in self.extras:
            values = a[f"x.{key}"][ids].tolist()
            nulls = a.get(f"null.{key}")
            if nulls is not None:
                null = nulls[ids].tolist()
                values = [None if n else v for v, n in zip(values, null, strict=True)]
            extra_values.append((key, values))
        grouped: dict[str, list[dict]] = {}
        position = 0
        for i, n in enumerate(counts.tolist()):
            unit = {
                "run": run[i],
                "lumi": lumi[i],
                "events": events[i],
                "files": names[position : position + n],
            }
            position += n
            for key, values in extra_values:
                value = values[i]
                if isinstance(value, int | float | str | bool):
                    unit[key] = value
            grouped.setdefault(lfn_of[int(first[i])], []).append(unit)
        return [FileUnits(lfn=name, units=items) for name, items in grouped.items()]


def spec_files(ds: Dataset, unit_ids: np.ndarray) -> list[FileUnits]:
    """The job's units (rows of ``ds.units``, in processing order) grouped by their first file, each unit
    naming every file holding it. The dataset's flat columns are built once per dataset (cached on it)."""
    cache = getattr(ds, "_cache", None)
    columns = cache.get("unit_columns") if isinstance(cache, dict) else None
    if columns is None:
        columns = UnitColumns.from_dataset(ds)
        if isinstance(cache, dict):
            cache["unit_columns"] = columns
    return columns.spec_files(unit_ids)


def task_unit_columns(task: TaskDir) -> UnitColumns:
    """The task's unit columns, memory-mapped from ``units.d/`` (written from the dataset on first use), so
    a script writing one job's spec reads only that job's rows."""
    cached = task.__dict__.get("_unit_columns")
    if cached is not None:
        return cached
    directory = task.root / "units.d"
    try:
        columns = UnitColumns.load(directory)
    except (OSError, ValueError):
        from autosplit.pipeline.scheduling import task_dataset

        columns = UnitColumns.from_dataset(task_dataset(task))
        tmp = task.root / f".units.d.{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        columns.save(tmp)
        try:
            os.rename(tmp, directory)
        except OSError:  # made meanwhile by another script
            shutil.rmtree(tmp, ignore_errors=True)
        columns = UnitColumns.load(directory)
    task.__dict__["_unit_columns"] = columns
    return columns


def write_job(
    task: TaskDir,
    node: str,
    *,
    stage: str,
    unit_ids: np.ndarray,
    soft: float | None,
    hard: float | None,
    memory_mb: int,
) -> Path:
    """Write the job's spec and submit description (``jobs/<node>/``); returns the submit file."""
    config = task.config
    task.make_job_dir(node)
    columns = task_unit_columns(task)
    code = (
        {"callable": config.code.callable} if config.code.callable else {"executable": config.code.executable}
    )
    spec = JobSpec(
        task=config.task.name,
        job_id=node,
        stage=stage,
        site=config.backend.site,
        soft_limit_seconds=soft,
        hard_limit_seconds=hard,
        output_dir=str(task.output_dir(node)),
        files=columns.spec_files(unit_ids),
        code=code,
        stage_out=_stage_out(task),
        checkpoint_seconds=config.limits.checkpoint_interval,
    )
    if config.backend.kind == "condor":  # no shared filesystem: the spec is written for the scratch dir
        from autosplit.backends.condor_submit import write_condor_job

        sites = columns.file_sites(unit_ids)
        return write_condor_job(
            task, node, spec, stage=stage, soft=soft, hard=hard, memory_mb=memory_mb, file_sites=sites
        )
    spec.write(task.spec_path(node))
    return write_submit(task, node, stage, soft, hard, memory_mb)


def write_submit(
    task: TaskDir, node: str, stage: str, soft: float | None, hard: float | None, memory_mb: int
) -> Path:
    """Write the job's submit description (``job.sub``; DAGMan reads it at every submission)."""
    config = task.config
    job_dir = task.job_dir(node)
    submit = job_submit(
        node=node,
        python=task.python(),
        spec_path=task.spec_path(node),
        report_path=task.report_path(node),
        job_dir=config.code.path,
        event_log=task.event_log,
        soft_limit_seconds=soft,
        hard_limit_seconds=hard,
        grace_seconds=config.grace_seconds,
        memory_mb=memory_mb,
        site=config.backend.site,
        task=config.task.name,
        stage=stage,
        batch_enforces_hard_limit=False,
        batch_backstop=config.backend.kind == "condor",
        # The job runs in the user's code directory (so module:function imports); its output stays here.
        stdout=job_dir / "job.out",
        stderr=job_dir / "job.err",
    )
    path = job_dir / "job.sub"
    path.write_text(str(submit))
    return path


def _stage_out(task: TaskDir) -> dict | None:
    output = task.config.output
    if output.stage_out != "aso":
        return None
    return {
        "db": str(task.transfer_db),
        "temp_root": str(task.temp_root / task.config.backend.site),
        "destination": str(task.destination),
        "site": task.config.backend.site,
        "budget_bytes": output.temp_budget_bytes,
    }
