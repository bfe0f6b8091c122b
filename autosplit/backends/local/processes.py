"""Starting child processes and learning when they exit, through one selector the scheduler blocks on.

Each child runs in its own session (process group), so a job and everything it starts can be signalled
together. Exits are seen through Linux pidfds (no threads); where ``os.pidfd_open`` is missing a small
waiter thread per child writes to a pipe the selector watches instead.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any


@dataclass
class Exit:
    """A reaped child: ``code`` is the exit status, or ``-N`` when killed by signal N."""

    token: Any
    pid: int
    code: int
    user: float  # CPU seconds
    system: float
    when: float  # time.time() of the reap


class ProcessWatcher:
    """Spawns children and reports their exits; :meth:`wait` blocks until one exits or a timeout passes."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        # Added to every child's environment: marks the processes of one DAG run (see journal.RUN_MARKER).
        self._extra_env = dict(extra_env or {})
        self._sel = selectors.DefaultSelector()
        self._children: dict[int, tuple[Any, subprocess.Popen, int | None]] = {}
        self._use_pidfd = hasattr(os, "pidfd_open")
        self._pipe_r, self._pipe_w = os.pipe()
        os.set_blocking(self._pipe_r, False)
        self._sel.register(self._pipe_r, selectors.EVENT_READ, None)
        self._thread_exits: list[int] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._children)

    def spawn(
        self,
        token: Any,
        argv: list[str],
        *,
        cwd: Path,
        env: dict[str, str],
        executable: str | None = None,
        stdin: IO[Any] | int | None = subprocess.DEVNULL,
        stdout: IO[Any] | int | None = subprocess.DEVNULL,
        stderr: IO[Any] | int | None = subprocess.DEVNULL,
    ) -> subprocess.Popen:
        """Start ``argv`` (never through a shell) in a new session. Raises OSError if it cannot start."""
        proc = subprocess.Popen(
            argv,
            executable=executable,
            cwd=cwd,
            env={**env, **self._extra_env} if self._extra_env else env,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
        )
        pidfd = None
        if self._use_pidfd:
            try:
                pidfd = os.pidfd_open(proc.pid)
            except OSError:
                self._use_pidfd = False
        if pidfd is not None:
            self._sel.register(pidfd, selectors.EVENT_READ, proc.pid)
        else:
            threading.Thread(target=self._wait_thread, args=(proc.pid,), daemon=True).start()
        self._children[proc.pid] = (token, proc, pidfd)
        return proc

    def _wait_thread(self, pid: int) -> None:
        # Only signals readiness; the reap itself (wait4) happens in wait() on the scheduler's thread.
        with contextlib.suppress(ChildProcessError):
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        with self._lock:
            self._thread_exits.append(pid)
        with contextlib.suppress(OSError):
            os.write(self._pipe_w, b"x")

    def wake(self) -> None:
        """Make a blocked :meth:`wait` return (safe from signal handlers)."""
        with contextlib.suppress(OSError):
            os.write(self._pipe_w, b"w")

    def wait(self, timeout: float | None) -> list[Exit]:
        """Reap the children that exited, waiting up to ``timeout`` seconds for the first one."""
        ready: list[int] = []
        for key, _ in self._sel.select(timeout):
            if key.data is None:
                with contextlib.suppress(OSError):
                    while os.read(self._pipe_r, 4096):
                        pass
                with self._lock:
                    ready.extend(self._thread_exits)
                    self._thread_exits.clear()
            else:
                ready.append(key.data)
        exits = []
        for pid in ready:
            entry = self._children.get(pid)
            if entry is None:
                continue
            try:
                got, status, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                got, status, usage = pid, 0, None
            if got == 0:
                continue
            token, proc, pidfd = self._children.pop(pid)
            if pidfd is not None:
                self._sel.unregister(pidfd)
                os.close(pidfd)
            code = os.waitstatus_to_exitcode(status) if usage is not None else 0
            proc.returncode = code
            exits.append(
                Exit(
                    token,
                    pid,
                    code,
                    usage.ru_utime if usage else 0.0,
                    usage.ru_stime if usage else 0.0,
                    time.time(),
                )
            )
        return exits

    def signal(self, pid: int, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (ignored if it already exited)."""
        if pid in self._children:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)

    def kill_all(self) -> None:
        for pid in list(self._children):
            self.signal(pid, signal.SIGKILL)

    def close(self) -> None:
        for _token, _proc, pidfd in self._children.values():
            if pidfd is not None:
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(pidfd)
                os.close(pidfd)
        self._children.clear()
        self._sel.close()
        os.close(self._pipe_r)
        os.close(self._pipe_w)
