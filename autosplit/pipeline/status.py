"""``autosplit status``: one consistent picture of a task, read from the ledger (and the DAG status files).

Unlike CRAB's status (assembled from a 5-minute cache of job logs), every number here comes from the
ledger, the record every decision is made from, so units, stages and reports always agree. Node status
files only add what the ledger cannot know: which planned jobs are running right now.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from autosplit._condor import condor_module
from autosplit.errors import MissingDependencyError
from autosplit.pipeline.taskdir import TaskDir

FINAL_STATES = ("completed", "completed-with-quarantine", "failed", "killed")
_OK_OUTCOMES = ("ok", "soft-stopped", "wall-time", "success")


def _running_nodes(task: TaskDir) -> dict[str, str]:
    """Node -> 'running' | 'pre' | 'post' | 'queued' from the DAG node status files (best effort)."""
    names = {2: "pre", 3: "running", 4: "post"}
    found: dict[str, str] = {}
    try:
        classad2 = condor_module("classad2", "reading DAG node status files")
    except MissingDependencyError:  # the condor extra is not installed: no node states, no error
        return found
    for path in sorted(task.dag_dir.glob("*.status")):
        try:
            ads = classad2.parseAds(path.read_text())
            for ad in ads:
                if ad.get("Type") == "NodeStatus":
                    status = int(ad.get("NodeStatus", 0))
                    if status in names:
                        found[str(ad.get("Node"))] = names[status]
        except Exception:  # a status file being rewritten or half-written: skip it this time
            continue
    return found


def backend_state(task: TaskDir) -> dict[str, Any]:
    from autosplit.backends.background import running_pid

    pid = running_pid(task.top_dag) if task.top_dag.exists() else None
    resubmits = sorted(task.dag_dir.glob("resubmit-*-top.dag"))
    for dag in resubmits:
        pid = pid or running_pid(dag)
    return {"kind": task.config.backend.kind, "running": pid is not None, "pid": pid}


def job_states(task: TaskDir, jobs: pl.DataFrame, attempts: pl.DataFrame) -> dict[str, str]:
    """Display state of every job: its last attempt's outcome, or what the DAG says about it now."""
    last: dict[str, str] = {}
    if attempts.height:
        for node, outcome in attempts.select("node", "outcome").iter_rows():
            last[node] = outcome
    live = _running_nodes(task)
    states = {}
    for node, state in jobs.select("node", "state").iter_rows():
        if state != "planned":
            outcome = last.get(node, state)
            states[node] = {"ok": "done", "success": "done"}.get(outcome, outcome)
        elif node in live:
            states[node] = live[node]
        elif last.get(node) == "retry":
            states[node] = "retrying"
        else:
            states[node] = "queued"
    return states


def task_status(task: TaskDir) -> dict[str, Any]:
    """Everything ``autosplit status`` shows, as JSON-ready data."""
    task.require()
    with task.ledger() as ledger:
        counts = ledger.unit_counts()
        units = ledger.units()
        jobs = ledger.jobs()
        attempts = ledger.attempts()
        stages = ledger.stages()
        meta = {k: ledger.get_meta(k) for k in ("state", "error", "killed", "created", "finished")}
    states = job_states(task, jobs, attempts) if jobs.height else {}
    site = task.config.backend.site
    stage_rows: dict[str, Any] = {}
    for stage in stages:
        name = stage["name"]
        nodes = jobs.filter(pl.col("stage") == name)["node"].to_list() if jobs.height else []
        tally = Counter(states.get(n, "queued") for n in nodes)
        stage_rows[name] = {
            "jobs": len(nodes),
            "states": dict(sorted(tally.items())),
            "state": stage["state"],
        }
    events_total = int(units["events"].sum()) if units.height else 0
    events_done = int(units.filter(pl.col("state") == "done")["events"].sum()) if units.height else 0
    backend = backend_state(task)
    state = meta["state"] or "submitted"
    if state not in FINAL_STATES:
        state = "running" if backend["running"] else ("submitted" if not attempts.height else "stopped")
    out: dict[str, Any] = {
        "task": task.name,
        "directory": str(task.root),
        "state": state,
        "error": meta["error"],
        "backend": backend,
        "units": {k: counts[k] for k in ("total", "done", "pending", "quarantined")}
        | {"in_jobs": counts["assigned"]},
        "events": {"total": events_total, "done": events_done},
        "stages": stage_rows,
        "estimates": _estimates(stages),
        "sites": _sites(attempts, states, site),
        "errors": _errors(attempts),
        "quarantine_reasons": _quarantine_reasons(units),
        "remaining_seconds": _remaining(task, stages, units, counts),
    }
    transfers = _transfers(task)
    if transfers is not None:
        out["transfers"] = transfers
    return out


