"""``autosplit finalize TASK $DAG_STATUS`` — the FINAL node's PRE script: close the ledger.

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
    task.require()
    with task.ledger() as ledger:
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
        leftover = ledger.units()
        open_ids = (
            leftover.filter(leftover["state"].is_in(["pending", "assigned"]))["unit_id"].to_list()
            if leftover.height
            else []
        )
        ledger.quarantine(open_ids, reason, only_states=("pending", "assigned"))
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
    return (0 if counts["done"] == counts["total"] else 1), counts


def main(task_dir: str, dag_status: str) -> int:
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
