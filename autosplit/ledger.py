"""The ledger: the one record of every unit's and every job's state in a task (SQLite, WAL mode).

Unit states:

* ``pending`` — waiting for a job; ``returns`` counts how often a job handed it back unfinished (its tail
  level), ``crashes`` how often its job was lost or failed without naming a cause, ``failures`` how often
  a failure was blamed on it; ``alone`` marks a unit that must run by itself;
* ``assigned`` — held by the job node in ``node``;
* ``done`` — processed by ``node`` and its outputs committed;
* ``quarantined`` — given up on, with a ``reason``.

The scheduler (:class:`autosplit.Scheduler`) decides; the ledger records its decisions, each job binding
(:meth:`Ledger.bind_job`) and each job outcome (:meth:`Ledger.record_outcome`) in one transaction that also
advances the ledger's ``version``, so a saved scheduler state can be matched to the ledger it belongs to.
Outcomes are keyed by (node, attempt): recording one twice (DAGMan re-runs scripts after a restart) changes
nothing the second time. Every unit of the dataset ends ``done`` or ``quarantined`` — never lost, never
done twice.
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from autosplit._io import json_default
from autosplit.errors import AutosplitError

if TYPE_CHECKING:  # polars is imported where a table is built: the job scripts never need it
    import polars as pl

LEDGER_FORMAT = "autosplit-ledger/2"
UNIT_STATES = ("pending", "assigned", "done", "quarantined")
JOB_STATES = ("planned", "finished", "failed", "killed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    unit_id   INTEGER PRIMARY KEY,
    run       INTEGER NOT NULL,
    lumi      INTEGER NOT NULL,
    events    INTEGER NOT NULL,
    state     TEXT NOT NULL DEFAULT 'pending'
              CHECK (state IN ('pending', 'assigned', 'done', 'quarantined')),
    node      TEXT,
    failures  INTEGER NOT NULL DEFAULT 0,
    returns   INTEGER NOT NULL DEFAULT 0,
    crashes   INTEGER NOT NULL DEFAULT 0,
    alone     INTEGER NOT NULL DEFAULT 0,
    reason    TEXT,
    updated   REAL
);
CREATE TABLE IF NOT EXISTS stages (
    name      TEXT PRIMARY KEY,
    position  INTEGER NOT NULL,
    state     TEXT NOT NULL,
    n_jobs    INTEGER NOT NULL DEFAULT 0,
    info      TEXT,
    created   REAL
);
CREATE TABLE IF NOT EXISTS jobs (
    node              TEXT PRIMARY KEY,
    stage             TEXT NOT NULL REFERENCES stages (name),
    kind              TEXT NOT NULL DEFAULT 'bulk',
    state             TEXT NOT NULL CHECK (state IN ('planned', 'finished', 'failed', 'killed')),
    outcome           TEXT,
    n_units           INTEGER NOT NULL,
    events            INTEGER NOT NULL,
    predicted_seconds REAL,
    soft_limit_seconds REAL,
    hard_limit_seconds REAL,
    memory_mb         INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,
    kill_requested    INTEGER NOT NULL DEFAULT 0,
    created           REAL,
    ended             REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state);
CREATE INDEX IF NOT EXISTS jobs_by_stage ON jobs (stage, state);
CREATE TABLE IF NOT EXISTS job_units (
    node    TEXT NOT NULL,
    seq     INTEGER NOT NULL,
    unit_id INTEGER NOT NULL,
    PRIMARY KEY (node, seq)
);
CREATE TABLE IF NOT EXISTS attempts (
    node            TEXT NOT NULL,
    attempt         INTEGER NOT NULL,
    decision        INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    exit_code       INTEGER,
    message         TEXT,
    site            TEXT,
    wall_seconds    REAL,
    cpu_seconds     REAL,
    peak_rss_bytes  INTEGER,
    events          INTEGER,
    units_done      INTEGER NOT NULL DEFAULT 0,
    units_returned  INTEGER NOT NULL DEFAULT 0,
    soft_stopped    INTEGER NOT NULL DEFAULT 0,
    hard_killed     INTEGER NOT NULL DEFAULT 0,
    report_path     TEXT,
    usable_report   INTEGER NOT NULL DEFAULT 0,
    elapsed_seconds REAL,
    time            REAL NOT NULL,
    PRIMARY KEY (node, attempt)
);
CREATE INDEX IF NOT EXISTS attempts_by_time ON attempts (time);
"""
# Unit indices are built after the bulk insert of a new ledger (one sort instead of a million inserts into a
# b-tree). ``(run, lumi)`` is unique; ``state`` serves the per-state counts of ``status``.
_UNIT_INDICES = """
CREATE UNIQUE INDEX IF NOT EXISTS units_by_run_lumi ON units (run, lumi);
CREATE INDEX IF NOT EXISTS units_by_state ON units (state, events);
"""


