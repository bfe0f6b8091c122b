"""The monitor's JSON documents, each read from the ledger by the code the command line uses.

* :func:`status_document` is ``autosplit status --json`` (:func:`autosplit.pipeline.status.task_status`);
* :func:`lumi_reports` are the lists ``autosplit report`` writes (:func:`autosplit.pipeline.report.lumi_lists`),
  computed in memory;
* :func:`jobs_page`, :func:`runtimes` and :func:`timeline` present the ledger's jobs and attempts tables:
  the plan's predicted runtime and limits of every job, and what each attempt measured.

Every function takes a task directory (the monitor passes a read-only one) and returns JSON-ready data:
non-finite floats become ``None`` so the documents are valid JSON.
"""

from __future__ import annotations

import math
import sqlite3
from collections import defaultdict
from typing import Any

from autosplit.errors import AutosplitError
from autosplit.pipeline.report import lumi_lists
from autosplit.pipeline.status import FINAL_STATES, job_states, task_status
from autosplit.pipeline.taskdir import TaskDir

#: What reading a task can raise while it is being written, moved or removed.
READ_ERRORS = (AutosplitError, sqlite3.Error, OSError)
#: Attempt fields shown with each job (wall/CPU in seconds, memory in bytes, time as a Unix timestamp).
ATTEMPT_FIELDS = (
    "attempt",
    "outcome",
    "exit_code",
    "message",
    "site",
    "wall_seconds",
    "cpu_seconds",
    "peak_rss_bytes",
    "events",
    "units_done",
    "units_returned",
    "elapsed_seconds",
    "time",
)
#: Job fields from the plan (predicted runtime and limits in seconds, memory request in MB), and how the
#: job ended (its last outcome and when, as a Unix timestamp; None while it is not over).
JOB_FIELDS = (
    "node",
    "stage",
    "kind",
    "outcome",
    "ended",
    "n_units",
    "events",
    "predicted_seconds",
    "soft_limit_seconds",
    "hard_limit_seconds",
    "memory_mb",
    "attempts",
)


#: The unit counts a task list entry carries (see :class:`autosplit.web.schemas.Units`).
_UNIT_COUNTS = ("total", "done", "pending", "quarantined", "in_jobs")


def clean(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by None, recursively (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def status_document(task: TaskDir) -> dict[str, Any]:
    """The task's status: exactly what ``autosplit status --json`` prints."""
    return clean(task_status(task))


def is_final(status: dict[str, Any]) -> bool:
    """True when the task's state can no longer change by itself (completed, failed, killed)."""
    return status.get("state") in FINAL_STATES


def task_entry(task_id: str, task: TaskDir) -> dict[str, Any]:
    """One line of the task list: state, units and progress (done / total), the latest stage, ETA.

    A task that cannot be read right now (a directory being removed, a damaged ledger) is listed with
    the state ``unreadable`` and the error, so one bad directory does not hide the others.
    """
    try:
        status = status_document(task)
    except READ_ERRORS as exc:
        return {
            "id": task_id,
            "name": task.root.name,
            "state": "unreadable",
            "final": False,
            "units": None,
            "progress": 0.0,
            "stage": None,
            "remaining_seconds": None,
            "error": str(exc),
        }
    units = status.get("units")
    if not isinstance(units, dict) or not all(isinstance(units.get(k), int) for k in _UNIT_COUNTS):
        units = None  # a document without the unit counts: listed, without progress
    stages = status.get("stages")
    return {
        "id": task_id,
        "name": status.get("task") or task.root.name,
        "state": status.get("state") or "unknown",
        "final": is_final(status),
        "units": units,
        "progress": units["done"] / units["total"] if units and units["total"] else 0.0,
        "stage": next(reversed(stages), None) if isinstance(stages, dict) else None,
        "remaining_seconds": status.get("remaining_seconds"),
        "error": status.get("error"),
    }


def jobs_page(
    task: TaskDir, *, stage: str | None = None, state: str | None = None, offset: int = 0, limit: int = 100
) -> dict[str, Any]:
    """The task's jobs in plan order, optionally of one ``stage`` and one display ``state``, paged.

    The display state is the one ``autosplit status`` counts per stage (``done``, ``running``, ``queued``,
    ``soft-stopped``, ``unit-failure``, ...), so the totals of a filter match the status document's tallies.
    Each job carries its last attempt (or None).
    """
    with task.ledger() as ledger:
        jobs = ledger.jobs()
        attempts = ledger.attempts()
    states = job_states(task, jobs, attempts) if jobs.height else {}
    last: dict[str, dict[str, Any]] = {}
    for row in attempts.iter_rows(named=True):
        last[row["node"]] = {k: row.get(k) for k in ATTEMPT_FIELDS}
    selected = []
    for job in jobs.iter_rows(named=True):
        shown = states.get(job["node"], "queued")
        if (stage is not None and job["stage"] != stage) or (state is not None and shown != state):
            continue
        selected.append(
            {k: job.get(k) for k in JOB_FIELDS}
            | {
                "state": shown,
                "ledger_state": job["state"],
                "kill_requested": bool(job["kill_requested"]),
                "last_attempt": last.get(job["node"]),
            }
        )
    return clean(
        {"total": len(selected), "offset": offset, "limit": limit, "jobs": selected[offset : offset + limit]}
    )


def lumi_reports(task: TaskDir) -> dict[str, Any]:
    """``processedLumis``, ``notFinishedLumis`` and ``quarantinedLumis`` in golden-JSON form, with their
    lumi counts: what ``autosplit report`` writes, computed from the ledger without writing a file."""
    with task.ledger() as ledger:
        units = ledger.units()
    lists = {name.removesuffix(".json"): mask for name, mask in lumi_lists(units).items()}
    return {
        "task": task.name,
        "lumis": {name: mask.n_lumis for name, mask in lists.items()},
        **{name: mask.to_dict() for name, mask in lists.items()},
    }


def runtimes(task: TaskDir) -> dict[str, Any]:
    """Predicted and measured runtimes: per job the plan's prediction and limits, per attempt the
    measured wall and CPU seconds; with the task's target runtime and probe soft limit (seconds)."""
    config = task.config
    with task.ledger() as ledger:
        jobs = ledger.jobs()
        attempts = ledger.attempts()
    measured: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in attempts.iter_rows(named=True):
        measured[row["node"]].append({k: row.get(k) for k in ATTEMPT_FIELDS if k != "message"})
    rows = [
        {
            k: job.get(k)
            for k in (
                "node",
                "stage",
                "kind",
                "predicted_seconds",
                "soft_limit_seconds",
                "hard_limit_seconds",
            )
        }
        | {"measured": measured.get(job["node"], [])}
        for job in jobs.iter_rows(named=True)
    ]
    return clean(
        {
            "task": task.name,
            "target_seconds": config.target_seconds,
            "probe_seconds": config.probe_seconds,
            "grace_seconds": config.grace_seconds,
            "jobs": rows,
        }
    )


def timeline(task: TaskDir) -> dict[str, Any]:
    """Units done over time: one point per accepted job report (Unix time, cumulative units done),
    starting at the task's creation with 0."""
    with task.ledger() as ledger:
        attempts = ledger.attempts()
        total = ledger.unit_counts()["total"]
        created = ledger.get_meta("created")
    points = []
    if created is not None:
        points.append({"time": float(created), "units_done": 0})
    done = 0
    for when, units_done in attempts.select("time", "units_done").iter_rows():
        if units_done:
            done += int(units_done)
            points.append({"time": float(when), "units_done": done})
    return clean({"task": task.name, "total_units": total, "points": points})
