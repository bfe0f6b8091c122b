"""``python -I -m autosplit.pipeline.finalize TASK $DAG_STATUS`` — the FINAL node's PRE script: close the ledger.

Runs once the DAG has ended, however it ended (DAGMan runs FINAL nodes after success, failure, abort and
removal). Units still pending or held by a job are quarantined with a reason that says why, so every unit of
the task ends done or quarantined. Exits 0 when every unit is done, else 1 (the DAG then counts as failed).
"""

from __future__ import annotations

import sys
import time

from autosplit.pipeline.taskdir import TaskDir

DAG_STATUS_NAMES = {
    0: "ok",
    1: "error",
    2: "node failed",
    3: "aborted",
    4: "removed",
    5: "cycle",
    6: "halted",
}


def run_finalize(task: TaskDir, dag_status: int) -> tuple[int, dict[str, int]]:
    """Close the task's scheduling: jobs bound but never reported are cancelled, units not done are
    quarantined with the reason the DAG ended; returns (exit code, unit counts)."""
    from autosplit.pipeline.scheduling import session

    task.require()
    with session(task) as s:
        ledger = s.ledger
        killed = ledger.get_meta("killed") is not None
        if killed:
            reason = "the task was killed before this unit was processed"
        elif dag_status == 0:
            reason = "still unfinished when the last stage ended"
        else:
            reason = f"the DAG ended ({DAG_STATUS_NAMES.get(dag_status, dag_status)}) before this unit was processed"
            error = ledger.get_meta("error")
            if error:
                reason += f": {error}"
        cancelled = s.scheduler.close(reason, time.time())
        ledger.record_changes(s.changes(), cancelled=cancelled, outcome="killed" if killed else "cancelled")
        s.save()
        counts = ledger.unit_counts()
        state = (
            "killed"
            if killed
            else ("completed" if counts["done"] == counts["total"] else "completed-with-quarantine")
        )
        if dag_status not in (0,) and not killed and counts["done"] < counts["total"]:
            state = "failed"
        ledger.set_meta(state=state, finished=str(time.time()), dag_status=str(dag_status))
    (task.root / "transfers.stop").touch()  # the stage-out agent, if any, exits once idle
    task.closed_marker.touch()
    return (0 if counts["done"] == counts["total"] else 1), counts


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m autosplit.pipeline.finalize TASK_DIR [DAG_STATUS]", file=sys.stderr)
        return 2
    task_dir, dag_status = args[0], (args[1] if len(args) == 2 else "0")
    try:
        status = int(dag_status)
    except ValueError:
        status = 1
    code, counts = run_finalize(TaskDir(task_dir), status)
    print(
        f"autosplit finalize: {counts['done']} of {counts['total']} units done, "
        f"{counts['quarantined']} quarantined",
        file=sys.stderr,
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
