"""The ledger: the one record of every unit's and every job's state in a task (SQLite, WAL mode).

Unit states:

* ``pending`` — waiting for a job (``failures`` counts earlier failed attempts, ``blamed`` marks a unit a
  report named as the cause of a failure);
* ``assigned`` — held by the job node in ``node``;
* ``done`` — processed by ``node`` and its outputs committed;
* ``quarantined`` — given up on, with a ``reason``.

Every change is one transaction, and the changes a job's postjob makes are keyed by (node, attempt), so
running a postjob twice (DAGMan re-runs scripts after a restart) changes nothing the second time. Every unit
of the dataset ends ``done`` or ``quarantined`` — never lost, never done twice.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from autosplit._io import json_default
from autosplit.errors import AutosplitError

LEDGER_FORMAT = "autosplit-ledger/1"
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
    blamed    INTEGER NOT NULL DEFAULT 0,
    reason    TEXT,
    updated   REAL,
    UNIQUE (run, lumi)
);
CREATE INDEX IF NOT EXISTS units_by_state ON units (state);
CREATE INDEX IF NOT EXISTS units_by_node ON units (node);
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
    state             TEXT NOT NULL CHECK (state IN ('planned', 'finished', 'failed', 'killed')),
    n_units           INTEGER NOT NULL,
    events            INTEGER NOT NULL,
    predicted_seconds REAL,
    soft_limit_seconds REAL,
    hard_limit_seconds REAL,
    memory_mb         INTEGER,
    attempts          INTEGER NOT NULL DEFAULT 0,
    kill_requested    INTEGER NOT NULL DEFAULT 0,
    created           REAL
);
CREATE TABLE IF NOT EXISTS job_units (
    node    TEXT NOT NULL,
    unit_id INTEGER NOT NULL,
    PRIMARY KEY (node, unit_id)
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
    time            REAL NOT NULL,
    PRIMARY KEY (node, attempt)
);
"""


