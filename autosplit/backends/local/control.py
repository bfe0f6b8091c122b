"""Controlling a running DAG from outside: halt, resume, remove, and finding the executor running it.

These work through files next to the DAG, so they need no daemon and work across processes:

* ``<dag>.halt`` -- while it exists the DAG is halted (no new PRE scripts or jobs; running jobs finish and
  their POST scripts run; when nothing is left running the DAG exits 1 with a rescue DAG, after its FINAL
  node). Deleting it before then resumes the DAG. This is DAGMan's halt file.
* ``<dag>.remove`` -- the equivalent of ``condor_rm`` of the DAGMan job: running jobs are removed, scripts
  killed, a rescue DAG written, the FINAL node run; exit status 2. The executor also gets SIGUSR1 (DAGMan's
  ``remove_kill_sig``) so it reacts at once, when it runs as its own process (it says so in its lock file).
"""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from autosplit.backends.local.errors import DagError
from autosplit.backends.local.journal import holder


def _sibling(dag: str | os.PathLike[str], suffix: str) -> Path:
    path = Path(dag)
    return path.with_name(path.name + suffix)


def running_pid(dag: str | os.PathLike[str]) -> int | None:
    """Pid of the executor currently running this DAG, or None."""
    found = holder(_sibling(dag, ".lock"))
    return found[0] if found else None


def request_halt(dag: str | os.PathLike[str]) -> Path:
    """Halt the DAG (creates ``<dag>.halt``). Returns the halt file's path."""
    halt = _sibling(dag, ".halt")
    if not os.path.isfile(dag):
        raise DagError(f"{dag}: no such DAG file")
    halt.touch()
    return halt


def request_resume(dag: str | os.PathLike[str]) -> bool:
    """Resume a halted DAG (removes ``<dag>.halt``). True if it was halted."""
    try:
        _sibling(dag, ".halt").unlink()
        return True
    except FileNotFoundError:
        return False


def request_remove(dag: str | os.PathLike[str]) -> int | None:
    """Remove a running DAG (like ``condor_rm`` of its DAGMan job). Returns the executor's pid, or None
    (nothing is running; no request is left behind then)."""
    found = holder(_sibling(dag, ".lock"))
    if found is None:
        return None
    pid, accepts_signals = found
    _sibling(dag, ".remove").touch()
    if accepts_signals:  # an executor embedded in another program only polls the file
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGUSR1)
    return pid
