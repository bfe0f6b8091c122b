"""``autosplit status``: one consistent picture of a task, read from the ledger (and the DAG status files).

Unlike CRAB's status (assembled from a 5-minute cache of job logs), every number here comes from the
ledger, the record every decision is made from, so units, stages and reports always agree. Node status
files only add what the ledger cannot know: which planned jobs are running right now.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import polars as pl

from autosplit.pipeline.taskdir import TaskDir

FINAL_STATES = ("completed", "completed-with-quarantine", "failed", "killed")
_OK_OUTCOMES = ("ok", "soft-stopped", "wall-time", "success")


_LIVE_NAMES = {2: "pre", 3: "running", 4: "post"}
# Only nodes in PRE (2), SUBMITTED (3) or POST (4) matter: one regex over the file finds them, in the layout
# both DAGMan and the local executor write.
_LIVE_AD = re.compile(r'\n  Node = "((?:[^"\\]|\\.)*)";\n  NodeStatus = ([234]);')
_STATUS_FILES: dict[str, tuple[tuple[int, int], dict[str, str]]] = {}


def _live_nodes_of(path: Path) -> dict[str, str]:
    """Node -> 'pre' | 'running' | 'post' of one node status file, re-read only when the file changed."""
    try:
        info = path.stat()
    except OSError:
        return {}
    key = (info.st_mtime_ns, info.st_size)
    cached = _STATUS_FILES.get(str(path))
    if cached is not None and cached[0] == key:
        return cached[1]
    try:
        text = path.read_text()
    except OSError:
        return cached[1] if cached else {}
    found: dict[str, str] = {}
    if 'Type = "NodeStatus"' in text and '\n  Node = "' not in text:
        # Another layout: the general reader (slower, still linear).
        from autosplit.backends.local.statusfile import read_node_status

        try:
            for name, ad in read_node_status(path).nodes.items():
                status = int(ad.get("NodeStatus", 0))  # type: ignore[arg-type]
                if status in _LIVE_NAMES:
                    found[name] = _LIVE_NAMES[status]
        except Exception:  # a status file being rewritten or half-written: keep what we had
            return cached[1] if cached else {}
    else:
        for match in _LIVE_AD.finditer(text):
            name = match.group(1)
            found[name.replace("\\", "") if "\\" in name else name] = _LIVE_NAMES[int(match.group(2))]
    _STATUS_FILES[str(path)] = (key, found)
    return found


def _running_nodes(task: TaskDir) -> dict[str, str]:
    """Node -> 'running' | 'pre' | 'post' from the DAG node status files (best effort; each file is read
    again only when it changed)."""
    found: dict[str, str] = {}
    for path in sorted(task.dag_dir.glob("*.status")):
        found.update(_live_nodes_of(path))
    return found


def backend_state(task: TaskDir) -> dict[str, Any]:
    if task.config.backend.kind == "condor":  # the schedd knows (DAGMan job, node jobs, chirp progress)
        from autosplit.backends.condor import backend_state as condor_state

        return condor_state(task)
    from autosplit.backends.background import running_pid

    pid = running_pid(task.top_dag) if task.top_dag.exists() else None
    resubmits = sorted(task.dag_dir.glob("resubmit-*-top.dag"))
    for dag in resubmits:
        pid = pid or running_pid(dag)
    return {"kind": task.config.backend.kind, "running": pid is not None, "pid": pid}


def _display(state: str, outcome: str | None, last: str | None, live: str | None, ended: str | None) -> str:
    """A job's display state: its last attempt's outcome once it ended; a cancelled job (bound, never
    reported: its DAG ended) as ``cancelled``/``killed``; a job still planned as what the DAG says about it
    now, or — once the task itself ended (``ended``: ``killed``/``cancelled``) — as never run."""
    if state != "planned":
        if last is None and state == "killed":
            return outcome or "killed"
        shown = last or state
        return {"ok": "done", "success": "done"}.get(shown, shown)
    if live is not None:
        return live
    if ended is not None:
        return ended
    if last == "retry":
        return "retrying"
    return "queued"


def _ended_as(meta_state: str | None, killed: str | None) -> str | None:
    if killed is not None:
        return "killed"
    if meta_state in FINAL_STATES:
        return "cancelled"
    return None


def job_states(task: TaskDir, jobs: pl.DataFrame, attempts: pl.DataFrame) -> dict[str, str]:
    """Display state of every job: its last attempt's outcome, or what the DAG says about it now."""
    last: dict[str, str] = {}
    if attempts.height:
        for node, outcome in attempts.select("node", "outcome").iter_rows():
            last[node] = outcome
    live = _running_nodes(task)
    with task.ledger() as ledger:
        ended = _ended_as(ledger.get_meta("state"), ledger.get_meta("killed"))
    states = {}
    outcomes = jobs["outcome"].to_list() if "outcome" in jobs.columns else [None] * jobs.height
    for (node, state), outcome in zip(jobs.select("node", "state").iter_rows(), outcomes, strict=True):
        states[node] = _display(state, outcome, last.get(node), live.get(node), ended)
    return states


