"""Summaries of a transfer database: the ``autosplit aso status`` report and a per-task progress line.

Aggregates run in SQLite (one read transaction, so the numbers agree with each other); nothing here loads
every row into Python.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from autosplit.aso.db import TransferDB, using_db
from autosplit.aso.records import ACTIVE_STATES, LEASED_STATES, State


@dataclass(frozen=True)
class TaskProgress:
    """Compact progress of one task's stage-out (sizes in bytes)."""

    task: str
    files: int
    done: int
    in_flight: int
    failed: int
    killed: int
    bytes_total: int
    bytes_done: int

    def line(self) -> str:
        """``'stage-out: 120/300 files done (1.2 GB of 3.0 GB), 178 in flight, 2 failed'``."""
        text = (
            f"stage-out: {self.done:,}/{self.files:,} files done "
            f"({_human_bytes(self.bytes_done)} of {_human_bytes(self.bytes_total)})"
        )
        if self.in_flight:
            text += f", {self.in_flight:,} in flight"
        if self.failed:
            text += f", {self.failed:,} failed"
        if self.killed:
            text += f", {self.killed:,} killed"
        return text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class AsoStatus:
    """Whole-database (or one task's) report. Seconds and bytes; rates per second.

    ``throughput_*`` count transfers finished in the last ``window_s`` seconds; ``overall_bytes_per_s`` is
    bytes done over the span from the first start to the last finish. ``oldest_pending`` describes the
    oldest file not yet final (``age_s`` since registration), or is None.
    """

    generated_at: float
    files: int
    counts: dict[str, int]
    bytes_total: int
    bytes_done: int
    bytes_pending: int
    bytes_failed: int
    window_s: float
    throughput_files_per_s: float
    throughput_bytes_per_s: float
    overall_bytes_per_s: float
    mean_transfer_s: float | None
    oldest_pending: dict[str, Any] | None
    destinations: list[dict[str, Any]] = field(default_factory=list)
    temp_sites: list[dict[str, Any]] = field(default_factory=list)
    failure_kinds: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[TaskProgress] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["tasks"] = [t.to_dict() for t in self.tasks]
        return out


