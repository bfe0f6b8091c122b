"""Requests from outside a running DAG, read once per cycle: the halt file, the remove file and signals.

* ``<dag>.halt`` exists -> the DAG is halted (level-triggered: deleting it resumes the DAG);
* ``<dag>.remove`` or SIGUSR1 -> removal, like ``condor_rm`` of the DAGMan job (exit 2, rescue DAG);
* SIGTERM / SIGINT -> stop for a later restart, like ``condor_hold`` (exit 3, recovery next time).

The other side (creating the files, sending the signal) is :mod:`autosplit.backends.local.control`.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any

from autosplit.backends.local.model import EXIT_ABORT, EXIT_RESTART, DagStatus
from autosplit.backends.local.shutdown import Shutdown
from autosplit.backends.local.state import DagState


class ControlRequests:
    """``signal_request`` is set by the signal handlers (``"remove"`` or ``"stop"``) and read by :meth:`check`."""

    def __init__(self, state: DagState, shutdown: Shutdown) -> None:
        self.state = state
        self.shutdown = shutdown
        base = state.dag_path
        self.halt_file = base.with_name(base.name + ".halt")
        self.remove_file = base.with_name(base.name + ".remove")
        self.signal_request: str | None = None

    def discard_stale(self, recovering: bool, began: float) -> None:
        """At start: a remove file is never for this run; a halt file older than the run is not either,
        unless the run resumes an interrupted one (condor_submit_dag removes it too)."""
        with contextlib.suppress(OSError):
            self.remove_file.unlink()
        if not recovering:
            with contextlib.suppress(OSError):
                if self.halt_file.stat().st_mtime < began - 1.0:
                    self.halt_file.unlink()

    def check(self) -> None:
        state = self.state
        halted = self.halt_file.exists()
        if halted != state.halted:
            if halted:
                state.out(f"DAG is halted because halt file {self.halt_file} exists")
            else:
                state.out("DAG going from halted to running state")
            state.halted = halted
            state.status_dirty = True
        request = self.signal_request
        self.signal_request = None
        if self.remove_file.exists():
            # request_remove() both creates the file and signals: one request, consumed through both channels.
            request = request or "remove"
            with contextlib.suppress(OSError):
                self.remove_file.unlink()
        if request is None or state.finishing:
            return
        if request == "remove":
            state.out("Received a removal request (condor_rm equivalent)")
            if state.in_shutdown:
                self.shutdown.finish(EXIT_ABORT)
            else:
                self.shutdown.begin(EXIT_ABORT, DagStatus.RM, removed=True)
        elif request == "stop":
            state.out("Received a stop request: stopping for a later restart (recovery mode)")
            state.stopped = True
            self.shutdown.finish(EXIT_RESTART)


@contextlib.contextmanager
def signals_as_requests(requests: ControlRequests, wake: Callable[[], None], enabled: bool) -> Iterator[None]:
    """While inside: SIGUSR1 asks for removal, SIGTERM/SIGINT for a stop (``wake`` interrupts the loop's
    wait). The previous handlers are restored on the way out. Does nothing unless ``enabled``."""
    previous: dict[int, Any] = {}
    if enabled:

        def on_signal(signum: int, _frame: Any) -> None:
            requests.signal_request = "remove" if signum == signal.SIGUSR1 else "stop"
            wake()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