_CACHE: dict[str, tuple[Any, dict[str, Any]]] = {}


def _ledger_key(task: TaskDir) -> tuple:
    """Changes as the file system sees them: every commit appends to the write-ahead log (or, once
    checkpointed, rewrites the database file), so an unchanged (mtime, size) of both means nothing new."""
    key = []
    for path in (task.ledger_path, task.ledger_path.with_name(task.ledger_path.name + "-wal")):
        try:
            info = path.stat()
            key.append((info.st_mtime_ns, info.st_size, info.st_ino))
        except OSError:
            key.append(None)
    return tuple(key)


def forget(task: TaskDir) -> None:
    """Drop what this process remembers of a task's last status."""
    _CACHE.pop(str(task.root), None)


def _ledger_part(ledger: Any) -> dict[str, Any]:
    """Everything ``status`` takes from the ledger, one query per summary."""
    meta = {k: ledger.get_meta(k) for k in ("state", "error", "killed", "created", "finished", "estimate")}
    return {
        "meta": meta,
        "units": ledger.unit_summary(),
        "stages": ledger.stages(),
        "jobs": ledger.job_summary(),
        "planned": ledger.planned_jobs(),
        "attempts": ledger.attempt_summary(),
        "errors": _errors(ledger),
        "quarantine_reasons": [{"reason": r, "units": n} for r, n in ledger.quarantine_reasons(5)],
    }


def task_status(task: TaskDir) -> dict[str, Any]:
    """Everything ``autosplit status`` shows, as JSON-ready data.

    Incremental when called again in the same process (``autosplit run`` polls it): the ledger is read
    again only when something was committed to it since the last call, and a node status file only when
    it changed; with nothing new a call is a few ``stat`` calls."""
    task.require()
    key = _ledger_key(task)
    cached = _CACHE.get(str(task.root))
    if cached is not None and cached[0] == key:
        data = cached[1]
    else:
        with task.ledger() as ledger:
            data = _ledger_part(ledger)
        _CACHE[str(task.root)] = (key, data)
    meta = data["meta"]
    estimate = json.loads(meta["estimate"]) if meta["estimate"] else None
    site = task.config.backend.site
    live = _running_nodes(task) if data["planned"] else {}
    ended = _ended_as(meta["state"], meta["killed"])
    stage_rows: dict[str, Any] = {}
    tallies: dict[str, Counter] = {}
    for stage, state, outcome, last, n in data["jobs"]:
        tallies.setdefault(stage, Counter())[_display(state, outcome, last, None, ended)] += n
    running = 0
    for node, stage, last in data["planned"]:
        shown = _display("planned", None, last, live.get(node), ended)
        running += shown == "running"
        tallies.setdefault(stage, Counter())[shown] += 1
    for stage in data["stages"]:
        tally = tallies.get(stage["name"], Counter())
        stage_rows[stage["name"]] = {
            "jobs": sum(tally.values()),
            "states": dict(sorted(tally.items())),
            "state": stage["state"],
        }
    by_state = data["units"]
    total = sum(n for n, _ in by_state.values())
    counts = {
        "total": total,
        "done": by_state["done"][0],
        "pending": by_state["pending"][0] + by_state["assigned"][0],
        "quarantined": by_state["quarantined"][0],
        "assigned": by_state["assigned"][0],
    }
    events_total = sum(e for _, e in by_state.values())
    events_done = by_state["done"][1]
    backend = backend_state(task)
    state = meta["state"] or "submitted"
    if state not in FINAL_STATES:
        state = "running" if backend["running"] else ("submitted" if not data["attempts"] else "stopped")
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
        "estimates": _estimates(estimate),
        "sites": _sites(data["attempts"], running, site),
        "errors": data["errors"],
        "quarantine_reasons": data["quarantine_reasons"],
        "remaining_seconds": _remaining(estimate, counts, events_total - events_done),
    }
    transfers = _transfers(task)
    if transfers is not None:
        out["transfers"] = transfers
    return out


