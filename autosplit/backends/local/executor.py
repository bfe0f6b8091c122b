"""The local DAGMan-compatible executor: one state object and one loop (in the spirit of dask's ``local.py``).

Each cycle of :meth:`_Executor.run`:

1. reads requests (``<dag>.halt`` / ``<dag>.remove`` files, signals),
2. starts what the throttles allow: PRE scripts (``max_pre``), POST scripts (``max_post``, also while
   halted) and node jobs from the ready queue (``max_jobs``, ``MAXJOBS`` per category; highest PRIORITY
   first, FIFO among equals),
3. decides whether the DAG is finished (DAGMan's ``condor_event_timer`` rules: success, failure -> rescue
   DAG -> FINAL node, halted and drained, cycle),
4. blocks until a child process exits or a timer (DEFER, kill escalation, submit retry) is due, and
   applies the exit to the node's state machine (NOT_READY -> READY|PRERUN -> SUBMITTED -> POSTRUN ->
   DONE|ERROR, FUTILE for descendants of a failed node),
5. commits the journal and flushes the logs; rewrites the node status file when due.

Everything runs on the loop's thread: child processes are watched through one selector, no worker threads
touch the state. Where each part lives:

==========================  ===============================================================================
``state``                   :class:`DagState`: nodes' runs, counts per status, queues, flags, transitions
``control_requests``        step 1: halt/remove files and signals
``throttle``                step 2: max_jobs / max_pre / max_post / MAXJOBS, PRIORITY order
``launcher``                step 2: scripts' command lines, job submission
``shutdown``                step 3: completion rules, ABORT-DAG-ON, removing what runs, FINAL node
``exits``                   step 4: what a script's or job's exit means for its node
``node_logs``               nodes.log events, JOBSTATE_LOG, SCRIPT DEBUG output
``state_files``             node status file, DOT file, rescue DAG, metrics
``startup``                 lock, journal replay, rescue DAG or recovery, first nodes queued
``options``                 :class:`RunOptions` and the DAGMan knobs they resolve to
==========================  ===============================================================================
"""

from __future__ import annotations

import heapq
import os
import signal
import threading
import time
from collections.abc import Mapping
from pathlib import Path

from autosplit.backends.local.control_requests import ControlRequests, signals_as_requests
from autosplit.backends.local.errors import DagError, DagParseError
from autosplit.backends.local.exits import ExitHandler
from autosplit.backends.local.journal import RUN_MARKER, DagLock, Journal
from autosplit.backends.local.launcher import Launcher
from autosplit.backends.local.logs import DagmanOut
from autosplit.backends.local.model import EXIT_ERROR, Dag, DagStatus, NodeStatus
from autosplit.backends.local.node_logs import NodeLogs
from autosplit.backends.local.options import RunOptions, Settings
from autosplit.backends.local.parser import find_cycle, parse_dag
from autosplit.backends.local.processes import ProcessWatcher
from autosplit.backends.local.results import DagResult, NodeResult
from autosplit.backends.local.shutdown import Shutdown
from autosplit.backends.local.startup import start_run
from autosplit.backends.local.state import DagState, Timer
from autosplit.backends.local.state_files import StatusFileWriter, write_dot, write_metrics
from autosplit.backends.local.throttle import Throttle

__all__ = ["RunOptions", "run_dag"]


