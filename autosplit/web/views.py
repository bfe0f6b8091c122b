"""What the HTML pages show, gathered from the JSON documents (so page and API always agree).

The pages read the status document of :func:`autosplit.pipeline.status.task_status` through these
functions, which take every optional field with a default: a field the document lacks (an older or newer
ledger, a task that has not measured anything yet) leaves its row out or shows ``'–'``, never an error.
"""

from __future__ import annotations

import time
from typing import Any

from autosplit.web import documents, plots
from autosplit.web.catalog import CatalogEntry
from autosplit.web.format import count, duration, number, percent, share, sig

#: Display states of jobs in the order the page lists them, with the CSS class that colours them.
STATE_CLASSES = {
    "done": "ok",
    "soft-stopped": "warn",  # accepted, but stopped at the soft limit (its rest went to the next stage)
    "wall-time": "warn",
    "running": "run",
    "pre": "run",
    "post": "run",
    "queued": "wait",
    "retrying": "warn",
}
#: The unit counts of the status document (``units``), in the order the page shows them.
UNIT_KEYS = ("total", "done", "pending", "in_jobs", "quarantined")


def state_class(state: str) -> str:
    """CSS class of a job display state: ok, run, wait, warn or bad (any failure)."""
    return STATE_CLASSES.get(state, "bad")


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _rows(value: Any) -> list[dict[str, Any]]:
    """The mappings of a list field (sites, errors, ...); anything else is no rows."""
    return [row for row in value if isinstance(row, dict)] if isinstance(value, list) else []


def unit_counts(status: dict[str, Any]) -> dict[str, int | None]:
    """The status document's unit counts, each None when the document does not have it."""
    units = _dict(status.get("units"))
    return {key: units.get(key) if number(units.get(key)) is not None else None for key in UNIT_KEYS}


def unit_segments(units: dict[str, Any]) -> list[dict[str, Any]]:
    """The unit progress bar: done, in jobs, waiting and quarantined, with their share of the total
    (a count the document lacks is an empty segment)."""
    pending, in_jobs = number(units.get("pending")), number(units.get("in_jobs"))
    waiting = pending - (in_jobs or 0) if pending is not None else None
    parts = [
        ("done", "done", units.get("done")),
        ("in-jobs", "in jobs", in_jobs),
        ("waiting", "waiting", waiting),
        ("quarantined", "quarantined", units.get("quarantined")),
    ]
    return [
        {"key": key, "label": label, "count": number(n) or 0, "percent": percent(n, units.get("total"))}
        for key, label, n in parts
    ]


