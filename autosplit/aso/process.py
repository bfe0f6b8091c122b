"""Running the agent as a background process (for the local backend).

:func:`spawn_agent` starts ``python -m autosplit.aso run <db>`` (argv list, no shell) in its own
session; :func:`stop_agent` sends SIGTERM, waits for the clean exit (copies in progress are abandoned and
their rows released) and only then falls back to SIGKILL, which is safe too: leases expire.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from autosplit.aso.agent import AgentConfig


def agent_command(
    db_path: str | os.PathLike[str],
    config: AgentConfig | None = None,
    *,
    until: str = "stopped",
    stop_file: str | os.PathLike[str] | None = None,
    max_rate: float | None = None,
    fsync: bool = True,
) -> list[str]:
    """The argv that runs an agent with ``config`` on ``db_path``."""
    cfg = config or AgentConfig()
    argv = [
        sys.executable,
        "-m",
        "autosplit.aso",
        "run",
        os.fspath(db_path),
        "--workers",
        str(cfg.workers),
        "--prefetch",
        str(cfg.prefetch),
        "--lease",
        repr(cfg.lease_seconds),
        "--poll",
        repr(cfg.poll_seconds),
        "--max-retries",
        str(cfg.retry.max_retries),
        "--backoff",
        repr(cfg.retry.backoff_base),
        "--backoff-max",
        repr(cfg.retry.backoff_max),
        "--max-transfers",
        str(cfg.flow.max_transfers),
        "--max-bytes",
        str(cfg.flow.max_bytes),
    ]
    for dest, limit in sorted(cfg.flow.per_destination.items()):
        argv += ["--dest-limit", f"{dest}={limit.max_transfers},{limit.max_bytes}"]
    if until == "idle":
        argv.append("--once")
    elif until == "final":
        argv.append("--drain")
    if stop_file is not None:
        argv += ["--stop-file", os.fspath(stop_file)]
    if max_rate:
        argv += ["--max-rate", str(int(max_rate))]
    if not fsync:
        argv.append("--no-fsync")
    return argv


def spawn_agent(
    db_path: str | os.PathLike[str],
    config: AgentConfig | None = None,
    *,
    log_path: str | os.PathLike[str] | None = None,
    **options: object,
) -> subprocess.Popen[bytes]:
    """Start an agent process (own session, stdin closed; output appended to ``log_path`` if given).

    ``options`` are those of :func:`agent_command` (``until``, ``stop_file``, ``max_rate``, ``fsync``).
    """
    argv = agent_command(db_path, config, **options)  # type: ignore[arg-type]
    log = None
    if log_path is not None:
        fd = os.open(Path(log_path), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
        log = os.fdopen(fd, "ab")
    try:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log if log is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT if log is not None else subprocess.DEVNULL,
            start_new_session=True,
            shell=False,
        )
    finally:
        if log is not None:
            log.close()


def stop_agent(process: subprocess.Popen[bytes], timeout: float = 30.0) -> int:
    """SIGTERM the agent and wait up to ``timeout`` seconds, then SIGKILL; returns its exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
