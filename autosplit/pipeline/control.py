"""Acting on a task: start or resume it, kill it (or some jobs), resubmit what it gave up on.

Every action goes through the ledger first, so status and report describe it correctly at once.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from autosplit.backends.background import request_remove, running_pid, start_background
from autosplit.pipeline.config import dump_config
from autosplit.pipeline.stages import finalize_node
from autosplit.pipeline.taskdir import TaskDir, TaskError


def start(task: TaskDir, dag: Path | None = None) -> int | None:
    """Hand the DAG to the task's backend; returns the local executor's pid (None on condor).

    On condor a DAG that is still in the queue is followed, never submitted a second time; a DAG that ran
    before is resumed from its rescue DAG (nodes done before are not run again)."""
    dag = dag or task.top_dag
    if task.config.backend.kind == "condor":
        return _start_condor(task, dag)
    return start_background(dag, log_path=task.dag_dir / f"{dag.stem}.executor.log")


def _start_condor(task: TaskDir, dag: Path) -> None:
    from autosplit.backends.condor import dag_is_active, submit_dag
    from autosplit.backends.condor_submit import prepare_sandbox

    with task.ledger() as ledger:
        cluster = ledger.get_meta("condor_cluster")
        submitted_dag = ledger.get_meta("condor_dag")
    if cluster and dag_is_active(cluster):
        return None  # running: follow it
    prepare_sandbox(task)  # a sandbox above the limit stops here, before anything reaches the pool
    resume = submitted_dag == str(dag) and any(dag.parent.glob(f"{dag.name}.rescue[0-9][0-9][0-9]"))
    if resume:
        _reopen(task)
    new = submit_dag(
        dag,
        max_jobs=task.config.backend.max_jobs,  # None: no cap on a pool (never the submit host's cores)
        batch_name=task.name,
        resume=resume,
        attributes={
            "AutosplitTaskDir": _classad_string(str(task.root)),
            "AutosplitDagTask": _classad_string(task.name),
        },
    )
    with task.ledger() as ledger:
        ledger.set_meta(condor_cluster=str(new), condor_dag=str(dag))
        if resume:
            ledger.set_meta(condor_resumed=str(new))
    return None


def _reopen(task: TaskDir) -> int:
    """Before a condor DAG is resumed from its rescue DAG: units its FINAL node quarantined only because
    the DAG ended early (not a kill, not their own failures) go back to pending, so the resumed DAG's
    remaining nodes bind them; returns how many."""
    import numpy as np

    from autosplit.pipeline.scheduling import session

    with session(task) as s:
        if s.ledger.get_meta("killed") is not None:
            return 0  # a killed task comes back with 'autosplit resubmit'
        table = s.ledger.units("quarantined")
        if table.height:
            table = table.filter(table["reason"].str.starts_with("the DAG ended"))
        ids = table["unit_id"].to_numpy().astype(np.int64) if table.height else np.zeros(0, np.int64)
        released = s.scheduler.requeue(ids, time.time()) if ids.size else 0
        if released:
            s.ledger.record_changes(s.changes())
            s.save()
        s.ledger.set_meta(state="resumed")
        s.ledger.clear_meta("error")
    task.closed_marker.unlink(missing_ok=True)
    return released


def _classad_string(text: str) -> str:
    from autosplit._condor import condor_module

    return condor_module("classad2", "talking to the schedd").quote(text)


def active_dags(task: TaskDir) -> list[Path]:
    """DAGs of this task that are running (local: their executor; condor: the DAGMan job in the queue)."""
    if task.config.backend.kind == "condor":
        from autosplit.backends.condor import dag_is_active

        with task.ledger() as ledger:
            cluster = ledger.get_meta("condor_cluster")
            dag = ledger.get_meta("condor_dag")
        return [Path(dag or task.top_dag)] if cluster and dag_is_active(cluster) else []
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
    if task.config.backend.kind == "condor":
        from autosplit.backends.condor import act, dag_is_active, remove_node_jobs, stop_jobs, task_jobs

        if nodes is None:
            with task.ledger() as ledger:
                cluster = ledger.get_meta("condor_cluster")
            if cluster and dag_is_active(cluster):
                act(int(cluster), "remove", "autosplit kill")  # CondorError when the schedd did not
                return {"marked": marked, "signalled": [], "removed_cluster": int(cluster)}
            return {"marked": marked, "signalled": [], "removed_cluster": None}
        # Some jobs, through the schedd (never a pid: the job runs on another host): running ones get
        # AutosplitStopRequested, which their wrapper reads over chirp (stop at the next unit boundary);
        # ones that have not started are removed.
        states = {j.get("AutosplitNode"): j["state"] for j in task_jobs(task.name)}
        waiting = [n for n in nodes if states.get(n) in ("idle", "held")]
        removed = remove_node_jobs(task.name, waiting, "autosplit kill --jobs") if waiting else []
        signalled = stop_jobs(task.name, [n for n in nodes if n not in removed and n in states])
        return {"marked": marked, "signalled": signalled, "removed": removed}
    if nodes is None:
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
    """Give quarantined units (all, or ``failed``: those a failure or a lost job was blamed on) a fresh
    start and run them in a new DAG ``resubmit-K`` (chains like the task's own).

    ``memory_mb`` and ``max_runtime`` (seconds, the new target) change the limits of the new jobs.
    """
    import numpy as np

    from autosplit.pipeline.scheduling import session, state_path
    from autosplit.pipeline.stages import chain_count, chain_dag, chain_length

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
        if config.splitting.probe_seconds is not None:  # unset, it follows the new target
            config.splitting.probe_seconds = min(config.splitting.probe_seconds, float(max_runtime) / 2)
    if memory_mb is not None or max_runtime is not None:
        task.config_path.write_text(dump_config(config))
        state_path(task).unlink(missing_ok=True)  # rebuilt with the new limits
    with session(task) as s:
        table = s.ledger.units("quarantined")
        if units == "failed" and table.height:
            table = table.filter((table["failures"] > 0) | (table["crashes"] > 0))
        ids = table["unit_id"].to_numpy().astype(np.int64) if table.height else np.zeros(0, np.int64)
        released = s.scheduler.requeue(ids, time.time())
        if released == 0:
            return {"released": 0, "stage": None}
        s.ledger.record_changes(s.changes())
        s.save()
        s.ledger.set_meta(state="resubmitted")
        s.ledger.clear_meta("killed", "error")
    task.closed_marker.unlink(missing_ok=True)
    number = len(list(task.dag_dir.glob("resubmit-*-top.dag"))) + 1
    key = f"resubmit-{number}"
    top = task.dag_dir / f"{key}-top.dag"
    n_chains = chain_count(task)
    dag = chain_dag(task, key, n_chains, chain_length(released, n_chains), next_tail=f"{key}-tail-1")
    dag.final = finalize_node(task)
    dag.write(top)
    start(task, top)
    return {"released": released, "stage": key, "dag": str(top)}