def stage_rows(status: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: its jobs, and per display state the count and share (for a stacked bar)."""
    rows = []
    for name, stage in _dict(status.get("stages")).items():
        stage = _dict(stage)
        tally = {s: n for s, n in _dict(stage.get("states")).items() if number(n) is not None}
        jobs = stage.get("jobs") if number(stage.get("jobs")) is not None else sum(tally.values())
        states = [
            {"state": s, "count": n, "percent": percent(n, jobs), "css": state_class(s)}
            for s, n in tally.items()
        ]
        rows.append({"name": name, "jobs": jobs, "states": states})
    return rows


def _interval(value: Any, show) -> tuple[str, str] | None:
    """An estimate given as ``{"estimate", "low", "high"}`` (or a bare number): its text and its 95 %
    interval's text ('' when the interval is missing); None when there is no estimate."""
    found = _dict(value) if isinstance(value, dict) else {"estimate": value}
    if number(found.get("estimate")) is None:
        return None
    low, high = found.get("low"), found.get("high")
    note = (
        f"95 % interval {show(low)} – {show(high)}"
        if number(low) is not None and number(high) is not None
        else ""
    )
    return show(found["estimate"]), note


def estimate_rows(status: dict[str, Any], final: bool) -> list[dict[str, str]]:
    """The scheduler's estimates (``estimates`` of the status document) as table rows: key, label, value
    and a note. A field the document lacks has no row; no estimates at all is no rows.

    The predicted CPU time of the units left is saved when the cost model is refitted, so it is shown
    only while the task runs (for an ended task it is that of the last refit, not zero).
    """
    est = _dict(status.get("estimates"))
    rows: list[dict[str, str]] = []

    def add(key: str, label: str, value: str | None, note: str = "") -> None:
        if value is not None and value != "–":
            rows.append({"key": key, "label": label, "value": value, "note": note})

    spe = _interval(est.get("seconds_per_event"), sig)
    if spe:
        add("seconds_per_event", "seconds per event", *spe)
    if not final:
        cpu = _interval(est.get("remaining_cpu_seconds"), duration)
        if cpu:
            add("remaining_cpu_seconds", "CPU time of the units left", cpu[0], cpu[1] or "predicted")
    add("overhead_seconds", "per-job overhead", duration(est.get("overhead_seconds")))
    add("shared_cv", "spread per job", share(est.get("shared_cv")), "coefficient of variation")
    add("unit_cv", "spread per unit", share(est.get("unit_cv")), "coefficient of variation")
    if number(est.get("jobs_measured")) is not None:
        add("jobs_measured", "measured from", f"{count(est['jobs_measured'])} job report(s)")
    if number(est.get("concurrency")) is not None:
        add("concurrency", "jobs at once", count(est["concurrency"]), "observed")
    add("packing_target_seconds", "job runtime aimed at", duration(est.get("packing_target_seconds")))
    if number(est.get("failure_cap_seconds")) is not None:
        add(
            "failure_cap_seconds",
            "mean job length held to",
            duration(est["failure_cap_seconds"]),
            "under failures",
        )
    if number(est.get("failure_rate_per_hour")) is not None:
        add("failure_rate_per_hour", "jobs lost", f"{sig(est['failure_rate_per_hour'], 3)} per slot-hour")
    return rows


def error_rows(status: dict[str, Any], top: int = 5) -> list[dict[str, Any]]:
    """The ``top`` most frequent errors: exit code, jobs and their messages (a list of texts)."""
    rows = []
    for error in _rows(status.get("errors"))[:top]:
        messages = error.get("messages")
        if isinstance(messages, str):
            messages = [messages]
        elif not isinstance(messages, list):
            messages = []
        rows.append(error | {"messages": [str(m) for m in messages if m]})
    return rows


def eta_text(status: dict[str, Any], final: bool) -> str:
    """The time left as the page words it."""
    if final:
        return "none (finished)"
    seconds = number(status.get("remaining_seconds"))
    return "unknown yet" if seconds is None else f"about {duration(seconds)}"


def task_page(entry: CatalogEntry) -> dict[str, Any]:
    """Everything the task page shows: status, unit bar, stages, estimates, sites, errors and the two
    plots."""
    status = documents.status_document(entry.task)
    final = documents.is_final(status)
    units = unit_counts(status)
    now = time.time()
    return {
        "id": entry.id,
        "status": status,
        "name": status.get("task") or entry.id,
        "state": status.get("state") or "unknown",
        "final": final,
        "backend": _dict(status.get("backend")),
        "units": units,
        "events": _dict(status.get("events")),
        "eta": eta_text(status, final),
        "segments": unit_segments(units),
        "stages": stage_rows(status),
        "estimates": estimate_rows(status, final),
        "sites": _rows(status.get("sites")),
        "errors": error_rows(status),
        "quarantine_reasons": _rows(status.get("quarantine_reasons")),
        "transfers_line": _dict(status.get("transfers")).get("line"),
        "runtime_plot": plots.runtime_histogram(documents.runtimes(entry.task)),
        "progress_plot": plots.progress_curve(documents.timeline(entry.task), now=None if final else now),
        "rendered_at": now,
    }


def task_list(entries: list[CatalogEntry]) -> dict[str, Any]:
    """The index: one entry per task (see :func:`documents.task_entry`)."""
    tasks = [documents.task_entry(entry.id, entry.task) for entry in entries]
    return {"tasks": tasks, "rendered_at": time.time()}