def _estimates(stages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The latest stage's view of the cost model (seconds per event with its interval, memory, output)."""
    for stage in reversed(stages):
        info = stage.get("info") or {}
        if "seconds_per_event" in info:
            model = info.get("model", {})
            return {
                "from_stage": stage["name"],
                "seconds_per_event": info["seconds_per_event"],
                "overhead_seconds": model.get("overhead_seconds"),
                "shared_cv": model.get("shared_cv"),
                "jobs_measured": model.get("jobs"),
                "output_bytes_per_event": info.get("output_bytes_per_event"),
                "memory_bytes_per_event": info.get("memory_bytes_per_event"),
                "memory_base_bytes": info.get("memory_base_bytes"),
            }
    return None


def _sites(attempts: pl.DataFrame, states: dict[str, str], running_site: str) -> list[dict[str, Any]]:
    """Per site: runtime and waste (seconds of failed attempts), running, successful and failed attempts."""
    rows: dict[str, dict[str, Any]] = {}
    if attempts.height:
        for row in attempts.iter_rows(named=True):
            site = row["site"] or "unknown"
            entry = rows.setdefault(
                site,
                {
                    "site": site,
                    "runtime_seconds": 0.0,
                    "waste_seconds": 0.0,
                    "running": 0,
                    "successful": 0,
                    "failed": 0,
                },
            )
            wall = row["wall_seconds"] or 0.0
            entry["runtime_seconds"] += wall
            if row["outcome"] in _OK_OUTCOMES:
                entry["successful"] += 1
            else:
                entry["failed"] += 1
                entry["waste_seconds"] += wall
    running = sum(1 for s in states.values() if s == "running")
    if running:
        rows.setdefault(
            running_site,
            {
                "site": running_site,
                "runtime_seconds": 0.0,
                "waste_seconds": 0.0,
                "running": 0,
                "successful": 0,
                "failed": 0,
            },
        )["running"] += running
    return sorted(rows.values(), key=lambda r: r["site"])


def _errors(attempts: pl.DataFrame) -> list[dict[str, Any]]:
    if attempts.height == 0:
        return []
    bad = attempts.filter(~pl.col("outcome").is_in(list(_OK_OUTCOMES) + ["killed"]))
    if bad.height == 0:
        return []
    out = []
    for code, group in bad.group_by("exit_code", maintain_order=True):
        messages = [m for m in group["message"].unique(maintain_order=True).to_list() if m][:3]
        out.append({"exit_code": code[0], "count": group.height, "messages": messages})
    return sorted(out, key=lambda e: -e["count"])


def _quarantine_reasons(units: pl.DataFrame) -> list[dict[str, Any]]:
    if units.height == 0:
        return []
    q = units.filter(pl.col("state") == "quarantined")
    if q.height == 0:
        return []
    counts = q.group_by("reason").len().sort("len", descending=True)
    return [{"reason": r, "units": n} for r, n in counts.head(5).iter_rows()]


def _remaining(
    task: TaskDir, stages: list[dict[str, Any]], units: pl.DataFrame, counts: dict[str, int]
) -> float | None:
    """Rough seconds until the task ends: predicted CPU of the units left, spread over the job slots."""
    if counts["pending"] == 0:
        return 0.0
    for stage in reversed(stages):
        info = stage.get("info") or {}
        spe = (info.get("seconds_per_event") or {}).get("estimate")
        if spe:
            left = units.filter(pl.col("state").is_in(["pending", "assigned"]))["events"].sum()
            return float(spe) * float(left) / max(task.config.max_jobs, 1)
    return None


def _transfers(task: TaskDir) -> dict[str, Any] | None:
    db = task.root / "transfers.sqlite"
    if not db.exists():
        return None
    try:
        from autosplit.aso import task_progress

        progress = task_progress(db, task.name)
    except Exception:
        return None
    return {**progress.to_dict(), "line": progress.line()}


def wait_for_end(task: TaskDir, timeout: float, poll: float = 0.5) -> dict[str, Any]:
    """Poll until the task reaches a final state (or ``timeout`` seconds pass); returns the last status."""
    deadline = time.monotonic() + timeout
    while True:
        status = task_status(task)
        if status["state"] in FINAL_STATES or time.monotonic() > deadline:
            return status
        time.sleep(poll)


def dump(status: dict[str, Any], path: str | Path) -> None:
    Path(path).write_text(json.dumps(status, indent=2, default=str))
