"""``python -I -m autosplit.pipeline.bind TASK NODE`` — the PRE script of every chain node: bind work now.

It asks the task's scheduler for one job (:meth:`autosplit.Scheduler.next_jobs` with one free slot, named
after the node), records the binding in the ledger and writes the node's spec and submit file.

Exit codes: ``0`` a job is bound (DAGMan submits it); ``98`` (``BIND_DEFER``) nothing to hand out yet —
probes are still running, or every pending unit is in a running job that may hand some back — and DAGMan
runs this script again after the node's DEFER time (while waiting it also releases the units of jobs whose
node DAGMan gave up on, :mod:`autosplit.pipeline.orphans`); ``99`` (the node's ``PRE_SKIP``) the task is finished
or killed, so the node and its job are skipped; ``1`` the script itself failed (the reason is in the
ledger and ``logs/bind.log``; DAGMan retries the node).

Idempotent: a node already bound (DAGMan re-runs PRE scripts after a restart, and before a retry of the
node) gets the same job again, its files rewritten from the ledger.

The first thing it does is cheap: once the task is closed it exits 99 without importing anything beyond
the standard library, so the rest of every chain skips through quickly.
"""

from __future__ import annotations

import os
import sys
import time

PRE_SKIP = 99
DEFER = 98


def bind(task_dir: str, node: str) -> tuple[int, str]:
    """Bind a job to ``node``; returns (exit code, message)."""
    from autosplit.pipeline.taskdir import TaskDir

    task = TaskDir(task_dir)
    code, message = _bind(task, node)
    if code == 0 and task.config.backend.kind == "condor":
        # After the scheduler lock is released: a fit imports the estimators (about 0.7 CPU-s). The job is
        # bound already, and the fit only sharpens later requests: a failure is logged, not returned.
        from autosplit.backends.condor_requests import refresh_requests

        try:
            refresh_requests(task)
        except Exception as exc:  # noqa: BLE001
            _log(task_dir, f"{node}: resource requests not refitted: {type(exc).__name__}: {exc}")
    return code, message


def _bind(task, node: str) -> tuple[int, str]:
    from autosplit.pipeline.orphans import release_orphans
    from autosplit.pipeline.scheduling import session
    from autosplit.pipeline.stages import write_job

    config = task.config
    with session(task) as s:
        ledger = s.ledger
        job = ledger.job(node)
        if job is not None:
            if job["state"] != "planned":
                return PRE_SKIP, f"{node} already ran"
            ids = ledger.job_unit_ids(node)
            write_job(
                task,
                node,
                stage=job["stage"],
                unit_ids=ids,
                soft=job["soft_limit_seconds"],
                hard=job["hard_limit_seconds"],
                memory_mb=job["memory_mb"] or config.limits.memory_mb,
            )
            return 0, f"{node} already bound to {len(ids)} unit(s); files rewritten"
        if ledger.get_meta("killed") is not None:
            return PRE_SKIP, "the task was killed"
        sched = s.scheduler
        requests = sched.next_jobs(free_slots=1, now=time.time(), names=[node])
        if not requests and not sched.finished and release_orphans(s):  # units held by a dead node
            requests = sched.next_jobs(free_slots=1, now=time.time(), names=[node])
        if not requests:
            changes = s.changes()
            if changes.ids.size:
                ledger.record_changes(changes)
            s.save()
            if sched.finished:
                task.closed_marker.touch()
                return PRE_SKIP, "nothing left to do"
            return DEFER, "waiting for running jobs"
        request = requests[0]
        memory = config.limits.memory_mb
        write_job(
            task,
            node,
            stage=request.stage,
            unit_ids=request.rows,
            soft=request.soft_limit_seconds,
            hard=request.hard_limit_seconds,
            memory_mb=memory,
        )
        ledger.bind_job(
            node,
            stage=request.stage,
            kind="alone" if request.alone else ("probe" if request.stage.startswith("probe") else "bulk"),
            unit_ids=request.rows,
            predicted_seconds=request.predicted_seconds,
            soft_limit_seconds=request.soft_limit_seconds,
            hard_limit_seconds=request.hard_limit_seconds,
            memory_mb=memory,
            units=s.changes(),
        )
        s.save()
        soft = "none" if request.soft_limit_seconds is None else f"{request.soft_limit_seconds:.0f} s"
        return 0, f"{node}: {request.stage} job of {request.n_units} unit(s), soft limit {soft}"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m autosplit.pipeline.bind TASK_DIR NODE", file=sys.stderr)
        return 2
    task_dir, node = args
    if os.path.exists(os.path.join(task_dir, "dag", "closed")):
        return PRE_SKIP
    # One BLAS thread (binding does no linear algebra): numpy otherwise starts one per core when it is
    # imported, about 0.06 CPU-s of every PRE script.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    try:
        code, message = bind(task_dir, node)
    except Exception as exc:  # noqa: BLE001 - any failure is recorded, and DAGMan retries the node
        code, message = 1, f"failed: {type(exc).__name__}: {exc}"
        _record_error(task_dir, f"bind {node}: {message}")
    if code != DEFER:  # waiting is logged by DAGMan's DEFER lines; every poll here would flood the log
        _log(task_dir, f"{node}: {message}" if code != 1 else f"{node} {message}")
        print(f"autosplit bind {node}: {message}", file=sys.stderr)
    return code


def _record_error(task_dir: str, message: str) -> None:
    try:
        from autosplit.pipeline.taskdir import TaskDir

        with TaskDir(task_dir).ledger() as ledger:
            ledger.set_meta(error=message[:2000])
    except Exception:  # noqa: BLE001 - the log still has it
        pass


def _log(task_dir: str, text: str) -> None:
    try:
        logs = os.path.join(task_dir, "logs")
        os.makedirs(logs, mode=0o700, exist_ok=True)
        with open(os.path.join(logs, "bind.log"), "a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