class _Executor:
    """One DAG run: owns the resources (lock, journal, logs, child processes) and the collaborators that
    share one :class:`DagState`, and runs the loop."""

    def __init__(self, dag: Dag, opts: RunOptions) -> None:
        self.started = time.monotonic()
        self.settings = Settings.resolve(dag, opts)
        self.dag = dag
        self.opts = opts
        dag_path = dag.path if dag.path.is_absolute() else (Path.cwd() / dag.path)
        self.lock = DagLock(dag_path.with_name(dag_path.name + ".lock"))
        self.journal = Journal(dag_path.with_name(dag_path.name + ".journal"))
        self.watcher = ProcessWatcher({RUN_MARKER: os.path.realpath(self.lock.path)})
        self.out = DagmanOut(dag_path.with_name(dag_path.name + ".dagman.out"))
        # Collaborators share one DagState; each may call only those created before it.
        self.state = state = DagState(dag, dag_path, self.settings, self.journal, self.out)
        self.logs = NodeLogs(state)
        self.shutdown = Shutdown(state, self.watcher, opts.kill_grace)
        self.exits = ExitHandler(state, self.logs, self.shutdown, opts.defer_factor)
        self.launcher = Launcher(state, self.logs, self.watcher, self.exits, opts)
        self.throttle = Throttle(state, self.launcher)
        self.requests = ControlRequests(state, self.shutdown)
        self.status_file = StatusFileWriter(state, opts.poll_interval)

    def start(self) -> None:
        self.launcher.next_cluster = start_run(
            self.state, self.lock, self.requests, self.logs, self.status_file, self.opts
        )

    # ------------------------------------------------------------------------------------ main loop
    def run(self) -> DagResult:
        state, watcher, launcher = self.state, self.watcher, self.launcher
        try:
            while True:
                self.requests.check()  # 1. halt/remove files, signals
                if not state.finishing:
                    self.throttle.dispatch()  # 2. start scripts and jobs
                    self.shutdown.check_progress()  # 3. finished? (rescue DAG, FINAL node, exit code)
                if state.finishing and len(watcher) == 0 and not launcher.pending_exits:
                    break
                state.stats["cycles"] += 1
                exits = launcher.pending_exits + watcher.wait(self._timeout())  # 4. wait, then reap
                launcher.pending_exits = []
                for ex in exits:
                    self.exits.handle(ex)
                self._fire_timers()
                self._flush()  # 5. journal and logs
                if not state.finishing:
                    self.status_file.write()
            return self._close()
        except BaseException:
            watcher.kill_all()
            self._flush()
            raise
        finally:
            watcher.close()
            self.logs.close()
            self.out.close()

    def _timeout(self) -> float:
        """How long the loop may block: until the next poll, timer or allowed submit; 0 with exits pending."""
        state = self.state
        timeout = self.opts.poll_interval
        if state.timers:
            timeout = min(timeout, max(state.timers[0][0] - time.monotonic(), 0.0))
        submit_wait = self.throttle.submit_wait()
        if submit_wait is not None:
            timeout = min(timeout, submit_wait)
        if self.launcher.pending_exits:
            timeout = 0.0
        return timeout

    def _fire_timers(self) -> None:
        state = self.state
        now = time.monotonic()
        while state.timers and state.timers[0][0] <= now:
            _, _, kind, payload = heapq.heappop(state.timers)
            if kind == Timer.SIGKILL:
                pid = payload
                for run in state.runs.values():
                    if pid in run.procs:
                        self.watcher.signal(pid, signal.SIGKILL)
                        break
            elif kind == Timer.DEFER:
                name, kind_ = payload
                run = state.runs[name]
                if run.doomed:
                    self.shutdown.doomed_done(run)
                elif kind_ == "PRE" and run.status == NodeStatus.PRERUN:
                    state.pre_wait.append(name)
                elif kind_ == "POST" and run.status == NodeStatus.POSTRUN:
                    state.post_wait.append(name)
            elif kind == Timer.RESUBMIT:
                run = state.runs[payload]
                if run.status == NodeStatus.READY and not run.doomed:
                    state.push_ready(run)

    def _flush(self) -> None:
        self.journal.commit()
        self.logs.flush()
        self.out.flush()

    # ------------------------------------------------------------------------------------ ending
    def _close(self) -> DagResult:
        state = self.state
        assert state.exit_code is not None
        code = state.exit_code
        if state.stopped:
            self.status_file.write(force=True, held=True)
        else:
            self.status_file.write(force=True, final=True)
        if self.dag.dot_file and self.dag.dot_update:
            write_dot(state)
        if self.logs.jobstate is not None:
            self.logs.jobstate.internal(f"DAGMAN_FINISHED {code}")
        if not state.stopped:
            self.journal.record("finish", x=code)
        self.journal.close()
        write_metrics(state, code, time.monotonic() - self.started)
        self.out.exiting(code)
        if state.stopped:
            self.lock.abandon()
        else:
            self.lock.release()
        nodes = {
            r.name: NodeResult(r.name, r.status, r.retries, r.retval, r.details) for r in state.runs.values()
        }
        return DagResult(
            self.dag.path,
            code,
            state.dag_status,
            nodes,
            state.rescue_written,
            state.recovered,
            time.monotonic() - self.started,
            dict(state.stats),
        )

    def discard(self) -> None:
        """Release what __init__/start acquired when the run does not go ahead."""
        self.watcher.kill_all()
        self.watcher.close()
        self.journal.close()
        if self.logs.jobstate is not None:
            self.logs.jobstate.close()
        self.out.close()
        if self.lock.stale:
            self.lock.abandon()  # keep the lock of an interrupted run: it still needs recovering
        else:
            self.lock.release()