def _estimates(info: dict[str, Any] | None) -> dict[str, Any] | None:
    """The scheduler's view of the cost (seconds per event with its interval, overhead, spread) and of the
    pool (concurrency, failure rate), as last saved."""
    if not info or "seconds_per_event" not in info:
        return None
    model = info.get("model", {})
    return {
        "seconds_per_event": info["seconds_per_event"],
        "remaining_cpu_seconds": info.get("remaining_cpu_seconds"),
        "overhead_seconds": model.get("overhead_seconds"),
        "shared_cv": model.get("shared_cv"),
        "unit_cv": model.get("unit_cv"),
        "jobs_measured": model.get("jobs"),
        "concurrency": info.get("concurrency"),
        "packing_target_seconds": info.get("packing_target_seconds"),
        "failure_cap_seconds": info.get("failure_cap_seconds"),
        "failure_rate_per_hour": info.get("failure_rate_per_hour"),
    }


def _sites(attempts: list[tuple], running: int, running_site: str) -> list[dict[str, Any]]:
    """Per site: runtime and waste (seconds of failed attempts), running, successful and failed attempts."""
    rows: dict[str, dict[str, Any]] = {}

    def entry(site: str) -> dict[str, Any]:
        return rows.setdefault(
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

    for site, outcome, _code, n, wall in attempts:
        row = entry(site or "unknown")
        row["runtime_seconds"] += wall
        if outcome in _OK_OUTCOMES:
            row["successful"] += n
        else:
            row["failed"] += n
            row["waste_seconds"] += wall
    if running:
        entry(running_site)["running"] += running
    return sorted(rows.values(), key=lambda r: r["site"])


def _errors(ledger: Any) -> list[dict[str, Any]]:
    """Failed attempts by exit code (count, up to three distinct messages), most frequent first."""
    counts: dict[Any, int] = {}
    for _site, outcome, code, n, _wall in ledger.attempt_summary():
        if outcome not in _OK_OUTCOMES and outcome != "killed":
            counts[code] = counts.get(code, 0) + n
    out = [
        {"exit_code": code, "count": n, "messages": ledger.error_messages(code, (*_OK_OUTCOMES, "killed"))}
        for code, n in counts.items()
    ]
    return sorted(out, key=lambda e: -e["count"])


def _remaining(info: dict[str, Any] | None, counts: dict[str, int], events_left: int) -> float | None:
    """Rough seconds until the task ends: the events left at the estimated seconds per event, over the
    concurrency the scheduler observed."""
    if counts["pending"] == 0:
        return 0.0
    spe = ((info or {}).get("seconds_per_event") or {}).get("estimate")
    if not spe:
        return None
    return float(spe) * float(events_left) / max(int((info or {}).get("concurrency") or 1), 1)


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
