"""Crash safety: the DAG lock file and an append-only progress journal next to the DAG file.

``<dag>.lock`` holds the executor's pid and is ``flock``-ed while it runs; the kernel drops that lock when
the process dies, even on SIGKILL, so a lock file that can be locked again means the previous run did not
finish: the next run starts in recovery mode (as DAGMan does when it finds its lock file).

``<dag>.journal`` is a JSON-lines record of the current run: ``start``, ``attempt`` (a retry began),
``spawn``/``reap`` (child processes, so orphans of a crashed run can be killed), ``jobend`` (a node's job
finished with this ``$RETURN``), ``done``/``failed`` (a node's final state) and ``finish``. Records are
written with ``os.write`` on an ``O_APPEND`` descriptor (they survive the death of the process at once)
and fsync-ed once per scheduler cycle (group commit) so they also survive a machine crash. Replaying the
journal is idempotent: a node is DONE after recovery exactly when a ``done`` record exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from autosplit.backends.local.errors import DagLockedError


class DagLock:
    """``<dag>.lock``: exclusive while held; ``stale`` is True when a previous run left it behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stale = False
        self.accepts_signals = False  # written into the file: may others send SIGUSR1 to this process?
        self._fd: int | None = None

    def acquire(self) -> None:
        existed = self.path.exists() and self.path.stat().st_size > 0
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise DagLockedError(
                f"{self.path}: this DAG is already being run by process {holder}; "
                "stop it first (autosplit dagman rm / halt) or wait for it to finish"
            ) from None
        self.stale = existed
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {'signals' if self.accepts_signals else 'nosignals'}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file (clean exit: the next run starts fresh)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)
        self._fd = None

    def abandon(self) -> None:
        """Close without removing (stopped for restart: the next run recovers)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def holder(lock_path: Path) -> tuple[int, bool] | None:
    """(pid, accepts SIGUSR1) of the live executor holding ``lock_path``, or None if nobody holds it."""
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            words = os.read(fd, 200).decode(errors="replace").split()
            if not words or not words[0].isdigit():
                return None
            return int(words[0]), words[1:2] == ["signals"]
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


@dataclass
class Recovery:
    """State of an unfinished run, rebuilt from its journal."""

    dag_id: int = 0
    rescue: str | None = None
    done: list[str] = field(default_factory=list)
    failed: dict[str, tuple[int, str]] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    jobend: dict[str, dict] = field(default_factory=dict)
    orphans: dict[int, tuple[float, str]] = field(default_factory=dict)  # pid -> (start time, node)
    max_cluster: int = 0


class Journal:
    """Append-only JSON-lines progress journal with group commit.

    :meth:`commit` fsyncs pending records, at most once per ``commit_interval`` seconds unless forced:
    records reach the file at once (they survive the executor's death), the interval only bounds what a
    machine crash can lose (those nodes are re-run; scripts and jobs must be idempotent anyway).
    """

    def __init__(self, path: Path, commit_interval: float = 0.05) -> None:
        self.path = path
        self.commit_interval = commit_interval
        self._fd: int | None = None
        self._dirty = False
        self._last_commit = 0.0

    @staticmethod
    def _records(path: Path) -> list[dict]:
        try:
            data = path.read_bytes()
        except OSError:
            return []
        out = []
        for line in data.splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn last line from a crash
        return out

    def replay(self) -> tuple[Recovery | None, int]:
        """(state of the last run if it did not finish, else None; largest cluster id ever used)."""
        records = self._records(self.path)
        max_cluster = max((int(r.get("c", 0)) for r in records), default=0)
        start = max((i for i, r in enumerate(records) if r.get("e") == "start"), default=None)
        if start is None or any(r.get("e") == "finish" for r in records[start:]):
            return None, max_cluster
        state = Recovery(dag_id=int(records[start].get("dag_id", 0)), rescue=records[start].get("rescue"))
        state.max_cluster = max_cluster
        done: dict[str, None] = {}
        for r in records[start + 1 :]:
            kind, node = r.get("e"), r.get("n")
            if kind == "attempt":
                state.retries[node] = int(r["k"])
                state.jobend.pop(node, None)
                state.failed.pop(node, None)
            elif kind == "jobend":
                state.jobend[node] = r
            elif kind == "done":
                done[node] = None
                state.jobend.pop(node, None)
            elif kind == "failed":
                state.failed[node] = (int(r.get("r", 1)), str(r.get("d", "")))
                state.jobend.pop(node, None)
            elif kind == "spawn":
                state.orphans[int(r["pid"])] = (float(r.get("t", 0.0)), str(node))
            elif kind == "reap":
                state.orphans.pop(int(r["pid"]), None)
        state.done = list(done)
        return state, max_cluster

    def open(self, fresh: bool) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if fresh else 0)
        self._fd = os.open(self.path, flags, 0o644)
        if fresh:
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def record(self, kind: str, **fields: object) -> None:
        if self._fd is None:
            return
        fields["e"] = kind
        os.write(self._fd, (json.dumps(fields, separators=(",", ":")) + "\n").encode())
        self._dirty = True

    def commit(self, force: bool = False) -> None:
        if self._fd is None or not self._dirty:
            return
        now = time.monotonic()
        if force or now - self._last_commit >= self.commit_interval:
            os.fsync(self._fd)
            self._dirty = False
            self._last_commit = now

    def close(self) -> None:
        if self._fd is not None:
            self.commit(force=True)
            os.close(self._fd)
            self._fd = None


def kill_orphans(orphans: dict[int, tuple[float, str]], grace: float = 2.0) -> list[int]:
    """Kill the process groups a crashed run left behind (SIGTERM, then SIGKILL after ``grace`` seconds).

    A pid only counts when a live process with that pid started when the journal says (no pid reuse).
    Returns the process-group ids signalled.
    """
    import psutil

    groups: list[int] = []
    for pid, (started, _node) in orphans.items():
        try:
            proc = psutil.Process(pid)
            if started and abs(proc.create_time() - started) > 1.0:
                continue
        except psutil.Error:
            # The group leader is gone; its group may live on: find members by process group id.
            members = []
            for p in psutil.process_iter(["pid", "create_time"]):
                try:
                    if os.getpgid(p.info["pid"]) == pid and p.info["create_time"] >= started - 1.0:
                        members.append(p.info["pid"])
                except (OSError, psutil.Error):
                    continue
            if not members:
                continue
        groups.append(pid)
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while groups and time.monotonic() < deadline and _live_members(groups):
        time.sleep(0.05)
    for pgid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
    return groups


def _live_members(groups: list[int]) -> bool:
    """True while a non-zombie process belongs to one of the process groups (zombies of a dead parent
    may never be reaped in a container without an init process)."""
    import psutil

    wanted = set(groups)
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(proc.info["pid"]) in wanted:
                return True
        except (OSError, psutil.Error):
            continue
    return False
