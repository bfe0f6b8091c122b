"""Jobs whose DAG node DAGMan gave up on: their units go back to pending.

A node fails for good when its PRE or POST script failed on every retry (e.g. a postjob killed three
times): DAGMan marks it ``STATUS_ERROR`` in the node status file and never runs its scripts again. Its job
was bound but never accounted for, so the scheduler still counts it as running and the other chains wait
for its units for ever. :func:`release_orphans` — called by a chain node's PRE script while it waits —
finds such jobs and hands their units back as a lost job's.

Safety against a postjob of the same node coming late (a stale status file, a rescue DAG re-running the
node): the orphan is recorded as an ended job in the ledger, and a postjob never commits the outputs of a
job that already ended (:func:`autosplit.pipeline.postjob.run_postjob`).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from autosplit.pipeline.taskdir import TaskDir

# Seconds between two looks at the node status files (one look reads every DAG's file of the task).
CHECK_INTERVAL_SECONDS = {"local": 10.0, "condor": 120.0}
STAMP_NAME = ".orphans-checked"
ORPHAN_ATTEMPT = 1000  # the attempt number an orphan is recorded under (beyond any DAGMan retry)


def failed_nodes(task: TaskDir) -> dict[str, float]:
    """Nodes in ``STATUS_ERROR`` in any of the task's node status files -> that file's mtime (seconds)."""
    from autosplit.backends.local.errors import DagError
    from autosplit.backends.local.model import NodeStatus
    from autosplit.backends.local.statusfile import read_node_status

    found: dict[str, float] = {}
    for path in sorted(task.dag_dir.glob("*.status")):
        try:
            written = path.stat().st_mtime
            report = read_node_status(path)
        except (OSError, DagError):  # being replaced, or not written yet
            continue
        for name, ad in report.nodes.items():
            if int(ad.get("NodeStatus", -1)) == NodeStatus.ERROR:  # type: ignore[arg-type]
                found[name] = written
    return found


def _due(task: TaskDir, now: float) -> bool:
    """True at most once per check interval per task (the stamp file's mtime is the last look)."""
    stamp = task.dag_dir / STAMP_NAME
    interval = CHECK_INTERVAL_SECONDS.get(task.config.backend.kind, 60.0)
    try:
        if now - stamp.stat().st_mtime < interval:
            return False
    except FileNotFoundError:
        pass
    try:
        stamp.touch()
        os.utime(stamp, (now, now))
    except OSError:
        return False
    return True


def release_orphans(s, now: float | None = None, *, force: bool = False) -> list[str]:
    """Hand back the units of bound jobs whose node failed for good; returns those nodes.

    ``s`` is an open :func:`autosplit.pipeline.scheduling.session` (the scheduler and the ledger, locked).
    A node counts only when its status file was written after the job was bound (not a file left by an
    earlier run of the DAG)."""
    now = time.time() if now is None else now
    task: TaskDir = s.task
    if not force and not _due(task, now):
        return []
    ledger = s.ledger
    bound = ledger.bound_since()
    if not bound:
        return []
    errors = failed_nodes(task)
    released = []
    for node, created in bound.items():
        written = errors.get(node)
        if written is None or written <= created:
            continue
        reason = "its DAG node failed for good (its scripts failed on every retry); the units go back"
        result = s.scheduler.job_failed(node, now, reason=reason)
        if result.get("duplicate"):
            continue
        ledger.record_outcome(
            node,
            ORPHAN_ATTEMPT,
            decision=0,
            outcome="lost",
            message=reason,
            details={"elapsed_seconds": max(now - created, 0.0)},
            units=s.changes(),
            returned=len(result.get("returned", ())),
            job_state="failed",
        )
        released.append(node)
    if released:
        s.save()
        _log(task, f"released the units of {len(released)} job(s) whose node failed: {', '.join(released)}")
    return released


def _log(task: TaskDir, text: str) -> None:
    try:
        path = Path(task.logs_dir) / "bind.log"
        with open(path, "a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
    except OSError:
        pass
