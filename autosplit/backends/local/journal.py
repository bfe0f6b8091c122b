"""Crash safety: the DAG lock file and an append-only progress journal next to the DAG file.

``<dag>.lock`` holds the executor's pid and carries a POSIX record lock (``fcntl(F_SETLK)``) while it runs;
the kernel drops that lock when the process dies, even on SIGKILL, so a lock file that can be locked again
means the previous run did not finish: the next run starts in recovery mode (as DAGMan does when it finds
its lock file). A record lock belongs to the *process*: a child forked to start a job does not share it.
(An ``flock`` lock belongs to the open file description, which a forked child shares until it has closed
its descriptors and exec-ed; an executor killed while a child was in that window left its lock held by
the half-started child, and the next run failed with :class:`DagLockedError`.) Because closing *any*
descriptor of the file drops a process's record locks, the locks this process holds are kept in a
registry and :func:`holder` never opens a lock file this process holds.

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
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from autosplit.backends.local.errors import DagLockedError

# Lock files this process holds (resolved path -> DagLock): a second run of the same DAG in this process
# must be refused without opening the file, since closing any descriptor of it would drop the lock.
_HELD: dict[Path, DagLock] = {}
_HELD_GUARD = threading.Lock()


def _lock_key(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).parent)) / Path(path).name


class DagLock:
    """``<dag>.lock``: exclusive while held; ``stale`` is True when a previous run left it behind."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stale = False
        self.accepts_signals = False  # written into the file: may others send SIGUSR1 to this process?
        self._fd: int | None = None

    def _refuse(self, holder_text: str) -> DagLockedError:
        return DagLockedError(
            f"{self.path}: this DAG is already being run by process {holder_text}; "
            "stop it first (autosplit dagman rm / halt) or wait for it to finish"
        )

    def acquire(self) -> None:
        key = _lock_key(self.path)
        with _HELD_GUARD:
            if key in _HELD:
                raise self._refuse(f"{os.getpid()} (this process)")
            while True:
                existed = self.path.exists() and self.path.stat().st_size > 0
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
                try:
                    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    text = os.read(fd, 200).decode(errors="replace").strip() or "?"
                    os.close(fd)
                    raise self._refuse(text) from None
                # A run that just finished may have removed the file between our open and our lock: then we
                # locked an unlinked inode that nobody else will ever see. Start again on the new file.
                try:
                    same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            self.stale = existed
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {'signals' if self.accepts_signals else 'nosignals'}\n".encode())
            self._fd = fd
            _HELD[key] = self

    def _forget(self) -> None:
        with _HELD_GUARD:
            if _HELD.get(_lock_key(self.path)) is self:
                del _HELD[_lock_key(self.path)]

    def release(self) -> None:
        """Remove the lock file (clean exit: the next run starts fresh)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()
        os.close(self._fd)  # drops the record lock
        self._fd = None
        self._forget()

    def abandon(self) -> None:
        """Close without removing (stopped for restart: the next run recovers)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._forget()


# struct flock of Linux (x86-64, aarch64, ...): l_type, l_whence (short), l_start, l_len (off_t), l_pid.
_FLOCK = struct.Struct("hhqqi4x")


def _lock_owner(fd: int) -> int | None:
    """Pid of the process holding a write lock on the file (F_GETLK: asks without taking a lock), or None."""
    if sys.platform.startswith("linux"):
        query = _FLOCK.pack(fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
        answer = fcntl.fcntl(fd, fcntl.F_GETLK, query)
        kind, _whence, _start, _len, pid = _FLOCK.unpack(answer)
        return None if kind == fcntl.F_UNLCK else pid
    try:  # elsewhere: probe with a shared lock, released at once
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return -1
    fcntl.lockf(fd, fcntl.LOCK_UN)
    return None


def holder(lock_path: Path) -> tuple[int, bool] | None:
    """(pid, accepts SIGUSR1) of the live executor holding ``lock_path``, or None if nobody holds it."""
    with _HELD_GUARD:
        own = _HELD.get(_lock_key(lock_path))
    if own is not None:
        return os.getpid(), own.accepts_signals
    try:
        fd = os.open(lock_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        owner = _lock_owner(fd)
        if owner is None:
            return None
        words = os.read(fd, 200).decode(errors="replace").split()
        recorded = int(words[0]) if words and words[0].isdigit() else None
        pid = owner if owner > 0 else recorded
        if pid is None:
            return None
        return pid, words[1:2] == ["signals"] and recorded == pid
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


#: Environment variable set in every process an executor starts (scripts, jobs, sub-DAGs): the DAG's lock
#: file. A recovering run finds by it the children of a killed run that the journal never recorded (the
#: executor died between starting the process and writing its ``spawn`` record).
RUN_MARKER = "AUTOSPLIT_DAG_RUN"


def kill_unrecorded(
    lock_path: Path, journal_path: Path, grace: float = 2.0, recorded: frozenset[int] = frozenset()
) -> list[int]:
    """Kill what a killed run of this DAG started but never recorded; returns the pids signalled.

    Two kinds: processes carrying ``RUN_MARKER=<lock_path>`` in their environment (children that got as far
    as exec), and half-started children still in the killed executor's image between fork and exec, which
    are the only other processes holding the run's journal open for writing. The first get SIGTERM, then
    SIGKILL after ``grace`` seconds; the second SIGKILL at once (they have run no user code yet). Each process
    is signalled on its own, never by process group (a half-started child may still share the group of
    whatever started the killed executor). Members of the ``recorded`` process groups (already handled by
    :func:`kill_orphans`) are left alone.
    """
    import psutil

    me = os.getpid()
    marker = os.path.realpath(lock_path)
    journal = os.path.realpath(journal_path)
    marked: list[int] = []
    unborn: list[int] = []
    for proc in psutil.process_iter(["pid"]):
        pid = proc.info["pid"]
        if pid == me:
            continue
        try:
            if os.getpgid(pid) in recorded:
                continue
            if proc.environ().get(RUN_MARKER) == marker:
                marked.append(pid)
            elif any(f.path == journal and f.mode != "r" for f in proc.open_files()):
                unborn.append(pid)
        except (psutil.Error, OSError):
            continue
    for pid in unborn:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    for pid in marked:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while marked and time.monotonic() < deadline and any(_alive(pid) for pid in marked):
        time.sleep(0.05)
    for pid in marked:
        if _alive(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
    return unborn + marked


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie does not count)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


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
