"""Reading a task without ever writing to it: a :class:`TaskDir` whose ledger opens read-only.

The monitor reads tasks that may be running: the executor, PRE and POST scripts write the ledger
(SQLite in WAL mode) while we read it. A WAL reader sees the last committed transaction and never blocks
a writer. Opening with ``mode=ro`` makes sure nothing the monitor does can change the ledger; SQLite may
still create the ``-wal``/``-shm`` side files a WAL reader needs (they hold no data of ours) when the task's
writers have all closed and removed them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.request import pathname2url

from autosplit.ledger import LEDGER_FORMAT, Ledger, LedgerError
from autosplit.pipeline.taskdir import TaskDir

BUSY_TIMEOUT_SECONDS = 10.0


def open_ledger_read_only(path: Path) -> Ledger:
    """Open a task's ledger for reading only (``file:...?mode=ro``); raises :class:`LedgerError`."""
    if not path.is_file():
        raise LedgerError(f"{path}: no ledger here (is this a task directory?)")
    uri = f"file:{pathname2url(str(path))}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_SECONDS, check_same_thread=False)
    try:
        found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
    except sqlite3.DatabaseError as exc:
        db.close()
        raise LedgerError(f"{path}: cannot read the ledger ({exc})") from None
    if not found or found[0] != LEDGER_FORMAT:
        db.close()
        raise LedgerError(f"{path}: ledger format {found[0] if found else None!r}, expected {LEDGER_FORMAT}")
    return Ledger(path, db)


class ReadOnlyTaskDir(TaskDir):
    """A task directory as the monitor sees it: the same paths and status code, a read-only ledger."""

    def ledger(self) -> Ledger:
        return open_ledger_read_only(self.ledger_path)