_STATE_CODE = {name: code for code, name in enumerate(UNIT_STATES)}


class LedgerError(AutosplitError):
    """The ledger is missing, of another format, or asked for an impossible transition."""


@dataclass(frozen=True)
class AttemptRecord:
    """What the postjob decided for one (node, attempt); stored so a re-run returns the same answer."""

    node: str
    attempt: int
    decision: int
    outcome: str
    message: str = ""


@dataclass
class UnitChanges:
    """New states of some units (arrays aligned with ``ids``; ``state`` as 0 pending, 1 assigned, 2 done,
    3 quarantined; ``node`` and ``reason`` lists, ``None`` keeping the reason)."""

    ids: np.ndarray
    state: np.ndarray
    node: list[str | None]
    failures: np.ndarray
    returns: np.ndarray
    crashes: np.ndarray
    alone: np.ndarray
    reason: list[str | None]


class Ledger:
    """A task's ledger. Open with :meth:`create` (new task) or :meth:`open` (existing task)."""

    def __init__(self, path: Path, connection: sqlite3.Connection) -> None:
        self.path = path
        self._db = connection

    # ------------------------------------------------------------------ opening
    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, timeout=60.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("PRAGMA foreign_keys=ON")
        db.execute("PRAGMA busy_timeout=60000")
        return db

    @classmethod
    def create(cls, path: str | os.PathLike[str], units: pl.DataFrame, *, task: str) -> Ledger:
        """Create a ledger holding ``units`` (columns run, lumi, events), all pending.

        ``unit_id`` is the row position in ``units``. Creating over an existing ledger is refused.
        """
        path = Path(path)
        if path.exists():
            raise LedgerError(f"{path}: a ledger already exists; open it instead")
        db = cls._connect(path)
        os.chmod(path, 0o600)
        db.executescript(_SCHEMA)
        ledger = cls(path, db)
        now = time.time()
        n = units.height
        with ledger.transaction() as cur:
            # One bulk insert of plain Python ints (no per-row tuple building in Python), then the indices.
            cur.executemany(
                "INSERT INTO units (unit_id, run, lumi, events, updated) VALUES (?, ?, ?, ?, ?)",
                zip(
                    range(n),
                    units["run"].to_list(),
                    units["lumi"].to_list(),
                    units["events"].to_list(),
                    itertools.repeat(now, n),
                    strict=False,
                ),
            )
            try:
                for statement in filter(None, (x.strip() for x in _UNIT_INDICES.split(";"))):
                    cur.execute(statement)
            except sqlite3.IntegrityError:
                raise LedgerError("units: a (run, lumi) appears twice") from None
            cur.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [("format", LEDGER_FORMAT), ("task", task), ("state", "submitted"), ("created", str(now))],
            )
        return ledger

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Ledger:
        path = Path(path)
        if not path.is_file():
            raise LedgerError(f"{path}: no ledger here (is this a task directory?)")
        # Junk in place of the ledger (random bytes, an empty file, another file type) is refused before
        # SQLite opens it: connecting would switch it to WAL mode and leave -wal/-shm files next to it.
        try:
            with open(path, "rb") as handle:
                header = handle.read(16)
        except OSError as exc:
            raise LedgerError(f"{path}: cannot read the ledger ({exc.strerror or exc})") from None
        if header != b"SQLite format 3\x00":
            raise LedgerError(
                f"{path}: not a ledger (not an SQLite database); is this the task's ledger.sqlite?"
            )
        db = None
        try:
            db = cls._connect(path)
            found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.DatabaseError as exc:
            if db is not None:
                db.close()
            raise LedgerError(f"{path}: not a ledger ({exc}); is this the task's ledger.sqlite?") from None
        if not found or found[0] != LEDGER_FORMAT:
            db.close()
            raise LedgerError(
                f"{path}: ledger format {found[0] if found else None!r}, expected {LEDGER_FORMAT}"
            )
        return cls(path, db)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """An IMMEDIATE transaction: one writer at a time, all or nothing."""
        cur = self._db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        else:
            cur.execute("COMMIT")

    # ------------------------------------------------------------------ meta
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, **values: Any) -> None:
        with self.transaction() as cur:
            cur.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in values.items()],
            )

    def clear_meta(self, *keys: str) -> None:
        with self.transaction() as cur:
            cur.executemany("DELETE FROM meta WHERE key = ?", ((k,) for k in keys))

    # ------------------------------------------------------------------ stages and assignment
    def stage(self, name: str) -> dict[str, Any] | None:
        row = self._db.execute(
            "SELECT name, position, state, n_jobs, info, created FROM stages WHERE name = ?", (name,)
        ).fetchone()
        if row is None:
            return None
        return {
            "name": row[0],
            "position": row[1],
            "state": row[2],
            "n_jobs": row[3],
            "info": json.loads(row[4]) if row[4] else {},
            "created": row[5],
        }

    def stages(self) -> list[dict[str, Any]]:
        names = [r[0] for r in self._db.execute("SELECT name FROM stages ORDER BY position, created")]
        return [self.stage(n) for n in names]  # type: ignore[misc]

    # ------------------------------------------------------------------ version
    def version(self) -> int:
        """How many scheduler decisions the ledger has recorded (bindings and outcomes)."""
        return int(self.get_meta("version", "0") or 0)

    @staticmethod
    def _bump(cur: sqlite3.Cursor) -> int:
        row = cur.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        version = int(row[0]) + 1 if row else 1
        cur.execute(
            "INSERT INTO meta (key, value) VALUES ('version', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (str(version),),
        )
        return version

    # ------------------------------------------------------------------ binding jobs
    def bind_job(
        self,
        node: str,
        *,
        stage: str,
        kind: str,
        unit_ids: Sequence[int] | np.ndarray,
        predicted_seconds: float | None,
        soft_limit_seconds: float | None,
        hard_limit_seconds: float | None,
        memory_mb: int | None,
        units: UnitChanges | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> int:
        """Record that job ``node`` got ``unit_ids`` (in processing order); returns the new version.

        Every unit must be pending. The stage row is created with its first job. ``units`` are further unit
        changes the scheduler made on the way (e.g. units it quarantined), written in the same transaction.
        """
        ids = np.asarray(unit_ids, dtype=np.int64)
        if ids.size == 0:
            raise LedgerError(f"job {node} has no units")
        now = time.time()
        with self.transaction() as cur:
            if cur.execute("SELECT 1 FROM jobs WHERE node = ?", (node,)).fetchone():
                raise LedgerError(f"job {node} is already bound")
            not_pending = 0
            events = 0
            for chunk in _chunks(ids.tolist(), 30_000):
                marks = ",".join("?" * len(chunk))
                row = cur.execute(
                    f"SELECT SUM(state != 'pending'), COALESCE(SUM(events), 0), COUNT(*) FROM units "
                    f"WHERE unit_id IN ({marks})",
                    chunk,
                ).fetchone()
                not_pending += int(row[0] or 0) + (len(chunk) - int(row[2]))
                events += int(row[1])
            if not_pending:
                raise LedgerError(f"job {node}: {not_pending} of its units are not pending")
            if not cur.execute("SELECT 1 FROM stages WHERE name = ?", (stage,)).fetchone():
                position = cur.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM stages").fetchone()[0]
                cur.execute(
                    "INSERT INTO stages (name, position, state, n_jobs, info, created) "
                    "VALUES (?, ?, 'running', 0, ?, ?)",
                    (stage, position, json.dumps(dict(info or {}), default=json_default), now),
                )
            cur.execute("UPDATE stages SET n_jobs = n_jobs + 1 WHERE name = ?", (stage,))
            cur.execute(
                "INSERT INTO jobs (node, stage, kind, state, n_units, events, predicted_seconds, "
                "soft_limit_seconds, hard_limit_seconds, memory_mb, created) "
                "VALUES (?, ?, ?, 'planned', ?, ?, ?, ?, ?, ?, ?)",
                (
                    node,
                    stage,
                    kind,
                    int(ids.size),
                    events,
                    predicted_seconds,
                    soft_limit_seconds,
                    hard_limit_seconds,
                    memory_mb,
                    now,
                ),
            )
            cur.executemany(
                "INSERT INTO job_units (node, seq, unit_id) VALUES (?, ?, ?)",
                zip([node] * int(ids.size), range(int(ids.size)), ids.tolist(), strict=True),
            )
            cur.executemany(
                "UPDATE units SET state = 'assigned', node = ?, updated = ? WHERE unit_id = ?",
                zip([node] * int(ids.size), [now] * int(ids.size), ids.tolist(), strict=True),
            )
            if units is not None:
                self._write_units(cur, units, now)
            return self._bump(cur)

    def record_changes(
        self, units: UnitChanges, *, cancelled: Sequence[str] = (), outcome: str = "cancelled"
    ) -> int:
        """Write unit changes the scheduler made outside a binding or an outcome, and end the ``cancelled``
        jobs (bound, never reported: their DAG ended) as ``killed``; returns the new version."""
        now = time.time()
        with self.transaction() as cur:
            self._write_units(cur, units, now)
            cur.executemany(
                "UPDATE jobs SET state = 'killed', outcome = ?, ended = ? WHERE node = ? AND state = 'planned'",
                ((outcome, now, node) for node in cancelled),
            )
            return self._bump(cur)

    @staticmethod
    def _write_units(cur: sqlite3.Cursor, units: UnitChanges, now: float) -> None:
        """Write unit changes; refuses to undo a done unit or to mark done a unit no job held."""
        if units.ids.size == 0:
            return
        new_state = np.asarray(units.state, dtype=np.int64)
        ids = units.ids.astype(np.int64)
        for start in range(0, int(ids.size), 30_000):
            chunk = ids[start : start + 30_000].tolist()
            rows = cur.execute(
                f"SELECT unit_id, state FROM units WHERE unit_id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            if len(rows) != len(set(chunk)):
                raise LedgerError("unit changes name a unit this task does not have")
            current = dict(rows)
            for unit_id, code in zip(chunk, new_state[start : start + 30_000].tolist(), strict=True):
                was = current[unit_id]
                if was == "done" and code != _STATE_CODE["done"]:
                    raise LedgerError(f"unit {unit_id} is done; it cannot become {UNIT_STATES[code]}")
                if code == _STATE_CODE["done"] and was not in ("assigned", "done"):
                    raise LedgerError(f"unit {unit_id} is {was}: only a unit a job held can be done")
        cur.executemany(
            "UPDATE units SET state = ?, node = ?, failures = ?, returns = ?, crashes = ?, alone = ?, "
            "reason = COALESCE(?, reason), updated = ? WHERE unit_id = ?",
            zip(
                [UNIT_STATES[int(c)] for c in units.state.tolist()],
                units.node,
                units.failures.tolist(),
                units.returns.tolist(),
                units.crashes.tolist(),
                units.alone.astype(np.int64).tolist(),
                units.reason,
                [now] * int(units.ids.size),
                units.ids.tolist(),
                strict=True,
            ),
        )

    def set_stage_state(self, name: str, state: str, **info: Any) -> None:
        with self.transaction() as cur:
            row = cur.execute("SELECT info FROM stages WHERE name = ?", (name,)).fetchone()
            merged = {**(json.loads(row[0]) if row and row[0] else {}), **info}
            if row is None:
                position = cur.execute("SELECT COALESCE(MAX(position), -1) + 1 FROM stages").fetchone()[0]
                cur.execute(
                    "INSERT INTO stages (name, position, state, n_jobs, info, created) VALUES (?, ?, ?, 0, ?, ?)",
                    (name, position, state, json.dumps(merged, default=json_default), time.time()),
                )
            else:
                cur.execute(
                    "UPDATE stages SET state = ?, info = ? WHERE name = ?",
                    (state, json.dumps(merged, default=json_default), name),
                )

    # ------------------------------------------------------------------ queries
    def job(self, node: str) -> dict[str, Any] | None:
        cur = self._db.execute("SELECT * FROM jobs WHERE node = ?", (node,))
        row = cur.fetchone()
        return dict(zip([c[0] for c in cur.description], row, strict=True)) if row else None

    def jobs(self, stage: str | None = None) -> pl.DataFrame:
        query = "SELECT * FROM jobs" + (" WHERE stage = ?" if stage else "") + " ORDER BY created, node"
        return self._frame(query, (stage,) if stage else ())

    def attempts(self, node: str | None = None) -> pl.DataFrame:
        query = "SELECT * FROM attempts" + (" WHERE node = ?" if node else "") + " ORDER BY time"
        return self._frame(query, (node,) if node else ())

    def job_assignment(self, node: str) -> list[tuple[int, int]]:
        """The (run, lumi) pairs a job node was given."""
        return [
            (r, lu)
            for r, lu in self._db.execute(
                "SELECT u.run, u.lumi FROM job_units j JOIN units u ON u.unit_id = j.unit_id WHERE j.node = ? "
                "ORDER BY j.seq",
                (node,),
            )
        ]

    def job_unit_ids(self, node: str) -> list[int]:
        """The unit ids of a job, in the order the job processes them."""
        return [
            r[0]
            for r in self._db.execute("SELECT unit_id FROM job_units WHERE node = ? ORDER BY seq", (node,))
        ]

    def all_job_units(self) -> pl.DataFrame:
        """Every (node, seq, unit_id) of every job, in one query."""
        return self._frame("SELECT node, seq, unit_id FROM job_units ORDER BY node, seq", ())

    def units(self, state: str | None = None) -> pl.DataFrame:
        """Units (unit_id, run, lumi, events, state, node, failures, returns, crashes, alone, reason), optionally
        one state."""
        if state is not None and state not in UNIT_STATES:
            raise LedgerError(f"unknown unit state {state!r}; one of {', '.join(UNIT_STATES)}")
        query = "SELECT unit_id, run, lumi, events, state, node, failures, returns, crashes, alone, reason FROM units"
        return self._frame(
            query + (" WHERE state = ?" if state else "") + " ORDER BY unit_id", (state,) if state else ()
        )

    def unit_counts(self) -> dict[str, int]:
        """``{"total", "done", "pending", "quarantined", "assigned"}``; ``pending`` counts every unit not yet
        done or quarantined (waiting or held by a job), ``assigned`` those held by a job now."""
        counts = dict.fromkeys(UNIT_STATES, 0)
        for state, n in self._db.execute("SELECT state, COUNT(*) FROM units GROUP BY state"):
            counts[state] = n
        total = sum(counts.values())
        return {
            "total": total,
            "done": counts["done"],
            "pending": counts["pending"] + counts["assigned"],
            "quarantined": counts["quarantined"],
            "assigned": counts["assigned"],
        }

    def _frame(
        self, query: str, params: Sequence[Any], schema: Mapping[str, Any] | None = None
    ) -> pl.DataFrame:
        import polars as pl

        cur = self._db.execute(query, params)
        names = [c[0] for c in cur.description]
        rows = cur.fetchall()
        types = {name: (schema or {}).get(name, pl.Null if not rows else None) for name in names}
        if not rows:
            return pl.DataFrame(schema={n: t or pl.Null for n, t in types.items()})
        # Column by column: much faster than polars' row-wise construction for a million rows.
        columns = list(zip(*rows, strict=True))
        frame = pl.DataFrame(
            [pl.Series(name, list(values), strict=False) for name, values in zip(names, columns, strict=True)]
        )
        fixed = {n: t for n, t in types.items() if t is not None and t != pl.Null}
        return frame.cast(fixed) if fixed else frame

    # ------------------------------------------------------------------ summaries (one query each)
    def unit_summary(self) -> dict[str, tuple[int, int]]:
        """``{state: (units, events)}`` in one query (served by the ``(state, events)`` index)."""
        out = dict.fromkeys(UNIT_STATES, (0, 0))
        for state, n, events in self._db.execute(
            "SELECT state, COUNT(*), COALESCE(SUM(events), 0) FROM units GROUP BY state"
        ):
            out[state] = (int(n), int(events))
        return out

    def quarantine_reasons(self, limit: int = 5) -> list[tuple[str | None, int]]:
        """The most frequent quarantine reasons: [(reason, units)]."""
        return [
            (r, int(n))
            for r, n in self._db.execute(
                "SELECT reason, COUNT(*) AS n FROM units WHERE state = 'quarantined' GROUP BY reason "
                "ORDER BY n DESC LIMIT ?",
                (limit,),
            )
        ]

    def job_summary(self) -> list[tuple[str, str, str | None, str | None, int]]:
        """Jobs grouped by (stage, state, job outcome, last attempt's outcome): [(stage, state, outcome,
        last_attempt_outcome, count)] in one query; planned jobs come per node (see :meth:`planned_jobs`)."""
        return [
            (stage, state, outcome, last, int(n))
            for stage, state, outcome, last, n in self._db.execute(
                "SELECT j.stage, j.state, j.outcome, a.outcome, COUNT(*) FROM jobs j "
                "LEFT JOIN attempts a ON a.node = j.node AND a.attempt = j.attempts - 1 "
                "WHERE j.state != 'planned' GROUP BY 1, 2, 3, 4"
            )
        ]

    def planned_jobs(self) -> list[tuple[str, str, str | None]]:
        """Jobs bound and not ended: [(node, stage, last attempt's outcome or None)] (at most the chains)."""
        return list(
            self._db.execute(
                "SELECT j.node, j.stage, a.outcome FROM jobs j "
                "LEFT JOIN attempts a ON a.node = j.node AND a.attempt = j.attempts - 1 "
                "WHERE j.state = 'planned'"
            )
        )

    def bound_since(self) -> dict[str, float]:
        """Jobs bound and not ended: node -> when it was bound (seconds since the epoch)."""
        return {
            str(node): float(created or 0.0)
            for node, created in self._db.execute("SELECT node, created FROM jobs WHERE state = 'planned'")
        }

    def usable_report_count(self) -> int:
        """How many attempts left a usable, archived report (one query, no walk of ``jobs/``)."""
        (n,) = self._db.execute(
            "SELECT COUNT(*) FROM attempts WHERE usable_report = 1 AND report_path IS NOT NULL"
        ).fetchone()
        return int(n)

    def newest_reports(self, limit: int) -> list[str]:
        """The archived usable reports of the newest ``limit`` attempts that left one, newest first."""
        return [
            r[0]
            for r in self._db.execute(
                "SELECT report_path FROM attempts WHERE usable_report = 1 AND report_path IS NOT NULL "
                "ORDER BY time DESC LIMIT ?",
                (int(limit),),
            )
        ]

    def attempt_summary(self) -> list[tuple[str | None, str, int | None, int, float]]:
        """Attempts grouped by (site, outcome, exit code): [(site, outcome, exit_code, count, wall seconds)]."""
        return [
            (site, outcome, code, int(n), float(wall or 0.0))
            for site, outcome, code, n, wall in self._db.execute(
                "SELECT site, outcome, exit_code, COUNT(*), SUM(wall_seconds) FROM attempts GROUP BY 1, 2, 3"
            )
        ]

    def error_messages(self, exit_code: int | None, ok_outcomes: Sequence[str], limit: int = 3) -> list[str]:
        """Up to ``limit`` distinct messages of failed attempts with this exit code (first seen first)."""
        marks = ",".join("?" * len(ok_outcomes))
        where = "exit_code IS ?" if exit_code is None else "exit_code = ?"
        return [
            r[0]
            for r in self._db.execute(
                f"SELECT message, MIN(time) FROM attempts WHERE {where} AND outcome NOT IN ({marks}) "
                "AND message IS NOT NULL AND message != '' GROUP BY message ORDER BY 2 LIMIT ?",
                (exit_code, *ok_outcomes, limit),
            )
        ]

    # ------------------------------------------------------------------ postjob transitions
    def recorded_attempt(self, node: str, attempt: int) -> AttemptRecord | None:
        row = self._db.execute(
            "SELECT decision, outcome, message FROM attempts WHERE node = ? AND attempt = ?", (node, attempt)
        ).fetchone()
        return AttemptRecord(node, attempt, row[0], row[1], row[2] or "") if row else None

    def record_outcome(
        self,
        node: str,
        attempt: int,
        *,
        decision: int,
        outcome: str,
        message: str = "",
        details: Mapping[str, Any] | None = None,
        units: UnitChanges | None = None,
        done: int = 0,
        returned: int = 0,
        job_state: str | None = None,
    ) -> AttemptRecord:
        """Record the postjob's decision on one job attempt and the unit changes it caused, once.

        ``units`` are the scheduler's unit changes (the job's units: done, pending again, quarantined, with
        their counters); ``done``/``returned`` are counted into the attempt row. ``job_state`` ends the job
        (``finished``, ``failed``, ``killed``); ``None`` keeps it planned (DAGMan will run it again).
        Re-recording the same (node, attempt) returns the stored record and changes nothing.
        """
        details = dict(details or {})
        now = time.time()
        with self.transaction() as cur:
            row = cur.execute(
                "SELECT decision, outcome, message FROM attempts WHERE node = ? AND attempt = ?",
                (node, attempt),
            ).fetchone()
            if row:
                return AttemptRecord(node, attempt, row[0], row[1], row[2] or "")
            if not cur.execute("SELECT 1 FROM jobs WHERE node = ?", (node,)).fetchone():
                raise LedgerError(f"unknown job node {node!r}")
            if job_state is not None and job_state not in JOB_STATES:
                raise LedgerError(f"unknown job state {job_state!r}")
            if units is not None:
                self._write_units(cur, units, now)
            cur.execute(
                "INSERT INTO attempts (node, attempt, decision, outcome, exit_code, message, site, wall_seconds, "
                "cpu_seconds, peak_rss_bytes, events, units_done, units_returned, soft_stopped, hard_killed, "
                "report_path, usable_report, elapsed_seconds, time) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    node,
                    attempt,
                    decision,
                    outcome,
                    details.get("exit_code"),
                    message,
                    details.get("site"),
                    details.get("wall_seconds"),
                    details.get("cpu_seconds"),
                    details.get("peak_rss_bytes"),
                    details.get("events"),
                    int(done),
                    int(returned),
                    int(bool(details.get("soft_stopped"))),
                    int(bool(details.get("hard_killed"))),
                    details.get("report_path"),
                    int(bool(details.get("usable_report"))),
                    details.get("elapsed_seconds"),
                    now,
                ),
            )
            cur.execute("UPDATE jobs SET attempts = MAX(attempts, ?) WHERE node = ?", (attempt + 1, node))
            if job_state is not None:
                cur.execute(
                    "UPDATE jobs SET state = ?, outcome = ?, ended = ? WHERE node = ?",
                    (job_state, outcome, now, node),
                )
            self._bump(cur)
        return AttemptRecord(node, attempt, decision, outcome, message)

    def escalate_attempt(self, node: str, attempt: int, decision: int, message: str) -> None:
        """Change a recorded decision (e.g. to abort the DAG) so a re-run of the script returns it too."""
        with self.transaction() as cur:
            cur.execute(
                "UPDATE attempts SET decision = ?, message = ? WHERE node = ? AND attempt = ?",
                (decision, message, node, attempt),
            )

    def stage_failure_counts(self, stage: str) -> tuple[int, int]:
        """(jobs of ``stage`` that ended, of which failed) — ended = accounted for by their last postjob."""
        row = self._db.execute(
            "SELECT COUNT(*), SUM(state = 'failed') FROM jobs WHERE stage = ? AND state != 'planned'",
            (stage,),
        ).fetchone()
        return int(row[0] or 0), int(row[1] or 0)

    # ------------------------------------------------------------------ operator actions
    def quarantine(
        self, unit_ids: Iterable[int], reason: str, *, only_states: Sequence[str] = ("pending",)
    ) -> int:
        """Quarantine units (by id) that are in one of ``only_states``; returns how many changed."""
        ids = [int(u) for u in unit_ids]
        states = ",".join(f"'{s}'" for s in only_states if s in UNIT_STATES)
        changed = 0
        with self.transaction() as cur:
            for chunk in _chunks(ids, 30_000):
                changed += cur.execute(
                    f"UPDATE units SET state = 'quarantined', reason = ?, updated = ? WHERE state IN ({states}) "
                    f"AND unit_id IN ({','.join('?' * len(chunk))})",
                    (reason, time.time(), *chunk),
                ).rowcount
            if changed:
                self._bump(cur)
        return changed

    def request_kill(self, nodes: Iterable[str] | None = None) -> list[str]:
        """Mark jobs (all planned jobs when ``nodes`` is None) as kill-requested; returns the nodes marked."""
        with self.transaction() as cur:
            if nodes is None:
                names = [r[0] for r in cur.execute("SELECT node FROM jobs WHERE state = 'planned'")]
            else:
                names = list(nodes)
                unknown = [
                    n for n in names if not cur.execute("SELECT 1 FROM jobs WHERE node = ?", (n,)).fetchone()
                ]
                if unknown:
                    raise LedgerError(f"no job named {', '.join(unknown)} in this task")
            cur.executemany("UPDATE jobs SET kill_requested = 1 WHERE node = ?", ((n,) for n in names))
        return names

    def pending_unit_ids(self) -> np.ndarray:
        return np.array(
            [r[0] for r in self._db.execute("SELECT unit_id FROM units WHERE state = 'pending'")], np.int64
        )


def _chunks(values: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]
