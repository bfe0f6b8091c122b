"""What the HTML pages show, gathered from the JSON documents (so page and API always agree)."""

from __future__ import annotations

import time
from typing import Any

from autosplit.web import documents, plots
from autosplit.web.catalog import CatalogEntry
from autosplit.web.format import percent

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


def state_class(state: str) -> str:
    """CSS class of a job display state: ok, run, wait, warn or bad (any failure)."""
    return STATE_CLASSES.get(state, "bad")


def unit_segments(units: dict[str, int]) -> list[dict[str, Any]]:
    """The unit progress bar: done, in jobs, waiting and quarantined, with their share of the total."""
    waiting = units["pending"] - units["in_jobs"]
    parts = [
        ("done", "done", units["done"]),
        ("in-jobs", "in jobs", units["in_jobs"]),
        ("waiting", "waiting", waiting),
        ("quarantined", "quarantined", units["quarantined"]),
    ]
    return [
        {"key": key, "label": label, "count": n, "percent": percent(n, units["total"])}
        for key, label, n in parts
    ]


def stage_rows(status: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage: its jobs, and per display state the count and share (for a stacked bar)."""
    rows = []
    for name, stage in status["stages"].items():
        states = [
            {"state": s, "count": n, "percent": percent(n, stage["jobs"]), "css": state_class(s)}
            for s, n in stage["states"].items()
        ]
        rows.append({"name": name, "jobs": stage["jobs"], "states": states})
    return rows


def task_page(entry: CatalogEntry) -> dict[str, Any]:
    """Everything the task page shows: status, unit bar, stages, sites, errors and the two plots."""
    status = documents.status_document(entry.task)
    final = documents.is_final(status)
    now = time.time()
    return {
        "id": entry.id,
        "status": status,
        "final": final,
        "segments": unit_segments(status["units"]),
        "stages": stage_rows(status),
        "runtime_plot": plots.runtime_histogram(documents.runtimes(entry.task)),
        "progress_plot": plots.progress_curve(documents.timeline(entry.task), now=None if final else now),
        "rendered_at": now,
    }


def task_list(entries: list[CatalogEntry]) -> dict[str, Any]:
    """The index: one entry per task (see :func:`documents.task_entry`)."""
    tasks = [documents.task_entry(entry.id, entry.task) for entry in entries]
    return {"tasks": tasks, "rendered_at": time.time()}
