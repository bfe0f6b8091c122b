"""The transfer database: one SQLite file (WAL mode), a row per file to stage out, and its state machine.

States (CRAB3's, minus the publication side)::

    NEW ──acquire──> ACQUIRED ──copy starts──> SUBMITTED ──verified, renamed──> DONE
     ^                 │  │                       │  │
     │                 │  └──── lease expires ────┘  └─ recoverable failure ─> RETRY ──(backoff)──> acquire
     │                 │        (row is taken again)  └─ permanent / retries exhausted ─> FAILED
     └── release (agent stopping) ──┘
    any state but DONE ──kill──> KILLED          FAILED ──retry (operator)──> RETRY

Every transition is one SQLite transaction; writers use ``BEGIN IMMEDIATE`` so two agents never acquire
the same row. Rows taken by an agent carry a lease (owner, random token, expiry in seconds since the
epoch); every later update by that agent checks the token, so an agent that lost its lease (it stalled,
or another agent reclaimed the row after expiry) cannot overwrite the newer state.

Timestamps are seconds since the epoch (float); sizes are bytes.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from autosplit.aso.errors import RegistrationError, TransferDBError
from autosplit.aso.flow import FlowLimits, RetryPolicy, admit, temp_space_allows
from autosplit.aso.paths import FILE_MODE, ensure_private_dir
from autosplit.aso.records import (
    _COLUMNS,
    ACTIVE_STATES,
    LEASED_STATES,
    InsertResult,
    NewTransfer,
    State,
    Transfer,
    _row,
)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 60.0

_SCHEMA = """
CREATE TABLE transfers (
    id              TEXT PRIMARY KEY,
    task            TEXT NOT NULL,
    job_id          TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    kind            TEXT NOT NULL DEFAULT 'output',
    source_site     TEXT NOT NULL,
    source_root     TEXT NOT NULL,
    source_path     TEXT NOT NULL,
    dest_site       TEXT NOT NULL,
    dest_root       TEXT NOT NULL,
    dest_path       TEXT NOT NULL,
    size            INTEGER NOT NULL,
    checksum_algo   TEXT NOT NULL,
    checksum        TEXT NOT NULL,
    state           TEXT NOT NULL,
    retry_count     INTEGER NOT NULL DEFAULT 0,
    acquisitions    INTEGER NOT NULL DEFAULT 0,
    failure_kind    TEXT,
    failure_reason  TEXT,
    lease_owner     TEXT,
    lease_token     TEXT,
    lease_expiry    REAL,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    source_present  INTEGER NOT NULL DEFAULT 1,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    started_at      REAL,
    finished_at     REAL,
    transfer_seconds REAL
);
CREATE INDEX transfers_queue ON transfers (state, dest_site, next_attempt_at);
CREATE INDEX transfers_job ON transfers (task, job_id, attempt);
CREATE INDEX transfers_temp ON transfers (source_site, source_present);
"""

_DESTINATIONS_SQL = """
WITH RECURSIVE d(site) AS (
    SELECT MIN(dest_site) FROM transfers WHERE state = ?1
    UNION ALL
    SELECT (SELECT MIN(dest_site) FROM transfers WHERE state = ?2 AND dest_site > d.site) FROM d
    WHERE d.site IS NOT NULL
)
SELECT site FROM d WHERE site IS NOT NULL
"""


class TransferDB:
    """Handle on one transfer database file. Thread-safe: each thread gets its own SQLite connection.

    ``create=True`` makes the file (mode 0600, parent directories 0700) and the schema if missing.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        if not self.path.exists():
            if not create:
                raise TransferDBError(f"{self.path}: no transfer database here (nothing registered yet?)")
            ensure_private_dir(self.path.parent)
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, FILE_MODE))
            except OSError as exc:
                raise TransferDBError(f"{self.path}: cannot create ({exc.strerror})") from None
        self._init_schema()

    # -- connections and transactions --------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.DatabaseError as exc:
                raise TransferDBError(f"{self.path}: not a usable SQLite database ({exc})") from None
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: takes the write lock up front, so the reads inside
        it see a state no other writer can change before the commit).

        Threads of this process queue on a Python lock first: SQLite's own busy handler polls with sleeps
        of up to tens of milliseconds, which made same-process writers wait far longer than the lock is held.
        """
        conn = self._conn()
        with self._write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        conn = self._conn()
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            conn.execute("COMMIT")

    def _init_schema(self) -> None:
        try:
            if self._conn().execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION:
                return  # the common case, without taking the write lock
            with self._write() as conn:
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    for statement in filter(str.strip, _SCHEMA.split(";")):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                elif version > SCHEMA_VERSION:
                    raise TransferDBError(
                        f"{self.path}: schema version {version} is newer than this autosplit ({SCHEMA_VERSION}); "
                        "upgrade autosplit"
                    )
        except sqlite3.DatabaseError as exc:
            raise TransferDBError(f"{self.path}: not a usable SQLite database ({exc})") from None

    def close(self) -> None:
        """Close every connection this handle opened (in any thread)."""
        with self._lock:
            for conn in self._connections:
                try:
                    conn.close()
                except sqlite3.ProgrammingError:
                    pass
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> TransferDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- registration --------------------------------------------------------------------------------

    def insert(
        self,
        rows: Sequence[NewTransfer],
        *,
        temp_budget_bytes: int | None = None,
        supersede_older_attempts: bool = True,
        now: float | None = None,
    ) -> InsertResult:
        """Register files in one transaction; already registered ones are left as they are.

        All rows must belong to one ``source_site``. With ``temp_budget_bytes``, the new rows are admitted
        only if the site's temporary area (bytes of registered files whose temp copy still exists) has
        room for them; otherwise nothing is written and ``admitted`` is false. With
        ``supersede_older_attempts``, active rows of earlier attempts of the same jobs are KILLED (a newer
        attempt's output replaces them; their temp copies are then removed by the agent).
        A row whose id exists with a different size, checksum or destination raises
        :class:`RegistrationError`.
        """
        now = time.time() if now is None else now
        sites = {row.source_site for row in rows}
        if len(sites) > 1:
            raise RegistrationError(f"register files of one source site at a time, got {sorted(sites)}")
        ids = tuple(row.id for row in rows)
        if len(set(ids)) != len(ids):
            raise RegistrationError("the same source file is listed twice in one registration")
        with self._write() as conn:
            existing: dict[str, tuple] = {}
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for found in conn.execute(
                    f"SELECT id, size, checksum_algo, checksum, dest_root, dest_path FROM transfers WHERE id IN ({marks})",
                    chunk,
                ):
                    existing[found[0]] = found[1:]
            fresh = []
            for row in rows:
                old = existing.get(row.id)
                if old is None:
                    fresh.append(row)
                elif old != (row.size, row.checksum_algo, row.checksum, row.dest_root, row.dest_path):
                    raise RegistrationError(
                        f"{row.source_path} (job {row.job_id}, attempt {row.attempt}) is already registered with "
                        f"size {old[0]}, {old[1]} {old[2]} -> {old[3]}/{old[4]}; refusing a different registration"
                    )
            usage = 0
            if sites:
                usage = self._site_usage(conn, next(iter(sites)))
            if fresh and not temp_space_allows(usage, sum(r.size for r in fresh), temp_budget_bytes):
                return InsertResult(False, ids, 0, len(existing), 0, usage)
            superseded = 0
            if supersede_older_attempts and fresh:
                for task, job_id, attempt in {(r.task, r.job_id, r.attempt) for r in fresh}:
                    superseded += conn.execute(
                        f"UPDATE transfers SET state='KILLED', failure_kind='killed', "
                        f"failure_reason=?, lease_owner=NULL, lease_token=NULL, lease_expiry=NULL, updated_at=?, "
                        f"finished_at=? WHERE task=? AND job_id=? AND attempt<? AND state IN ({_marks(ACTIVE_STATES)})",
                        (f"superseded by attempt {attempt}", now, now, task, job_id, attempt, *ACTIVE_STATES),
                    ).rowcount
            conn.executemany(
                "INSERT INTO transfers (id, task, job_id, attempt, kind, source_site, source_root, source_path, "
                "dest_site, dest_root, dest_path, size, checksum_algo, checksum, state, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'NEW', ?, ?)",
                [
                    (
                        r.id,
                        r.task,
                        r.job_id,
                        r.attempt,
                        r.kind,
                        r.source_site,
                        r.source_root,
                        r.source_path,
                        r.dest_site,
                        r.dest_root,
                        r.dest_path,
                        r.size,
                        r.checksum_algo,
                        r.checksum,
                        now,
                        now,
                    )
                    for r in fresh
                ],
            )
            usage += sum(r.size for r in fresh)
        return InsertResult(True, ids, len(fresh), len(existing), superseded, usage)

    # -- agent side ------------------------------------------------------------------------------

    def acquire(
        self,
        owner: str,
        limit: int,
        lease_seconds: float,
        flow: FlowLimits | None = None,
        *,
        now: float | None = None,
    ) -> list[Transfer]:
        """Take up to ``limit`` rows for ``owner`` under a lease of ``lease_seconds``.

        Eligible: NEW, RETRY whose backoff has passed, and ACQUIRED/SUBMITTED rows whose lease expired (their
        agent died or stalled). Per destination, :class:`FlowLimits` caps the rows held under a live lease
        and their bytes. Oldest first. Each taken row gets a fresh random ``lease_token``.
        """
        if limit <= 0:
            return []
        flow = flow or FlowLimits()
        now = time.time() if now is None else now
        expiry = now + lease_seconds
        taken: list[Transfer] = []
        with self._write() as conn:
            in_flight = {
                dest: (count, volume)
                for dest, count, volume in conn.execute(
                    f"SELECT dest_site, COUNT(*), COALESCE(SUM(size), 0) FROM transfers "
                    f"WHERE state IN ({_marks(LEASED_STATES)}) AND lease_expiry > ? GROUP BY dest_site",
                    (*LEASED_STATES, now),
                )
            }
            destinations = sorted(
                {
                    dest
                    for state in ACTIVE_STATES
                    for (dest,) in conn.execute(_DESTINATIONS_SQL, (state, state))
                }
            )
            # least busy destination first, so one busy destination does not take every free slot
            destinations.sort(key=lambda d: (in_flight.get(d, (0, 0))[0], d))
            for dest in destinations:
                want = limit - len(taken)
                if want <= 0:
                    break
                cap = flow.for_destination(dest)
                count, volume = in_flight.get(dest, (0, 0))
                if count >= cap.max_transfers:
                    continue
                candidates = self._queue(conn, dest, now, min(want, cap.max_transfers - count))
                n = admit([c.size for c in candidates], count, volume, cap, want)
                for row in candidates[:n]:
                    token = secrets.token_hex(8)
                    conn.execute(
                        "UPDATE transfers SET state='ACQUIRED', lease_owner=?, lease_token=?, lease_expiry=?, "
                        "acquisitions=acquisitions+1, updated_at=?, started_at=COALESCE(started_at, ?) WHERE id=?",
                        (owner, token, expiry, now, now, row.id),
                    )
                    taken.append(
                        _replace(
                            row,
                            state=State.ACQUIRED.value,
                            lease_owner=owner,
                            lease_token=token,
                            lease_expiry=expiry,
                            acquisitions=row.acquisitions + 1,
                        )
                    )
        return taken

    @staticmethod
    def _queue(conn: sqlite3.Connection, dest: str, now: float, limit: int) -> list[Transfer]:
        """Eligible rows of one destination in the order they are served: rows whose lease expired (their
        agent died), then retries whose backoff passed, then new rows; first in, first out within each.
        (Three index range scans; one query with OR would collect and sort the whole queue.)"""
        rows = [
            _row(v)
            for v in conn.execute(
                f"SELECT {_COLUMNS} FROM transfers WHERE state IN ({_marks(LEASED_STATES)}) AND dest_site=? "
                "AND lease_expiry <= ? ORDER BY lease_expiry LIMIT ?",
                (*LEASED_STATES, dest, now, limit),
            )
        ]
        for state in (State.RETRY, State.NEW):
            if len(rows) >= limit:
                break
            rows += [
                _row(v)
                for v in conn.execute(
                    f"SELECT {_COLUMNS} FROM transfers WHERE state=? AND dest_site=? AND next_attempt_at <= ? "
                    "ORDER BY next_attempt_at, rowid LIMIT ?",
                    (state.value, dest, now, limit - len(rows)),
                )
            ]
        return rows

    def mark_submitted(
        self, transfer_id: str, token: str, lease_seconds: float, *, now: float | None = None
    ) -> bool:
        """ACQUIRED -> SUBMITTED (the copy starts) and renew the lease; false if the lease was lost."""
        now = time.time() if now is None else now
        with self._write() as conn:
            return (
                conn.execute(
                    f"UPDATE transfers SET state='SUBMITTED', lease_expiry=?, updated_at=? "
                    f"WHERE id=? AND lease_token=? AND state IN ({_marks(LEASED_STATES)})",
                    (now + lease_seconds, now, transfer_id, token, *LEASED_STATES),
                ).rowcount
                == 1
            )

    def renew_one(
        self, transfer_id: str, token: str, lease_seconds: float, *, now: float | None = None
    ) -> bool:
        """Extend one row's lease; false if the row is no longer held under ``token`` (lost or killed)."""
        now = time.time() if now is None else now
        with self._write() as conn:
            return (
                conn.execute(
                    f"UPDATE transfers SET lease_expiry=? WHERE id=? AND lease_token=? "
                    f"AND state IN ({_marks(LEASED_STATES)})",
                    (now + lease_seconds, transfer_id, token, *LEASED_STATES),
                ).rowcount
                == 1
            )

    def renew(self, owner: str, lease_seconds: float, *, now: float | None = None) -> int:
        """Heartbeat: extend the lease of every row ``owner`` holds; returns how many."""
        now = time.time() if now is None else now
        with self._write() as conn:
            return conn.execute(
                f"UPDATE transfers SET lease_expiry=? WHERE lease_owner=? AND state IN ({_marks(LEASED_STATES)})",
                (now + lease_seconds, owner, *LEASED_STATES),
            ).rowcount

    def mark_done(
        self,
        transfer_id: str,
        token: str,
        seconds: float,
        *,
        source_removed: bool = True,
        now: float | None = None,
    ) -> bool:
        """-> DONE: the file is verified at its destination (``seconds``: time the transfer took) and, if
        ``source_removed``, its temp copy is gone (otherwise housekeeping removes it later)."""
        now = time.time() if now is None else now
        with self._write() as conn:
            return (
                conn.execute(
                    f"UPDATE transfers SET state='DONE', source_present=?, failure_kind=NULL, failure_reason=NULL, "
                    f"lease_owner=NULL, lease_token=NULL, lease_expiry=NULL, updated_at=?, finished_at=?, "
                    f"transfer_seconds=? WHERE id=? AND lease_token=? AND state IN ({_marks(LEASED_STATES)})",
                    (0 if source_removed else 1, now, now, seconds, transfer_id, token, *LEASED_STATES),
                ).rowcount
                == 1
            )

    def mark_done_many(
        self, items: Sequence[tuple[str, str, float, bool]], *, now: float | None = None
    ) -> list[bool]:
        """:meth:`mark_done` for several ``(id, token, seconds, source_removed)`` in one transaction; returns
        per item whether it was recorded (false: lease lost or killed meanwhile)."""
        now = time.time() if now is None else now
        with self._write() as conn:
            return [
                conn.execute(
                    f"UPDATE transfers SET state='DONE', source_present=?, failure_kind=NULL, failure_reason=NULL, "
                    f"lease_owner=NULL, lease_token=NULL, lease_expiry=NULL, updated_at=?, finished_at=?, "
                    f"transfer_seconds=? WHERE id=? AND lease_token=? AND state IN ({_marks(LEASED_STATES)})",
                    (0 if removed else 1, now, now, seconds, transfer_id, token, *LEASED_STATES),
                ).rowcount
                == 1
                for transfer_id, token, seconds, removed in items
            ]

    def holds(self, transfer_id: str, token: str) -> bool:
        """Is the row still held under ``token`` (not reclaimed, not killed)? A read; takes no write lock."""
        return (
            self._conn()
            .execute(
                f"SELECT 1 FROM transfers WHERE id=? AND lease_token=? AND state IN ({_marks(LEASED_STATES)})",
                (transfer_id, token, *LEASED_STATES),
            )
            .fetchone()
            is not None
        )

    def record_failure(
        self,
        transfer_id: str,
        token: str,
        reason: str,
        *,
        kind: str,
        permanent: bool,
        policy: RetryPolicy,
        permanent_after_retries: bool = False,
        source_gone: bool = False,
        now: float | None = None,
    ) -> State | None:
        """A copy failed: -> RETRY (with backoff) or FAILED. Returns the new state, None if the lease was lost.

        FAILED rows carry ``failure_kind`` 'permanent' (retrying the job cannot help: permission, quota,
        missing source, corrupt data) or 'recoverable' (retries ran out on a transient error; re-running the
        job may help), and the reason.
        """
        now = time.time() if now is None else now
        with self._write() as conn:
            found = conn.execute(
                f"SELECT retry_count FROM transfers WHERE id=? AND lease_token=? AND state IN ({_marks(LEASED_STATES)})",
                (transfer_id, token, *LEASED_STATES),
            ).fetchone()
            if found is None:
                return None
            failures = found[0] + 1
            exhausted = failures > policy.max_retries
            if permanent or exhausted:
                final_kind = "permanent" if permanent or permanent_after_retries else "recoverable"
                if exhausted and not permanent:
                    reason = f"{reason} (after {failures} attempts)"
                conn.execute(
                    "UPDATE transfers SET state='FAILED', retry_count=?, failure_kind=?, failure_reason=?, "
                    "source_present=CASE WHEN ? THEN 0 ELSE source_present END, "
                    "lease_owner=NULL, lease_token=NULL, lease_expiry=NULL, updated_at=?, finished_at=? WHERE id=?",
                    (failures, final_kind, f"{kind}: {reason}", source_gone, now, now, transfer_id),
                )
                return State.FAILED
            conn.execute(
                "UPDATE transfers SET state='RETRY', retry_count=?, failure_kind=?, failure_reason=?, "
                "next_attempt_at=?, lease_owner=NULL, lease_token=NULL, lease_expiry=NULL, updated_at=? WHERE id=?",
                (failures, "retrying", f"{kind}: {reason}", now + policy.delay(failures), now, transfer_id),
            )
            return State.RETRY

    def release(self, transfer_id: str, token: str, *, delay: float = 0.0, now: float | None = None) -> bool:
        """Give a held row back without counting a failure (the agent is stopping, or another agent still
        works on it): -> NEW, or RETRY if it failed before; eligible again after ``delay`` seconds."""
        now = time.time() if now is None else now
        with self._write() as conn:
            return (
                conn.execute(
                    f"UPDATE transfers SET state=CASE WHEN retry_count > 0 THEN 'RETRY' ELSE 'NEW' END, "
                    f"next_attempt_at=?, lease_owner=NULL, lease_token=NULL, lease_expiry=NULL, updated_at=? "
                    f"WHERE id=? AND lease_token=? AND state IN ({_marks(LEASED_STATES)})",
                    (now + delay, now, transfer_id, token, *LEASED_STATES),
                ).rowcount
                == 1
            )

    def cleanup_candidates(self, limit: int = 100) -> list[Transfer]:
        """KILLED or DONE rows whose temp copy may still exist (the agent removes it)."""
        return self._select(
            "WHERE state IN ('KILLED', 'DONE') AND source_present=1 ORDER BY updated_at LIMIT ?",
            (limit,),
        )

    def mark_source_removed(self, transfer_id: str) -> None:
        with self._write() as conn:
            conn.execute("UPDATE transfers SET source_present=0 WHERE id=?", (transfer_id,))

    # -- control -----------------------------------------------------------------------------------

    def kill(
        self,
        task: str,
        job_id: str | int | None = None,
        attempt: int | None = None,
        *,
        reason: str = "killed",
        now: float | None = None,
    ) -> int:
        """Cancel a task's (or one job's, or one attempt's) transfers that are not DONE: -> KILLED.

        FAILED rows are killed too, which releases their temp copies. Returns how many rows changed.
        Idempotent. An agent copying a row that gets killed notices before it renames and drops the copy.
        """
        now = time.time() if now is None else now
        where, params = _job_filter(task, job_id, attempt)
        with self._write() as conn:
            return conn.execute(
                "UPDATE transfers SET state='KILLED', failure_kind='killed', failure_reason=?, lease_owner=NULL, "
                f"lease_token=NULL, lease_expiry=NULL, updated_at=?, finished_at=? WHERE {where} "
                "AND state NOT IN ('DONE', 'KILLED')",
                (reason, now, now, *params),
            ).rowcount

    def retry_failed(
        self,
        task: str | None = None,
        job_id: str | int | None = None,
        *,
        ids: Iterable[str] | None = None,
        now: float | None = None,
    ) -> int:
        """Operator retry: FAILED -> RETRY with the retry counter reset. Returns how many rows changed."""
        now = time.time() if now is None else now
        clauses, params = ["state='FAILED'"], []
        if task is not None:
            where, job_params = _job_filter(task, job_id, None)
            clauses.append(where)
            params += job_params
        id_list = list(ids) if ids is not None else None
        if id_list is not None:
            clauses.append(f"id IN ({','.join('?' * len(id_list)) or 'NULL'})")
            params += id_list
        with self._write() as conn:
            return conn.execute(
                "UPDATE transfers SET state='RETRY', retry_count=0, failure_kind=NULL, failure_reason=NULL, "
                f"next_attempt_at=?, updated_at=?, finished_at=NULL WHERE {' AND '.join(clauses)}",
                (now, now, *params),
            ).rowcount

    # -- queries -------------------------------------------------------------------------------------

    def get(self, transfer_id: str) -> Transfer | None:
        rows = self._select("WHERE id=?", (transfer_id,))
        return rows[0] if rows else None

    def rows(
        self,
        *,
        state: str | None = None,
        task: str | None = None,
        job_id: str | int | None = None,
        attempt: int | None = None,
        limit: int | None = None,
    ) -> list[Transfer]:
        """Rows filtered by state/task/job/attempt, oldest first."""
        clauses, params = [], []
        if state is not None:
            clauses.append("state=?")
            params.append(str(state).upper())
        if task is not None:
            where, job_params = _job_filter(task, job_id, attempt)
            clauses.append(where)
            params += job_params
        sql = ("WHERE " + " AND ".join(clauses) if clauses else "") + " ORDER BY created_at, rowid"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._select(sql, tuple(params))

    def site_usage(self, site: str) -> int:
        """Bytes in ``site``'s temporary area held by registered files (their temp copy not yet removed)."""
        return self._site_usage(self._conn(), site)

    def count_active(self) -> int:
        """Rows not yet final (NEW, RETRY, ACQUIRED, SUBMITTED)."""
        return (
            self._conn()
            .execute(
                f"SELECT COUNT(*) FROM transfers WHERE state IN ({_marks(ACTIVE_STATES)})", ACTIVE_STATES
            )
            .fetchone()[0]
        )

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction for consistent multi-query reports (used by the status module)."""
        with self._read() as conn:
            yield conn

    @staticmethod
    def _site_usage(conn: sqlite3.Connection, site: str) -> int:
        return conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM transfers WHERE source_site=? AND source_present=1", (site,)
        ).fetchone()[0]

    def _select(self, where: str, params: tuple) -> list[Transfer]:
        return [_row(v) for v in self._conn().execute(f"SELECT {_COLUMNS} FROM transfers {where}", params)]


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _chunks(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _job_filter(task: str, job_id: str | int | None, attempt: int | None) -> tuple[str, list[Any]]:
    clauses, params = ["task=?"], [str(task)]
    if job_id is not None:
        clauses.append("job_id=?")
        params.append(str(job_id))
    if attempt is not None:
        clauses.append("attempt=?")
        params.append(int(attempt))
    return " AND ".join(clauses), params


def _replace(row: Transfer, **changes: Any) -> Transfer:
    values = row.to_dict()
    values.update(changes)
    return Transfer(**values)


def open_db(db: TransferDB | str | os.PathLike[str], *, create: bool = True) -> tuple[TransferDB, bool]:
    """``(handle, owned)``: a :class:`TransferDB` as given, or opened from a path (``owned``: close it after)."""
    if isinstance(db, TransferDB):
        return db, False
    return TransferDB(db, create=create), True


@contextmanager
def using_db(db: TransferDB | str | os.PathLike[str], *, create: bool = True) -> Iterator[TransferDB]:
    """Context manager over :func:`open_db` that closes the handle only if it opened it."""
    handle, owned = open_db(db, create=create)
    try:
        yield handle
    finally:
        if owned:
            handle.close()
