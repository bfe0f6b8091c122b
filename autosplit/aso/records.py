"""The rows of the transfer database: states, transfer ids and the records the database hands out.

Sizes are bytes; timestamps seconds since the epoch.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any


class State(StrEnum):
    NEW = "NEW"
    ACQUIRED = "ACQUIRED"
    SUBMITTED = "SUBMITTED"
    DONE = "DONE"
    FAILED = "FAILED"
    RETRY = "RETRY"
    KILLED = "KILLED"


#: Not final: the file still has to reach its destination.
ACTIVE_STATES = (State.NEW, State.RETRY, State.ACQUIRED, State.SUBMITTED)
#: Held by an agent under a lease.
LEASED_STATES = (State.ACQUIRED, State.SUBMITTED)
FINAL_STATES = (State.DONE, State.FAILED, State.KILLED)


# Distinct destinations of one state by index seeks (one per destination), not by scanning the whole queue.
def transfer_id(task: str, job_id: str | int, attempt: int, source: str) -> str:
    """Deterministic transfer id: 32 hex digits of sha256(task, job, attempt, source).

    The same file of the same job attempt always gets the same id, which makes registration idempotent.
    """
    key = "\x1f".join((str(task), str(job_id), str(int(attempt)), str(source)))
    return hashlib.sha256(key.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Transfer:
    """One row of the ``transfers`` table."""

    id: str
    task: str
    job_id: str
    attempt: int
    kind: str
    source_site: str
    source_root: str
    source_path: str
    dest_site: str
    dest_root: str
    dest_path: str
    size: int
    checksum_algo: str
    checksum: str
    state: str
    retry_count: int
    acquisitions: int
    failure_kind: str | None
    failure_reason: str | None
    lease_owner: str | None
    lease_token: str | None
    lease_expiry: float | None
    next_attempt_at: float
    source_present: int
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    transfer_seconds: float | None

    @property
    def source(self) -> str:
        return f"{self.source_root.rstrip('/')}/{self.source_path}"

    @property
    def destination(self) -> str:
        return f"{self.dest_root.rstrip('/')}/{self.dest_path}"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


_COLUMNS = ", ".join(f.name for f in fields(Transfer))


def _row(values: sqlite3.Row | tuple) -> Transfer:
    return Transfer(*values)


@dataclass(frozen=True)
class NewTransfer:
    """A file to register (see :func:`autosplit.aso.jobside.register_outputs`)."""

    task: str
    job_id: str
    attempt: int
    kind: str
    source_site: str
    source_root: str
    source_path: str
    dest_site: str
    dest_root: str
    dest_path: str
    size: int
    checksum_algo: str
    checksum: str

    @property
    def id(self) -> str:
        return transfer_id(
            self.task, self.job_id, self.attempt, f"{self.source_root.rstrip('/')}/{self.source_path}"
        )


@dataclass(frozen=True)
class InsertResult:
    """What :meth:`TransferDB.insert` did: ``admitted`` is false when the temp-space budget refused the files
    (then nothing was written)."""

    admitted: bool
    ids: tuple[str, ...]
    inserted: int
    existing: int
    superseded: int
    site_usage_bytes: int
