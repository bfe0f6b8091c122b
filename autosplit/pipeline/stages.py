"""Turning planned jobs into files: one job spec and submit description per job, one DAG per stage.

Stage names and node names:

====================  ==================  =====================================================
stage                 job nodes           DAG file (written by)
====================  ==================  =====================================================
``probe``             ``probe-1`` ...     ``task.dag`` (submit), with the ``processing`` sub-DAG
``probe-rK``          ``probe-rK-1`` ...  ``processing[-rK-1].dag`` (predag, when probes are too few)
``processing``        ``job-1`` ...       ``processing[-rK].dag`` (predag processing)
``tail-K``            ``tail-K-1`` ...    ``tail-K.dag`` (predag tail K)
``resubmit-K``        ``resub-K-1`` ...   ``resubmit-K.dag`` (resubmit)
====================  ==================  =====================================================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from autosplit.dagbuilder import DagFile, DagNode, job_submit
from autosplit.datasets import Dataset
from autosplit.datasets.dataset import UNIT_SCHEMA
from autosplit.pipeline.taskdir import PRE_SKIP_CODE, TaskDir
from autosplit.worker import FileUnits, JobSpec

# SCRIPT DEFER 4 <seconds>: re-run a postjob that waits for its stage-out, sooner on one machine.
POSTJOB_DEFER_SECONDS = {"local": 5, "condor": 300}
FATAL = 2  # postjob exit code that stops retries (RETRY ... UNLESS-EXIT 2)
ABORT = 3  # postjob exit code that aborts the DAG (ABORT-DAG-ON ... 3)


@dataclass
class PlannedJob:
    """A job about to be written: its node name, its units (ledger unit ids = dataset rows), its limits."""

    node: str
    unit_ids: np.ndarray
    predicted_seconds: float | None = None
    soft_limit_seconds: float | None = None
    hard_limit_seconds: float | None = None
    memory_mb: int = 2000
    meta: dict = field(default_factory=dict)

    def ledger_entry(self) -> dict:
        return {
            "node": self.node,
            "unit_ids": self.unit_ids.tolist(),
            "predicted_seconds": self.predicted_seconds,
            "soft_limit_seconds": self.soft_limit_seconds,
            "hard_limit_seconds": self.hard_limit_seconds,
            "memory_mb": self.memory_mb,
        }


def node_prefix(stage: str) -> str:
    """Job node prefix of a stage: ``probe``, ``probe-r2``, ``job``, ``tail-1``, ``resub-1``."""
    if stage == "processing":
        return "job"
    if stage.startswith("resubmit-"):
        return "resub-" + stage.removeprefix("resubmit-")
    return stage


def spec_files(ds: Dataset, unit_ids: np.ndarray) -> list[FileUnits]:
    """The job's units (rows of ``ds.units``) grouped by their first file, each naming every file holding it."""
    units = ds.units[np.asarray(unit_ids, dtype=np.int64)]
    lfn = dict(zip(ds.files["file_id"].to_list(), ds.files["lfn"].to_list(), strict=True))
    extras = [c for c in units.columns if c not in UNIT_SCHEMA]
    grouped: dict[str, list[dict]] = {}
    for row in units.select("run", "lumi", "events", "file_id", "file_ids", *extras).iter_rows(named=True):
        unit = {
            "run": row["run"],
            "lumi": row["lumi"],
            "events": row["events"],
            "files": [lfn[f] for f in row["file_ids"]],
            **{k: row[k] for k in extras if isinstance(row[k], int | float | str | bool)},
        }
        grouped.setdefault(lfn[row["file_id"]], []).append(unit)
    return [FileUnits(lfn=name, units=items) for name, items in grouped.items()]


def write_job(task: TaskDir, stage: str, job: PlannedJob) -> DagNode:
    """Write the job's spec and submit description; return its DAG node (POST = postjob, RETRY)."""
    config = task.config
    task.make_job_dir(job.node)
    code = (
        {"callable": config.code.callable} if config.code.callable else {"executable": config.code.executable}
    )
    spec = JobSpec(
        task=config.task.name,
        job_id=job.node,
        stage=stage,
        site=config.backend.site,
        soft_limit_seconds=job.soft_limit_seconds,
        hard_limit_seconds=job.hard_limit_seconds,
        output_dir=str(task.output_dir(job.node)),
        files=spec_files(task.dataset, job.unit_ids),
        code=code,
        stage_out=_stage_out(task),
    )
    spec.write(task.spec_path(job.node))
    write_submit(task, job.node, stage, job.soft_limit_seconds, job.hard_limit_seconds, job.memory_mb)
    return DagNode(
        name=job.node,
        submit=str(task.job_dir(job.node) / "job.sub"),
        post=task.autosplit_argv("postjob", str(task.root), job.node, "$RETURN", "$RETRY", "$MAX_RETRIES"),
        post_defer=(4, POSTJOB_DEFER_SECONDS[config.backend.kind]),
        retries=config.limits.retries,
        retry_unless_exit=FATAL,
        abort_on=(ABORT, 1),
    )


def write_submit(
    task: TaskDir, node: str, stage: str, soft: float | None, hard: float | None, memory_mb: int
) -> Path:
    """Write the job's submit description (``job.sub``; DAGMan reads it again at every retry)."""
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


def stage_dag(
    task: TaskDir,
    stage: str,
    jobs: Sequence[PlannedJob],
    *,
    next_stage: str | None,
    dag_name: str,
) -> DagFile:
    """A stage's DAG: its jobs, and a sub-DAG node for the next stage whose PRE script plans it."""
    dag = DagFile(
        node_status_file=str(task.dag_dir / f"{dag_name}.status"),
        comment=f"autosplit task {task.name}: stage {stage} ({len(jobs)} jobs)",
    )
    for index, job in enumerate(jobs):
        node = write_job(task, stage, job)
        node.priority = len(jobs) - index  # factoring orders the biggest jobs first
        dag.add(node)
    if next_stage is not None:
        dag.add(subdag_node(task, next_stage, parents=[job.node for job in jobs]))
    return dag


def subdag_node(task: TaskDir, key: str, parents: list[str] | None = None) -> DagNode:
    """The sub-DAG node of stage ``key``: its PRE script (predag) writes the stage's DAG, or skips it."""
    return DagNode(
        name=key,
        subdag=str(task.stage_dag(key)),
        pre=task.autosplit_argv("predag", str(task.root), key),
        pre_skip=PRE_SKIP_CODE,
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
        pre=task.autosplit_argv("finalize", str(task.root), "$DAG_STATUS"),
    )


def write_dag_config(task: TaskDir, dag_name: str) -> str:
    """A DAGMan CONFIG file limiting concurrent jobs of one DAG (throttles are per DAGMan process)."""
    path = task.dag_dir / f"{dag_name}.config"
    path.write_text(f"DAGMAN_MAX_JOBS_SUBMITTED = {task.config.max_jobs}\nDAGMAN_MAX_POST_SCRIPTS = 4\n")
    return str(path)


def frame_to_ids(units: pl.DataFrame) -> np.ndarray:
    return units["unit_id"].to_numpy().astype(np.int64)