_UNIT_FRAME = {
    "unit_id": pl.Int64,
    "run": pl.Int64,
    "lumi": pl.Int64,
    "events": pl.Int64,
    "state": pl.String,
    "node": pl.String,
    "failures": pl.Int64,
    "blamed": pl.Int64,
    "reason": pl.String,
}


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
        rows = zip(
            range(units.height),
            units["run"].to_list(),
            units["lumi"].to_list(),
            units["events"].to_list(),
            strict=True,
        )
        now = time.time()
        with ledger.transaction() as cur:
            cur.executemany(
                "INSERT INTO units (unit_id, run, lumi, events, updated) VALUES (?, ?, ?, ?, ?)",
                ((uid, run, lumi, events, now) for uid, run, lumi, events in rows),
            )
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
        db = cls._connect(path)
        try:
            found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{path}: not a ledger ({exc})") from None
        if not found or found[0] != LEDGER_FORMAT:
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

    def plan_stage(
        self,
        name: str,
        position: int,
        jobs: Sequence[Mapping[str, Any]],
        *,
        info: Mapping[str, Any] | None = None,
        meta: Mapping[str, str] | None = None,
    ) -> bool:
        """Record a stage and assign units to its jobs, in one transaction (with ``meta`` entries).

        Each job mapping holds ``node``, ``unit_ids`` and optionally ``predicted_seconds``,
        ``soft_limit_seconds``, ``hard_limit_seconds``, ``memory_mb``. Every unit must be pending.
        Returns False (and changes nothing) when the stage was already planned: re-running a PRE script is
        harmless.
        """
        now = time.time()
        with self.transaction() as cur:
            if cur.execute("SELECT 1 FROM stages WHERE name = ?", (name,)).fetchone():
                return False
            cur.execute(
                "INSERT INTO stages (name, position, state, n_jobs, info, created) VALUES (?, ?, 'planned', ?, ?, ?)",
                (name, position, len(jobs), json.dumps(dict(info or {}), default=json_default), now),
            )
            for job in jobs:
                node = job["node"]
                unit_ids = [int(u) for u in job["unit_ids"]]
                if not unit_ids:
                    raise LedgerError(f"job {node} has no units")
                # Chunk the check to stay under SQLite's parameter limit for very large jobs.
                not_pending = 0
                for chunk in _chunks(unit_ids, 30_000):
                    not_pending += cur.execute(
                        f"SELECT COUNT(*) FROM units WHERE unit_id IN ({','.join('?' * len(chunk))}) "
                        "AND state != 'pending'",
                        chunk,
                    ).fetchone()[0]
                if not_pending:
                    raise LedgerError(f"job {node}: {not_pending} of its units are not pending")
                events = 0
                for chunk in _chunks(unit_ids, 30_000):
                    events += cur.execute(
                        f"SELECT COALESCE(SUM(events), 0) FROM units WHERE unit_id IN ({','.join('?' * len(chunk))})",
                        chunk,
                    ).fetchone()[0]
                cur.execute(
                    "INSERT INTO jobs (node, stage, state, n_units, events, predicted_seconds, soft_limit_seconds, "
                    "hard_limit_seconds, memory_mb, created) VALUES (?, ?, 'planned', ?, ?, ?, ?, ?, ?, ?)",
                    (
                        node,
                        name,
                        len(unit_ids),
                        events,
                        job.get("predicted_seconds"),
                        job.get("soft_limit_seconds"),
                        job.get("hard_limit_seconds"),
                        job.get("memory_mb"),
                        now,
                    ),
                )
                cur.executemany(
                    "INSERT INTO job_units (node, unit_id) VALUES (?, ?)", ((node, u) for u in unit_ids)
                )
                cur.executemany(
                    "UPDATE units SET state = 'assigned', node = ?, updated = ? WHERE unit_id = ?",
                    ((node, now, u) for u in unit_ids),
                )
            cur.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                list((meta or {}).items()),
            )
        return True

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
                "ORDER BY u.unit_id",
                (node,),
            )
        ]

    def job_unit_ids(self, node: str) -> list[int]:
        return [
            r[0]
            for r in self._db.execute(
                "SELECT unit_id FROM job_units WHERE node = ? ORDER BY unit_id", (node,)
            )
        ]

    def units(self, state: str | None = None) -> pl.DataFrame:
        """Units (unit_id, run, lumi, events, state, node, failures, blamed, reason), optionally one state."""
        if state is not None and state not in UNIT_STATES:
            raise LedgerError(f"unknown unit state {state!r}; one of {', '.join(UNIT_STATES)}")
        query = "SELECT unit_id, run, lumi, events, state, node, failures, blamed, reason FROM units"
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
        cur = self._db.execute(query, params)
        names = [c[0] for c in cur.description]
        rows = cur.fetchall()
        types = {name: (schema or {}).get(name, pl.Null if not rows else None) for name in names}
        if not rows:
            return pl.DataFrame(schema={n: t or pl.Null for n, t in types.items()})
        frame = pl.DataFrame(rows, schema=names, orient="row", infer_schema_length=None)
        fixed = {n: t for n, t in types.items() if t is not None and t != pl.Null}
        return frame.cast(fixed) if fixed else frame

    # ------------------------------------------------------------------ postjob transitions
    def recorded_attempt(self, node: str, attempt: int) -> AttemptRecord | None:
        row = self._db.execute(
            "SELECT decision, outcome, message FROM attempts WHERE node = ? AND attempt = ?", (node, attempt)
        ).fetchone()
        return AttemptRecord(node, attempt, row[0], row[1], row[2] or "") if row else None

    def close_attempt(
        self,
        node: str,
        attempt: int,
        *,
        decision: int,
        outcome: str,
        done: Iterable[tuple[int, int]] = (),
        returned: str = "all",
        keep: Iterable[tuple[int, int]] = (),
        blamed: Iterable[tuple[int, int]] = (),
        count_failure: bool = False,
        final_job_state: str | None = None,
        quarantine_returned: bool = False,
        message: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> AttemptRecord:
        """Apply the postjob's verdict on one job attempt, once.

        ``done`` units (run, lumi) become done; they must be assigned to ``node``. When ``returned`` is
        ``"all"`` every other unit of the node goes back to pending (``"none"``: they stay assigned, for a
        retry of the same job); ``keep`` units stay assigned either way (the job retries just them).
        ``count_failure`` adds one failure to every returned unit; ``blamed`` units
        (named by the report as the cause) get one failure and the blame mark in any case. ``quarantine_returned`` quarantines the returned units
        instead (the last stage). ``final_job_state`` sets the job's state. Re-applying the same
        (node, attempt) returns the stored record and changes nothing.
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
            held = {
                (r, lu): uid
                for uid, r, lu in cur.execute(
                    "SELECT unit_id, run, lumi FROM units WHERE node = ? AND state = 'assigned'", (node,)
                )
            }
            already = {
                (r, lu)
                for r, lu in cur.execute(
                    "SELECT run, lumi FROM units WHERE node = ? AND state = 'done'", (node,)
                )
            }
            done_ids = []
            for key in done:
                pair = (int(key[0]), int(key[1]))
                uid = held.get(pair)
                if uid is None:
                    if pair in already:  # done by an earlier attempt of this node: counted once, not again
                        continue
                    raise LedgerError(f"job {node}: unit run {key[0]} lumi {key[1]} is not assigned to it")
                done_ids.append(uid)
            cur.executemany(
                "UPDATE units SET state = 'done', updated = ? WHERE unit_id = ?", ((now, u) for u in done_ids)
            )
            done_set = set(done_ids) | {
                held[(int(k[0]), int(k[1]))] for k in keep if (int(k[0]), int(k[1])) in held
            }
            returned_ids = [u for u in held.values() if u not in done_set] if returned == "all" else []
            blamed_set = {held[(int(k[0]), int(k[1]))] for k in blamed if (int(k[0]), int(k[1])) in held}
            increments = [(1 if (count_failure or u in blamed_set) else 0, u) for u in returned_ids]
            if returned_ids and quarantine_returned:
                cur.executemany(
                    "UPDATE units SET state = 'quarantined', failures = failures + ?, reason = ?, updated = ? "
                    "WHERE unit_id = ?",
                    ((inc, message or "unfinished after the last stage", now, u) for inc, u in increments),
                )
            elif returned_ids:
                cur.executemany(
                    "UPDATE units SET state = 'pending', node = NULL, failures = failures + ?, "
                    "reason = COALESCE(?, reason), updated = ? WHERE unit_id = ?",
                    ((inc, message or None, now, u) for inc, u in increments),
                )
            if blamed_set:
                cur.executemany(
                    "UPDATE units SET blamed = 1, reason = ?, updated = ? WHERE unit_id = ?",
                    ((message or "named as the cause of a failure", now, u) for u in blamed_set),
                )
            cur.execute(
                "INSERT INTO attempts (node, attempt, decision, outcome, exit_code, message, site, wall_seconds, "
                "cpu_seconds, peak_rss_bytes, events, units_done, units_returned, soft_stopped, hard_killed, "
                "report_path, usable_report, time) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                    len(done_ids),
                    len(returned_ids),
                    int(bool(details.get("soft_stopped"))),
                    int(bool(details.get("hard_killed"))),
                    details.get("report_path"),
                    int(bool(details.get("usable_report"))),
                    now,
                ),
            )
            cur.execute(
                "UPDATE jobs SET attempts = MAX(attempts, ?) WHERE node = ?",
                (attempt + 1, node),
            )
            if final_job_state is not None:
                if final_job_state not in JOB_STATES:
                    raise LedgerError(f"unknown job state {final_job_state!r}")
                cur.execute("UPDATE jobs SET state = ? WHERE node = ?", (final_job_state, node))
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
        return changed

    def release(self, states: Sequence[str] = ("quarantined",)) -> int:
        """Put units in ``states`` (quarantined, or pending units with failures) back to clean pending."""
        changed = 0
        with self.transaction() as cur:
            if "quarantined" in states:
                changed += cur.execute(
                    "UPDATE units SET state = 'pending', node = NULL, failures = 0, blamed = 0, updated = ? "
                    "WHERE state = 'quarantined'",
                    (time.time(),),
                ).rowcount
            if "failed" in states:
                changed += cur.execute(
                    "UPDATE units SET failures = 0, blamed = 0, updated = ? WHERE state = 'pending' AND failures > 0",
                    (time.time(),),
                ).rowcount
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