def status_summary(
    db: TransferDB | str | os.PathLike[str],
    *,
    task: str | None = None,
    window_s: float = 300.0,
    now: float | None = None,
) -> AsoStatus:
    """Counts by state, bytes pending/done, throughput, oldest pending file, per destination and per task."""
    now = time.time() if now is None else now
    where, params = ("WHERE task=?", (task,)) if task is not None else ("", ())
    and_ = "AND" if where else "WHERE"
    active = ",".join(f"'{s}'" for s in ACTIVE_STATES)
    leased = ",".join(f"'{s}'" for s in LEASED_STATES)
    with using_db(db, create=False) as handle, handle.snapshot() as conn:
        counts = {s.value: 0 for s in State}
        sizes = {s.value: 0 for s in State}
        for state, n, volume in conn.execute(
            f"SELECT state, COUNT(*), COALESCE(SUM(size), 0) FROM transfers {where} GROUP BY state", params
        ):
            counts[state] = n
            sizes[state] = volume
        recent_n, recent_bytes = conn.execute(
            f"SELECT COUNT(*), COALESCE(SUM(size), 0) FROM transfers {where} {and_} state='DONE' AND finished_at >= ?",
            (*params, now - window_s),
        ).fetchone()
        first_start, last_finish, mean_s = conn.execute(
            f"SELECT MIN(started_at), MAX(finished_at), AVG(transfer_seconds) FROM transfers {where} {and_} state='DONE'",
            params,
        ).fetchone()
        oldest = conn.execute(
            f"SELECT id, task, job_id, attempt, dest_path, state, created_at, retry_count, failure_reason "
            f"FROM transfers {where} {and_} state IN ({active}) ORDER BY created_at, rowid LIMIT 1",
            params,
        ).fetchone()
        destinations = [
            {
                "dest_site": dest,
                "in_flight": in_flight,
                "in_flight_bytes": in_flight_bytes,
                "queued": queued,
                "queued_bytes": queued_bytes,
            }
            for dest, in_flight, in_flight_bytes, queued, queued_bytes in conn.execute(
                f"SELECT dest_site, "
                f"SUM(state IN ({leased}) AND lease_expiry > ?), "
                f"COALESCE(SUM(CASE WHEN state IN ({leased}) AND lease_expiry > ? THEN size END), 0), "
                f"SUM(state IN ('NEW', 'RETRY')), "
                f"COALESCE(SUM(CASE WHEN state IN ('NEW', 'RETRY') THEN size END), 0) "
                f"FROM transfers {where} {and_} state IN ({active}) GROUP BY dest_site ORDER BY dest_site",
                (now, now, *params),
            )
        ]
        temp_sites = [
            {"site": site, "files": n, "bytes": volume}
            for site, n, volume in conn.execute(
                f"SELECT source_site, COUNT(*), SUM(size) FROM transfers {where} {and_} source_present=1 "
                "GROUP BY source_site ORDER BY source_site",
                params,
            )
        ]
        failure_kinds = [
            {"state": state, "kind": kind, "count": n, "example": example}
            for state, kind, n, example in conn.execute(
                "SELECT state, CASE WHEN instr(failure_reason, ':') > 0 "
                "THEN substr(failure_reason, 1, instr(failure_reason, ':') - 1) ELSE failure_reason END AS k, "
                f"COUNT(*), MIN(failure_reason) FROM transfers {where} {and_} failure_reason IS NOT NULL "
                "AND state IN ('FAILED', 'RETRY') GROUP BY state, k ORDER BY COUNT(*) DESC LIMIT 10",
                params,
            )
        ]
        tasks = [
            TaskProgress(*values)
            for values in conn.execute(_TASK_PROGRESS_SQL.format(active=active, where=where), params)
        ]
    span = (last_finish - first_start) if first_start is not None and last_finish is not None else 0.0
    return AsoStatus(
        generated_at=now,
        files=sum(counts.values()),
        counts=counts,
        bytes_total=sum(sizes.values()),
        bytes_done=sizes[State.DONE],
        bytes_pending=sum(sizes[s] for s in ACTIVE_STATES),
        bytes_failed=sizes[State.FAILED],
        window_s=window_s,
        throughput_files_per_s=recent_n / window_s if window_s > 0 else 0.0,
        throughput_bytes_per_s=recent_bytes / window_s if window_s > 0 else 0.0,
        overall_bytes_per_s=sizes[State.DONE] / span if span > 0 else 0.0,
        mean_transfer_s=mean_s,
        oldest_pending=None
        if oldest is None
        else {
            "id": oldest[0],
            "task": oldest[1],
            "job_id": oldest[2],
            "attempt": oldest[3],
            "dest_path": oldest[4],
            "state": oldest[5],
            "age_s": max(0.0, now - oldest[6]),
            "retry_count": oldest[7],
            "last_failure": oldest[8],
        },
        destinations=destinations,
        temp_sites=temp_sites,
        failure_kinds=failure_kinds,
        tasks=tasks,
    )


_TASK_PROGRESS_SQL = (
    "SELECT task, COUNT(*), SUM(state='DONE'), SUM(state IN ({active})), SUM(state='FAILED'), "
    "SUM(state='KILLED'), COALESCE(SUM(size), 0), COALESCE(SUM(CASE WHEN state='DONE' THEN size END), 0) "
    "FROM transfers {where} GROUP BY task ORDER BY task"
)


def task_progress(db: TransferDB | str | os.PathLike[str], task: str) -> TaskProgress:
    """Compact progress of one task (all zero if it registered nothing); one query."""
    active = ",".join(f"'{s}'" for s in ACTIVE_STATES)
    with using_db(db, create=False) as handle, handle.snapshot() as conn:
        found = conn.execute(
            _TASK_PROGRESS_SQL.format(active=active, where="WHERE task=?"), (task,)
        ).fetchone()
    return TaskProgress(*found) if found else TaskProgress(task, 0, 0, 0, 0, 0, 0, 0)


def _human_bytes(value: float) -> str:
    """``1234567`` -> ``'1.2 MB'`` (decimal units)."""
    value = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"