# --------------------------------------------------------------------------------------------- public
def run_dag(
    path: str | os.PathLike[str],
    max_jobs: int | None = None,
    max_pre: int | None = None,
    max_post: int | None = None,
    *,
    workdir: str | os.PathLike[str] | None = None,
    config: Mapping[str, str] | None = None,
    poll_interval: float = 1.0,
    kill_grace: float = 10.0,
    defer_factor: float = 1.0,
    submit_retry_delay: float = 1.0,
    auto_rescue: bool | None = None,
    rescue_file: str | os.PathLike[str] | None = None,
    startup_cycle_detect: bool | None = None,
    priority: int = 0,
    handle_signals: bool | None = None,
) -> DagResult:
    """Run a DAG file on this machine with DAGMan's semantics; returns when the DAG has finished.

    ``max_jobs`` caps node jobs running at once (default: the DAG's CONFIG, else the number of cores;
    0 = unlimited); ``max_pre``/``max_post`` cap PRE/POST scripts (default 20 each, as DAGMan). ``workdir``
    is the directory relative paths in the DAG refer to (default: the DAG file's directory). ``config``
    overrides DAGMan knobs (``{"DAGMAN_ALWAYS_RUN_POST": "True"}``). Times are in seconds: ``poll_interval``
    (wake-up period), ``kill_grace`` (SIGTERM -> SIGKILL), ``defer_factor`` (scales SCRIPT DEFER delays),
    ``submit_retry_delay`` (first back-off after a failed submit). The highest-numbered rescue DAG is
    applied unless ``auto_rescue`` is False; ``rescue_file`` names one explicitly. Cycles are rejected
    before anything runs unless ``startup_cycle_detect`` is False (DAGMan's default, where the DAG then
    stalls and ends with ``DagStatus.CYCLE``). If the DAG's lock file was left by an interrupted run, the
    run resumes from the journal without re-running finished nodes.

    With ``handle_signals`` (default: when called from the main thread) SIGTERM/SIGINT stop the DAG for a
    later restart (exit 3) and SIGUSR1 removes it (exit 2, rescue DAG), as for condor_dagman.

    Raises :class:`DagParseError` for a malformed DAG, :class:`DagLockedError` if it is already running.
    """
    opts = RunOptions(
        max_jobs=max_jobs,
        max_pre=max_pre,
        max_post=max_post,
        workdir=Path(workdir) if workdir is not None else None,
        config=dict(config or {}),
        poll_interval=poll_interval,
        kill_grace=kill_grace,
        defer_factor=defer_factor,
        submit_retry_delay=submit_retry_delay,
        auto_rescue=auto_rescue,
        rescue_file=Path(rescue_file) if rescue_file is not None else None,
        startup_cycle_detect=startup_cycle_detect,
        priority=priority,
        handle_signals=handle_signals,
    )
    return _run(Path(path), opts)


def _run(path: Path, opts: RunOptions) -> DagResult:
    if opts.poll_interval <= 0 or opts.kill_grace < 0 or opts.defer_factor < 0:
        raise DagError("poll_interval must be > 0 and kill_grace, defer_factor >= 0 (seconds)")
    dag = parse_dag(path, opts.workdir)
    executor = _Executor(dag, opts)
    if dag.reject is not None:
        return _rejected(executor, dag)
    if executor.settings.cycle_detect:
        cycle = find_cycle(dag)
        if cycle:
            executor.discard()
            where = dag.cycle_location(cycle)
            raise DagParseError(
                where.file if where else str(path),
                where.line if where else 0,
                "PARENT",
                "this edge closes a cycle: " + " -> ".join(cycle),
            )
    main_thread = threading.current_thread() is threading.main_thread()
    handle = opts.handle_signals if opts.handle_signals is not None else main_thread
    with signals_as_requests(executor.requests, executor.watcher.wake, handle):
        executor.lock.accepts_signals = handle
        try:
            executor.start()
        except BaseException:
            executor.discard()
            raise
        return executor.run()


def _rejected(executor: _Executor, dag: Dag) -> DagResult:
    executor.out(f"Exiting because of REJECT specification in {dag.reject}")
    executor.out("DAG marked as rejected")
    executor.out.exiting(EXIT_ERROR)
    executor.discard()
    nodes = {
        n.name: NodeResult(n.name, NodeStatus.NOT_READY, 0, 0, "DAG rejected") for n in dag.nodes.values()
    }
    return DagResult(dag.path, EXIT_ERROR, DagStatus.ERROR, nodes)
