"""Acting on a task: start or resume it, kill it (or some jobs), resubmit what it gave up on.

Every action goes through the ledger first, so status and report describe it correctly at once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from autosplit.backends.background import request_remove, running_pid, start_background
from autosplit.dagbuilder import DagFile
from autosplit.pipeline.config import dump_config
from autosplit.pipeline.stages import finalize_node, subdag_node, write_dag_config
from autosplit.pipeline.taskdir import TaskDir, TaskError


def start(task: TaskDir, dag: Path | None = None) -> int | None:
    """Hand the DAG to the task's backend; returns the local executor's pid (None on condor)."""
    dag = dag or task.top_dag
    if task.config.backend.kind == "condor":
        from autosplit.backends.condor import submit_dag

        cluster = submit_dag(dag, max_jobs=task.config.backend.max_jobs, batch_name=task.name)
        with task.ledger() as ledger:
            ledger.set_meta(condor_cluster=str(cluster))
        return None
    return start_background(dag, log_path=task.dag_dir / f"{dag.stem}.executor.log")


def active_dags(task: TaskDir) -> list[Path]:
    """DAGs of this task whose local executor is running."""
    dags = [task.top_dag, *sorted(task.dag_dir.glob("resubmit-*-top.dag"))]
    return [d for d in dags if d.exists() and running_pid(d) is not None]


def kill(task: TaskDir, nodes: list[str] | None = None) -> dict:
    """Kill the whole task (``nodes`` None) or some running jobs.

    Whole task: the ledger records the kill, then the DAG is removed (its FINAL node quarantines what is
    left, with "killed" as the reason; ``autosplit resubmit`` can bring it back). Some jobs: they are
    marked in the ledger and their wrappers get SIGTERM, so they stop at the next unit boundary and report
    what they finished; their unfinished units go to the next stage.
    """
    task.require()
    with task.ledger() as ledger:
        marked = ledger.request_kill(nodes)
        if nodes is None:
            ledger.set_meta(killed=str(time.time()))
    signalled = []
    if task.transfer_db.exists():
        from autosplit.aso import kill_job_transfers

        for node in nodes or [None]:
            kill_job_transfers(task.transfer_db, task.name, node, reason="killed by the user")
    if nodes is None:
        if task.config.backend.kind == "condor":
            from autosplit.backends.condor import act

            with task.ledger() as ledger:
                cluster = ledger.get_meta("condor_cluster")
            if cluster:
                act(int(cluster), "remove", "autosplit kill")
        for dag in active_dags(task):
            request_remove(dag)
    else:
        for node in nodes:
            pid_file = task.job_dir(node) / "wrapper.pid"
            try:
                pid = int(pid_file.read_text())
                os.kill(pid, signal.SIGTERM)
                signalled.append(node)
            except (OSError, ValueError):
                continue
    return {"marked": marked, "signalled": signalled}


def resubmit(
    task: TaskDir, units: str = "quarantined", memory_mb: int | None = None, max_runtime: float | None = None
) -> dict:
    """Put quarantined (or failed) units back to pending and run them in a new stage ``resubmit-K``.

    ``memory_mb`` and ``max_runtime`` (seconds, the new target) change the limits of the new jobs.
    """
    task.require()
    if active_dags(task):
        raise TaskError("the task is still running; wait for it to end, or 'autosplit kill' it first")
    if units not in ("quarantined", "failed"):
        raise TaskError(f"--units must be quarantined or failed, not {units!r}")
    config = task.config
    if memory_mb is not None:
        config.limits.memory_mb = int(memory_mb)
    if max_runtime is not None:
        config.splitting.target_runtime = float(max_runtime)
        config.splitting.probe_seconds = min(config.splitting.probe_seconds, float(max_runtime) / 2)
    task.config_path.write_text(dump_config(config))
    with task.ledger() as ledger:
        released = ledger.release((units,) if units == "quarantined" else ("failed",))
        if released == 0:
            return {"released": 0, "stage": None}
        number = 1
        while ledger.get_meta(f"predag:resubmit-{number}") is not None:
            number += 1
        ledger.set_meta(state="resubmitted")
        ledger.clear_meta("killed", "error")
    key = f"resubmit-{number}"
    top = task.dag_dir / f"{key}-top.dag"
    dag = DagFile(
        node_status_file=str(task.dag_dir / f"{key}-top.status"),
        comment=f"autosplit task {task.name}: resubmission {number}",
    )
    dag.config_file = write_dag_config(task, f"{key}-top")
    dag.add(subdag_node(task, key))
    dag.final = finalize_node(task)
    dag.write(top)
    start(task, top)
    return {"released": released, "stage": key, "dag": str(top)}
