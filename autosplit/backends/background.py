"""Running a DAG with the local executor as a detached background process.

The executor keeps running when the command that started it exits (its own session), so ``autosplit run``
can be interrupted and started again: it finds the running executor through the DAG's lock file, or, if the
executor died, starts a new one, which resumes the DAG without re-running finished nodes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from autosplit.backends.local.control import request_halt, request_remove, running_pid

__all__ = ["request_halt", "request_remove", "running_pid", "start_background"]


def start_background(
    dag: str | os.PathLike[str],
    *,
    max_jobs: int | None = None,
    log_path: str | os.PathLike[str] | None = None,
    poll_interval: float = 0.5,
    defer_factor: float = 1.0,
    env: dict[str, str] | None = None,
) -> int:
    """Start ``python -m autosplit.backends.local run DAG`` detached; returns its pid.

    Output goes to ``log_path`` (default ``<dag>.executor.log``). Does nothing and returns the running
    executor's pid if one already runs this DAG. Returns once the executor holds the DAG's lock (or has
    exited), so a caller that asks right after sees it running.
    """
    dag = Path(dag).resolve()
    existing = running_pid(dag)
    if existing is not None:
        return existing
    argv = [
        sys.executable,
        "-m",
        "autosplit.backends.local",
        "run",
        str(dag),
        "--poll-interval",
        f"{poll_interval:g}",
        "--defer-factor",
        f"{defer_factor:g}",
    ]
    if max_jobs is not None:
        argv += ["--max-jobs", str(max_jobs)]
    log = Path(log_path) if log_path else dag.with_name(dag.name + ".executor.log")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            argv,
            cwd=dag.parent,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    deadline = time.monotonic() + 10.0
    while running_pid(dag) is None and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    return proc.pid
