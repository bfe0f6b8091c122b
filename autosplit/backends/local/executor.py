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

Node semantics follow ``dag.cpp``: the last component run decides the node; RETRY re-runs PRE, job and
POST; UNLESS-EXIT and ABORT-DAG-ON stop retries; PRE_SKIP skips job and POST; a FINAL node runs after
everything else and decides the result.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import heapq
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosplit.backends.local import rescue as rescue_mod
from autosplit.backends.local.errors import DagError, DagParseError, SubmitError
from autosplit.backends.local.journal import DagLock, Journal, Recovery, kill_orphans
from autosplit.backends.local.launch import spawn_job_proc, subdag_spec
from autosplit.backends.local.logs import DagmanOut, EventLogWriter, JobstateLog
from autosplit.backends.local.model import (
    EXIT_ABORT,
    EXIT_ERROR,
    EXIT_OKAY,
    EXIT_RESTART,
    RETURN_JOB_ABORTED,
    RETURN_JOB_SKIPPED,
    RETURN_SUBMIT_FAILED,
    Dag,
    DagStatus,
    Node,
    NodeStatus,
    Script,
)
from autosplit.backends.local.parser import find_cycle, parse_dag
from autosplit.backends.local.processes import Exit, ProcessWatcher
from autosplit.backends.local.results import DagResult, NodeResult
from autosplit.backends.local.statusfile import StatusRow, render_status, write_atomically
from autosplit.backends.local.submit import JobSpec, build_job

_PERMANENT_SPAWN_ERRORS = {
    errno.ENOENT,
    errno.EACCES,
    errno.ENOEXEC,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EPERM,
}
_BOOL_TRUE = {"true", "yes", "1", "t", "y"}


# --------------------------------------------------------------------------------------------- options
@dataclass
class RunOptions:
    """Settings of one run. ``None`` means: the DAG's CONFIG file, else DAGMan's (or this executor's) default.

    Times are in seconds. ``poll_interval`` is how often the loop wakes without events (halt/remove files,
    ALWAYS-UPDATE status files); ``kill_grace`` the wait between ``kill_sig`` and SIGKILL when jobs are
    removed; ``defer_factor`` scales ``SCRIPT DEFER`` delays (tests use small values).
    """

    max_jobs: int | None = None
    max_pre: int | None = None
    max_post: int | None = None
    workdir: Path | None = None
    config: Mapping[str, str] = field(default_factory=dict)
    poll_interval: float = 1.0
    kill_grace: float = 10.0
    defer_factor: float = 1.0
    submit_retry_delay: float = 1.0
    auto_rescue: bool | None = None
    rescue_file: Path | None = None
    startup_cycle_detect: bool | None = None
    priority: int = 0
    handle_signals: bool | None = None


# --------------------------------------------------------------------------------------------- run state
@dataclass(eq=False)
class _Proc:
    index: int
    pid: int
    started: float = 0.0  # time.monotonic() at spawn
    removing: bool = False


@dataclass(eq=False)
class _Run:
    """Run-time state of one node (the DAG's static description stays in ``node``)."""

    node: Node
    order: int
    status: NodeStatus = NodeStatus.NOT_READY
    waiting: int = 0  # parents not DONE yet
    retries: int = 0
    retry_max: int = 0
    unless_exit: int | None = None
    retval: int = 0  # DAGMan's node return value (decides UNLESS-EXIT / ABORT-DAG-ON)
    job_return: int = 0  # $RETURN of the POST script
    pre_return: int = -1  # $PRE_SCRIPT_RETURN
    details: str = ""
    user_done: bool = False
    pre_done: bool = False
    cluster: int | None = None
    procs: dict[int, _Proc] = field(default_factory=dict)  # running procs by pid
    proc_results: list[int | None] = field(default_factory=list)  # exit code per proc, None if aborted
    job_failed: bool = False
    aborted_procs: int = 0
    script_pid: int | None = None
    doomed: bool = False  # being removed because the DAG stops
    poisoned: bool = False  # submit failed: no more retries
    submit_attempts: int = 0
    seq: int | None = None  # jobstate-log sequence number of this attempt
    tag: str | None = None
    log_paths: list[Path] = field(default_factory=list)
    kill_sig: int = signal.SIGTERM
    vacate: float | None = None
    priority: int = 0

    @property
    def name(self) -> str:
        return self.node.name


class _Timer:
    DEFER = "defer"
    SIGKILL = "sigkill"
    RESUBMIT = "resubmit"


def _truthy(value: str) -> bool:
    return value.strip().lower() in _BOOL_TRUE


# --------------------------------------------------------------------------------------------- executor
class _Executor:
    """One DAG run: every piece of run-time state lives on this object, changed only by the loop in
    :meth:`run` (child processes are watched through one selector; no worker threads touch it).

    Queues: ``ready`` (heap of nodes whose job may be submitted, highest PRIORITY first), ``pre_wait`` and
    ``post_wait`` (scripts waiting for a PRE/POST slot), ``timers`` (DEFER re-runs, SIGKILL escalation,
    submit retries). ``count`` holds the number of nodes in each status, so the completion rules (DAGMan's
    FinishedRunning / DoneSuccess / DoneFailed / DoneCycle) are O(1) per cycle.
    """

    def __init__(self, dag: Dag, opts: RunOptions) -> None:
        self.dag = dag
        self.opts = opts
        self.started = time.monotonic()
        self._configure()
        self.dag_path = dag.path if dag.path.is_absolute() else (Path.cwd() / dag.path)
        base = self.dag_path
        self.halt_file = base.with_name(base.name + ".halt")
        self.remove_file = base.with_name(base.name + ".remove")
        self.lock = DagLock(base.with_name(base.name + ".lock"))
        self.journal = Journal(base.with_name(base.name + ".journal"))
        self.nodes_log = base.with_name(base.name + ".nodes.log")
        self.runs: dict[str, _Run] = {}
        self.ready: list[tuple[int, int, str]] = []
        self.pre_wait: collections.deque[str] = collections.deque()
        self.post_wait: collections.deque[str] = collections.deque()
        self.timers: list[tuple[float, int, str, Any]] = []
        self.count: collections.Counter[NodeStatus] = collections.Counter()
        self.pending_exits: list[Exit] = []
        self.seq = 0
        self.pre_running = 0
        self.post_running = 0
        self.dag_status = DagStatus.OK
        self.aborted = False
        self.halted = False
        self.final_started = False
        self.in_shutdown = False
        self.removed = False
        self.stopped = False  # SIGTERM/SIGINT: exit 3, recover next time
        self.exit_code: int | None = None
        self.finishing = False
        self.rescue_written: Path | None = None
        self.rescue_number = 0
        self.status_dirty = True
        self.last_status_write = -1e18
        self.next_submit_time = 0.0
        self.signal_request: str | None = None
        self.recovered = False
        self.dag_id = 0
        self.next_cluster = 1
        self.env = dict(os.environ)
        self.env.update(dag.env_set)
        self.watcher = ProcessWatcher()
        self.stats: dict[str, float] = {
            "cycles": 0,
            "jobs_started": 0,
            "job_seconds": 0.0,
            "scripts_started": 0,
        }
        self.events = EventLogWriter()
        self.out = DagmanOut(base.with_name(base.name + ".dagman.out"))
        self.jobstate: JobstateLog | None = None

    # ------------------------------------------------------------------------------------ configuration
    def _configure(self) -> None:
        cfg = dict(self.dag.config)
        cfg.update({k.upper(): str(v) for k, v in self.opts.config.items()})
        self.cfg = cfg

        def number(key: str, default: int) -> int:
            if key not in cfg:
                return default
            try:
                return int(cfg[key])
            except ValueError:
                raise DagError(f"{key} = {cfg[key]!r}: must be an integer") from None

        def flag(key: str, default: bool) -> bool:
            return _truthy(cfg[key]) if key in cfg else default

        o = self.opts
        self.max_jobs = (
            o.max_jobs if o.max_jobs is not None else number("DAGMAN_MAX_JOBS_SUBMITTED", os.cpu_count() or 1)
        )
        self.max_pre = o.max_pre if o.max_pre is not None else number("DAGMAN_MAX_PRE_SCRIPTS", 20)
        self.max_post = o.max_post if o.max_post is not None else number("DAGMAN_MAX_POST_SCRIPTS", 20)
        for name, value in (
            ("max_jobs", self.max_jobs),
            ("max_pre", self.max_pre),
            ("max_post", self.max_post),
        ):
            if value < 0:
                raise DagError(f"{name} must be >= 0 (0 = unlimited), got {value}")
        self.always_run_post = flag("DAGMAN_ALWAYS_RUN_POST", False)
        self.max_submit_attempts = max(number("DAGMAN_MAX_SUBMIT_ATTEMPTS", 6), 1)
        self.submit_delay = float(number("DAGMAN_SUBMIT_DELAY", 0))
        self.prohibit_multi = flag("DAGMAN_PROHIBIT_MULTI_JOBS", False)
        self.reset_retries = flag("DAGMAN_RESET_RETRIES_UPON_RESCUE", True)
        self.max_rescue = number("DAGMAN_MAX_RESCUE_NUM", 100)
        self.auto_rescue = o.auto_rescue if o.auto_rescue is not None else flag("DAGMAN_AUTO_RESCUE", True)
        self.retry_first = flag("DAGMAN_RETRY_NODE_FIRST", False)
        self.depth_first = flag("DAGMAN_SUBMIT_DEPTH_FIRST", False)
        self.append_vars = flag("DAGMAN_DEFAULT_APPEND_VARS", False)
        if o.startup_cycle_detect is not None:
            self.cycle_detect = o.startup_cycle_detect
        else:
            self.cycle_detect = flag("DAGMAN_STARTUP_CYCLE_DETECT", True)
        self.debug_test = "D_TEST" in cfg.get("DAGMAN_DEBUG", "").upper()

    # ------------------------------------------------------------------------------------ helpers
    def _set_status(self, run: _Run, status: NodeStatus) -> None:
        self.count[run.status] -= 1
        self.count[status] += 1
        run.status = status
        self.status_dirty = True

    def _timer(self, delay: float, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, kind, payload))

    def _push_ready(self, run: _Run, front: bool = False) -> None:
        self.seq += 1
        order = -self.seq if (front or self.depth_first) else self.seq
        heapq.heappush(self.ready, (-run.priority, order, run.name))

    def _node_dir(self, run: _Run) -> Path:
        d = run.node.dir
        return self.dag.workdir / d if d else self.dag.workdir

    def _jobstate(self, run: _Run, event: str, condor_id: str, when: float | None = None) -> None:
        if self.jobstate is None:
            return
        if run.seq is None:
            run.seq = self.jobstate.take_seq()
        self.jobstate.write(run.name, event, condor_id, self._tag(run), run.seq, when)

    def _tag(self, run: _Run) -> str:
        """The jobstate tag (from ``+job_tag_name`` / ``+pegasus_site`` in the submit description)."""
        if run.tag is not None:
            return run.tag
        run.tag = "-"
        if run.node.noop or run.node.is_subdag:
            return run.tag
        text = self._submit_text(run, quiet=True)
        if text:
            attrs = {}
            for line in text.splitlines():
                m = re.match(r"^\s*(?:\+|my\.)(\w+)\s*=\s*(.*?)\s*$", line, re.I)
                if m:
                    attrs[m.group(1).lower()] = m.group(2).strip('"')
            name = attrs.get("job_tag_name")
            value = attrs.get(name.lstrip("+").lower()) if name else None
            run.tag = value or attrs.get("pegasus_site") or "-"
        return run.tag

    def _submit_text(self, run: _Run, quiet: bool = False) -> str | None:
        node = run.node
        if node.inline_submit is not None:
            return node.inline_submit
        if node.submit in self.dag.descriptions:
            return self.dag.descriptions[node.submit]
        path = self._node_dir(run) / node.submit
        try:
            return path.read_text()
        except OSError as exc:
            if quiet:
                return None
            raise SubmitError(f"node {node.name}: cannot read submit file {path}: {exc.strerror}") from None

    def _log_paths(self, run: _Run) -> list[Path]:
        return [self.nodes_log] + [p for p in run.log_paths if p != self.nodes_log]

    def _can_retry(self, run: _Run) -> bool:
        if run.poisoned or self._abort_match(run):
            return False
        if run.unless_exit is not None and run.retval == run.unless_exit:
            return False
        return run.retries < run.retry_max

    def _abort_match(self, run: _Run) -> bool:
        return run.node.abort_on is not None and run.retval == run.node.abort_on

    # ------------------------------------------------------------------------------------ start up
    def start(self) -> None:
        dag = self.dag
        began = time.time()
        self.lock.acquire()
        recovery, max_cluster = self.journal.replay()
        if recovery is not None and not self.lock.stale:
            recovery = None  # journal of an interrupted run but no lock left behind: start fresh
        self.recovered = recovery is not None
        with contextlib.suppress(OSError):
            self.remove_file.unlink()
        if not self.recovered:
            with contextlib.suppress(OSError):
                if self.halt_file.stat().st_mtime < began - 1.0:
                    self.halt_file.unlink()  # stale, from an earlier run (condor_submit_dag removes it too)
        self.out(f"** condor_dagman (local executor, autosplit) pid {os.getpid()} starting DAG {dag.path}")
        for warning in dag.warnings:
            self.out(f"Warning: {warning}")
        # Node run records, in declaration order.
        for order, node in enumerate(dag.nodes.values()):
            run = _Run(node=node, order=order, retry_max=node.retry, unless_exit=node.unless_exit)
            run.priority = node.priority + self.opts.priority
            run.waiting = len(node.parents)
            self.runs[node.name] = run
            self.count[NodeStatus.NOT_READY] += 1
        if self.debug_test:
            for name, (members, limit) in dag.categories().items():
                self.out(f"CHECK CATEGORY {name} {members} {limit if limit is not None else 'none'}")
        # Rescue DAG (fresh runs) or the journal (recovery).
        rescue_path: Path | None = None
        if recovery is not None:
            rescue_path = Path(recovery.rescue) if recovery.rescue else None
            self.dag_id = recovery.dag_id or max_cluster + 1
        else:
            rescue_path = self._choose_rescue()
            self.dag_id = max_cluster + 1
        self.next_cluster = max(max_cluster, self.dag_id) + 1
        if rescue_path is not None:
            info = rescue_mod.read_rescue(rescue_path)
            self.out(f"Found rescue DAG {rescue_path}; running it in combination with the normal DAG file")
            for name in info.done:
                run = self.runs.get(name)
                if run is None:
                    raise DagParseError(str(rescue_path), 0, "DONE", f"no node named {name!r} in {dag.path}")
                if not run.node.is_final:
                    run.user_done = True
            for name, (count, unless) in info.retries.items():
                if name in self.runs:
                    self.runs[name].retry_max, self.runs[name].unless_exit = count, unless
            m = re.search(r"\.rescue(\d{3})$", rescue_path.name)
            self.rescue_number = int(m.group(1)) if m else 0
        for run in self.runs.values():
            if run.node.done and not run.node.is_final:
                run.user_done = True
        self.journal.open(fresh=recovery is None)
        if recovery is None:
            self.journal.record(
                "start",
                t=time.time(),
                pid=os.getpid(),
                dag_id=self.dag_id,
                c=self.dag_id,
                rescue=str(rescue_path) if rescue_path else None,
            )
        if dag.jobstate_log:
            self.jobstate = JobstateLog(self._path(dag.jobstate_log))
            self.jobstate.internal(f"DAGMAN_STARTED {self.dag_id}.0")
        if dag.dot_file:
            self._write_dot()
        # Pre-completed nodes, then recovered state, then start every node that can start.
        for run in self.runs.values():
            if run.user_done:
                run.details = "User defined as DONE"
                self._terminate(run, journal=False, start_children=False)
        if recovery is not None:
            self._recover(recovery)
        for run in self.runs.values():
            if run.status == NodeStatus.NOT_READY and run.waiting == 0 and not run.node.is_final:
                self._start_node(run)
        self._write_status(force=True)

    def _path(self, name: str) -> Path:
        p = Path(name)
        return p if p.is_absolute() else self.dag.workdir / p

    def _choose_rescue(self) -> Path | None:
        if self.opts.rescue_file is not None:
            return Path(self.opts.rescue_file)
        if not self.auto_rescue or self.max_rescue <= 0:
            return None
        number = rescue_mod.last_rescue_number(self.dag_path, self.max_rescue)
        return rescue_mod.rescue_path(self.dag_path, number) if number else None

    def _recover(self, state: Recovery) -> None:
        self.out("Running in RECOVERY mode... (journal of an interrupted run found)")
        if self.jobstate is not None:
            self.jobstate.internal("RECOVERY_STARTED")
        killed = kill_orphans(state.orphans, grace=self.opts.kill_grace + 1.0)
        if killed:
            self.out(f"Killed {len(killed)} process group(s) left running by the interrupted run")
        for name, retries in state.retries.items():
            if name in self.runs:
                self.runs[name].retries = retries
        for name in state.done:
            run = self.runs.get(name)
            if run is not None and run.status != NodeStatus.DONE:
                self._terminate(run, journal=False, start_children=False)
        for name, (retval, details) in state.failed.items():
            run = self.runs.get(name)
            if run is not None and run.status == NodeStatus.NOT_READY:
                run.retval, run.details = retval, details
                self._fail(run, journal=False)
        for name, rec in state.jobend.items():
            run = self.runs.get(name)
            if run is None or run.status != NodeStatus.NOT_READY or run.node.post is None:
                continue
            # The job finished but its POST script did not: re-run only the POST script (as DAGMan does).
            run.cluster = int(rec.get("c", 0)) or None
            run.job_return = int(rec.get("ret", 0))
            run.retval = run.job_return
            run.pre_return = int(rec.get("pre", -1))
            run.job_failed = bool(rec.get("failed", False))
            run.proc_results = list(rec.get("codes", []))
            run.aborted_procs = int(rec.get("aborted", 0))
            run.pre_done = True
            self._set_status(run, NodeStatus.POSTRUN)
            self.post_wait.append(run.name)
        if self.jobstate is not None:
            self.jobstate.internal("RECOVERY_FINISHED")
        self.out("...done with RECOVERY mode")

    # ------------------------------------------------------------------------------------ node transitions
    def _start_node(self, run: _Run, is_retry: bool = False) -> None:
        if run.node.pre is not None and not run.pre_done:
            self._set_status(run, NodeStatus.PRERUN)
            self.pre_wait.append(run.name)
        else:
            self._set_status(run, NodeStatus.READY)
            self._push_ready(run, front=is_retry and self.retry_first)

    def _terminate(self, run: _Run, journal: bool = True, start_children: bool = True) -> None:
        """The node succeeded."""
        self._set_status(run, NodeStatus.DONE)
        if journal:
            self.journal.record("done", n=run.name)
        for child_name in run.node.children:
            child = self.runs[child_name]
            child.waiting -= 1
            if (
                start_children
                and child.waiting == 0
                and child.status == NodeStatus.NOT_READY
                and not self.in_shutdown
                and not self.final_started
            ):
                self._start_node(child)

    def _fail(self, run: _Run, journal: bool = True, futile: bool = True) -> None:
        """The node failed for good."""
        if run.retry_max > 0 and "node retries)" not in run.details:
            run.details += f" (after {run.retries} node retries)"
        self._set_status(run, NodeStatus.ERROR)
        if journal:
            self.journal.record("failed", n=run.name, r=run.retval, d=run.details)
        if self.dag_status == DagStatus.OK:
            self.dag_status = DagStatus.NODE_FAILED
        if futile:
            stack = list(run.node.children)
            while stack:
                child = self.runs[stack.pop()]
                if child.status == NodeStatus.NOT_READY:
                    self._set_status(child, NodeStatus.FUTILE)
                    child.details = "Had an ancestor node fail"
                    stack.extend(child.node.children)

    def _restart(self, run: _Run) -> None:
        run.retries += 1
        self.out(f"Retrying node {run.name} (retry #{run.retries} of {run.retry_max})...")
        self.journal.record("attempt", n=run.name, k=run.retries)
        run.retval = run.job_return = 0
        run.pre_return = -1
        run.details = ""
        run.cluster = None
        run.proc_results = []
        run.job_failed = False
        run.aborted_procs = 0
        run.pre_done = False
        run.submit_attempts = 0
        run.seq = None
        self._set_status(run, NodeStatus.NOT_READY)
        self._start_node(run, is_retry=True)

    def _after_failure(self, run: _Run, what: str) -> None:
        """A node component failed: abort the DAG, retry the node, or fail it."""
        if self._abort_match(run):
            self._fail(run, futile=False)
            self._abort(run, what)
        elif self._can_retry(run):
            self._restart(run)
        else:
            self._fail(run)

    def _check_abort(self, run: _Run, what: str) -> None:
        if self._abort_match(run) and not self.aborted:
            self._abort(run, what)

    def _abort(self, run: _Run, what: str) -> None:
        self.out(f"Aborting DAG because we got the ABORT exit value from a {what} (node {run.name})")
        self.aborted = True
        node = run.node
        if node.abort_return is not None:
            code = node.abort_return
            status = DagStatus.ABORT if code != 0 else DagStatus.OK
        else:
            code, status = run.retval, DagStatus.ABORT
        self._shutdown(code, status)

    # ------------------------------------------------------------------------------------ scripts
    def _script_argv(self, run: _Run, script: Script) -> list[str]:
        is_pre = script.kind == "PRE"
        n_total = len(self.runs)
        values = {
            "$NODE": run.name,
            "$JOB": run.name,
            "$RETRY": str(run.retries),
            "$MAX_RETRIES": str(run.retry_max),
            "$DAG_STATUS": str(int(self.dag_status)),
            "$FAILED_COUNT": str(self.count[NodeStatus.ERROR]),
            "$FUTILE_COUNT": str(self.count[NodeStatus.FUTILE]),
            "$DONE_COUNT": str(self.count[NodeStatus.DONE]),
            "$QUEUED_COUNT": str(self.count[NodeStatus.SUBMITTED]),
            "$NODE_COUNT": str(n_total),
            "$DAGID": str(self.dag_id),
        }
        if not is_pre:
            codes = [c for c in run.proc_results if c is not None]
            counts = collections.Counter(codes)
            last_proc = max(len(run.proc_results) - 1, 0)
            values.update(
                {
                    "$JOBID": f"{run.cluster if run.cluster is not None else -1}.{last_proc}",
                    "$CLUSTERID": str(run.cluster if run.cluster is not None else -1),
                    "$JOB_COUNT": str(len(run.proc_results)),
                    "$SUCCESS": "True" if not run.job_failed and run.job_return == 0 else "False",
                    "$RETURN": str(run.job_return),
                    "$EXIT_CODES": ",".join(str(c) for c in sorted(counts)),
                    "$EXIT_CODE_COUNTS": ",".join(f"{c}:{counts[c]}" for c in sorted(counts)),
                    "$EXIT_CODE_LIST": ",".join("" if c is None else str(c) for c in run.proc_results),
                    "$PRE_SCRIPT_RETURN": str(run.pre_return),
                    "$JOB_ABORT_COUNT": str(run.aborted_procs),
                }
            )
        argv = []
        for token in script.tokens:
            value = values.get(token.upper())
            if value is None and token.startswith("$") and token.upper() not in values:
                self.out(
                    f"Warning: unrecognized or unavailable macro {token} in node {run.name} {script.kind} script"
                )
            argv.append(token if value is None else value)
        return argv

    def _start_script(self, run: _Run, script: Script) -> None:
        argv = self._script_argv(run, script)
        cwd = self._node_dir(run)
        exe = Path(argv[0])
        exe_path = str(exe if exe.is_absolute() else cwd / exe)
        kind = script.kind
        if kind == "PRE":
            self.pre_running += 1
            self._jobstate(run, "PRE_SCRIPT_STARTED", "-")
        else:
            self.post_running += 1
            self._jobstate(run, "POST_SCRIPT_STARTED", f"{run.cluster}.0" if run.cluster is not None else "-")
        out: Any = subprocess.DEVNULL
        err: Any = subprocess.DEVNULL
        capture = None
        try:
            if script.debug_file:
                # Script output is discarded unless SCRIPT DEBUG asks for it (then appended after exit).
                capture = open(self._debug_tmp(run, kind), "w")  # noqa: SIM115
                out = capture if script.debug_type in ("STDOUT", "ALL") else subprocess.DEVNULL
                err = capture if script.debug_type in ("STDERR", "ALL") else subprocess.DEVNULL
            proc = self.watcher.spawn(
                (run.name, kind), argv, cwd=cwd, env=self.env, executable=exe_path, stdout=out, stderr=err
            )
        except OSError as exc:
            # DAGMan treats a script that cannot be started as having exited with status 1.
            self.out(
                f"Error: cannot run {kind} script of node {run.name} ({exe_path}): {exc.strerror} "
                "(script paths are relative to the node's directory; PATH is not searched)"
            )
            self.pending_exits.append(Exit((run.name, kind), -1, 1, 0.0, 0.0, time.time()))
            run.script_pid = -1
            return
        finally:
            if capture is not None:
                capture.close()
        run.script_pid = proc.pid
        self.stats["scripts_started"] += 1
        self.journal.record("spawn", n=run.name, w=kind.lower(), pid=proc.pid, t=time.time())

    def _debug_tmp(self, run: _Run, kind: str) -> str:
        return str(self.dag_path.with_name(f".{self.dag_path.name}.{run.name}.{kind}.debug"))

    def _append_debug(self, run: _Run, script: Script, status: int, argv_text: str) -> None:
        tmp = Path(self._debug_tmp(run, script.kind))
        try:
            output = tmp.read_text(errors="replace")
            tmp.unlink()
        except OSError:
            output = ""
        path = self._node_dir(run) / script.debug_file  # type: ignore[operator]
        with open(path, "a") as fh:
            fh.write(
                f"*** Node={run.name} Type={script.kind} Status={status} Completion={int(time.time())} "
                f"Cmd='{argv_text}'\n{output}"
            )

    def _on_script_exit(self, run: _Run, kind: str, ex: Exit) -> None:
        script = run.node.pre if kind == "PRE" else run.node.post
        assert script is not None
        if kind == "PRE":
            self.pre_running -= 1
        else:
            self.post_running -= 1
        run.script_pid = None
        if ex.pid > 0:
            self.journal.record("reap", pid=ex.pid)
        if script.debug_file:
            self._append_debug(run, script, ex.code, " ".join(script.tokens))
        if run.doomed:
            self._doomed_done(run)
            return
        code = ex.code
        if script.defer_status is not None and code == script.defer_status:
            delay = script.defer_time * self.opts.defer_factor
            self.out(f"Deferring {kind} script of node {run.name} for {script.defer_time:g} s (exit {code})")
            self._timer(delay, _Timer.DEFER, (run.name, kind))
            return
        if kind == "PRE":
            self._pre_done(run, code)
        else:
            self._post_done(run, code, ex.when)

    def _pre_done(self, run: _Run, code: int) -> None:
        self._jobstate(run, "PRE_SCRIPT_SUCCESS" if code == 0 else "PRE_SCRIPT_FAILURE", "-")
        run.pre_return = code
        if code == 0:
            run.retval = 0
            run.pre_done = True
            self._set_status(run, NodeStatus.READY)
            self._push_ready(run)
            self._check_abort(run, "PRE script")
            return
        node = run.node
        if code < 0:
            run.details = f"PRE Script died on signal {-code}"
        else:
            run.details = f"PRE Script failed with status {code}"
        run.retval = code
        if node.pre_skip is not None and code == node.pre_skip:
            self.out(
                f"PRE_SKIP return value {code} indicates we are done (successfully) with node {run.name}"
            )
            run.retval = 0
            run.details = ""
            run.pre_done = True
            self._terminate(run)
        elif self.always_run_post and node.post is not None:
            run.job_return = RETURN_JOB_SKIPPED
            run.job_failed = True
            self._set_status(run, NodeStatus.POSTRUN)
            self.post_wait.append(run.name)
            return
        elif self._abort_match(run):
            self._fail(run, futile=False)
        elif self._can_retry(run):
            self._restart(run)
            return
        else:
            self._fail(run)
        self._check_abort(run, "PRE script")

    def _post_done(self, run: _Run, code: int, when: float) -> None:
        cid = f"{run.cluster}.0" if run.cluster is not None else "-"
        if run.cluster is not None:
            self.events.post_script([self.nodes_log], run.cluster, when, run.name, code)
        self._jobstate(run, "POST_SCRIPT_TERMINATED", cid)
        self._jobstate(run, "POST_SCRIPT_SUCCESS" if code == 0 else "POST_SCRIPT_FAILURE", cid)
        job_ret = run.retval
        run.retval = code
        if code == 0:
            run.details = ""
            self._terminate(run)
            self._check_abort(run, "POST script")
            return
        if job_ret > 0:
            prefix = f"Job exited with status {job_ret} and "
        elif job_ret < 0 and job_ret >= -64:
            prefix = f"Job died on signal {-job_ret} and "
        elif job_ret < 0:
            prefix = f"Job failed due to DAGMAN error {job_ret} and "
        else:
            prefix = ""
        what = f"failed with status {code}" if code >= 0 else f"died on signal {-code}"
        run.details = f"{prefix}POST Script {what}"
        self._after_failure(run, "POST script")

    # ------------------------------------------------------------------------------------ jobs
    def _next_cluster_id(self) -> int:
        cluster = self.next_cluster
        self.next_cluster += 1
        return cluster

    def _macros(self, run: _Run) -> tuple[dict[str, str], dict[str, str]]:
        """DAGMan's injected submit macros plus the node's VARS (prepend, append)."""
        node = run.node
        parents = ",".join(node.parents)
        prepend = {
            "JOB": node.name,
            "RETRY": str(run.retries),
            "DAG_STATUS": str(int(self.dag_status)),
            "FAILED_COUNT": str(self.count[NodeStatus.ERROR]),
            "DAG_PARENT_NAMES": parents,
            "DAGManJobId": str(self.dag_id),
            "dag_node_name": node.name,
        }
        append: dict[str, str] = {}
        for var in node.vars:
            as_prepend = var.prepend if var.prepend is not None else not self.append_vars
            (prepend if as_prepend else append)[var.key] = var.value
            (append if as_prepend else prepend).pop(var.key, None)
        return prepend, append

    def _submit(self, run: _Run) -> bool:
        """Submit the node's job; False if the submission failed (node already handled)."""
        node = run.node
        now = time.time()
        if node.noop:
            cluster = self._next_cluster_id()
            run.cluster = cluster
            run.proc_results = [0]
            self.events.submit([self.nodes_log], cluster, 0, now, run.name)
            self.events.terminated([self.nodes_log], cluster, 0, now, 0)
            self._jobstate(run, "SUBMIT", f"{cluster}.0")
            self._jobstate(run, "JOB_TERMINATED", f"{cluster}.0")
            run.retval = run.job_return = 0
            self._set_status(run, NodeStatus.SUBMITTED)
            self._job_finished(run)
            return True
        run.submit_attempts += 1
        try:
            spec = self._build_spec(run)
        except SubmitError as exc:
            return self._submit_failed(run, str(exc), permanent=True)
        procs: list[tuple[int, subprocess.Popen]] = []
        try:
            for proc_spec in spec.procs:
                procs.append((proc_spec.proc, spawn_job_proc(self.watcher, (run.name, "job"), proc_spec)))
        except OSError as exc:
            for _, p in procs:
                self.watcher.signal(p.pid, signal.SIGKILL)
            permanent = exc.errno in _PERMANENT_SPAWN_ERRORS
            return self._submit_failed(run, f"cannot start job: {exc.strerror}", permanent=permanent)
        run.cluster = spec.cluster
        run.kill_sig, run.vacate = spec.kill_sig, spec.vacate_time
        run.log_paths = [spec.log] if spec.log is not None else []
        if spec.log is not None and spec.log_xml:
            self.events.xml.add(spec.log)
        if spec.tag != "-" or run.tag is None:
            run.tag = spec.tag
        run.proc_results = [None] * len(spec.procs)
        run.job_failed = False
        run.aborted_procs = 0
        run.job_return = run.retval = 0
        started = time.monotonic()
        self.stats["jobs_started"] += len(procs)
        for index, p in procs:
            run.procs[p.pid] = _Proc(index, p.pid, started)
            self.journal.record("spawn", n=run.name, w="job", pid=p.pid, t=now, c=spec.cluster)
        logs = self._log_paths(run)
        for index, _ in procs:
            self.events.submit(logs, spec.cluster, index, now, run.name)
            self._jobstate(run, "SUBMIT", f"{spec.cluster}.{index}")
        for index, _ in procs:
            self.out(f"Event: ULOG_SUBMIT for HTCondor Node {run.name} ({spec.cluster}.{index}.0)")
        for index, _ in procs:
            self.events.execute(logs, spec.cluster, index, now)
            self._jobstate(run, "EXECUTE", f"{spec.cluster}.{index}")
            self.out(f"Event: ULOG_EXECUTE for HTCondor Node {run.name} ({spec.cluster}.{index}.0)")
        self._set_status(run, NodeStatus.SUBMITTED)
        return True

    def _build_spec(self, run: _Run) -> JobSpec:
        node = run.node
        cwd = self._node_dir(run)
        if node.is_subdag:
            return self._subdag_spec(run, cwd)
        text = self._submit_text(run)
        assert text is not None
        origin = f"{node.submit or 'inline description'} (node {node.name})"
        prepend, append = self._macros(run)
        parents = ",".join(node.parents)
        dag_attrs = {
            "DAGNodeName": _quote(node.name),
            "DAGParentNodeNames": _quote(parents),
            "DAGManJobId": str(self.dag_id),
        }
        return build_job(
            text,
            origin,
            submit_dir=cwd,
            cluster=self._next_cluster_id(),
            prepend=prepend,
            append=append,
            base_env=self.env,
            dag_attributes=dag_attrs,
            prohibit_multi=self.prohibit_multi,
            inline=node.inline_submit is not None or node.submit in self.dag.descriptions,
        )

    def _subdag_spec(self, run: _Run, cwd: Path) -> JobSpec:
        o = self.opts
        options = ["--poll-interval", repr(o.poll_interval), "--kill-grace", repr(o.kill_grace)]
        options += [
            "--defer-factor",
            repr(o.defer_factor),
            "--submit-retry-delay",
            repr(o.submit_retry_delay),
        ]
        options += ["--priority", str(run.priority)]
        options += ["--no-auto-rescue"] if not self.auto_rescue else []
        options += ["--cycle-check" if self.cycle_detect else "--no-cycle-check"]
        return subdag_spec(run.node.submit, cwd, self._next_cluster_id(), self.env, options, o.kill_grace)

    def _submit_failed(self, run: _Run, message: str, permanent: bool) -> bool:
        self.out(f"ERROR: submit attempt {run.submit_attempts} for node {run.name} failed: {message}")
        self._jobstate(run, "SUBMIT_FAILURE", "-")
        if not permanent and run.submit_attempts < self.max_submit_attempts:
            delay = self.opts.submit_retry_delay * 2 ** (run.submit_attempts - 1)
            self._timer(delay, _Timer.RESUBMIT, run.name)
            return False
        run.poisoned = True
        run.details = f"Job submit failed: {message}"
        run.retval = run.job_return = RETURN_SUBMIT_FAILED
        run.job_failed = True
        run.cluster = None
        run.proc_results = []
        if run.node.post is not None:
            self._set_status(run, NodeStatus.POSTRUN)
            self.post_wait.append(run.name)
        else:
            self._fail(run)
            self._check_abort(run, "job")
        return False

    def _on_job_exit(self, run: _Run, ex: Exit) -> None:
        proc = run.procs.pop(ex.pid)
        self.stats["job_seconds"] += time.monotonic() - proc.started
        self.journal.record("reap", pid=ex.pid)
        assert run.cluster is not None
        cid = f"{run.cluster}.{proc.index}"
        logs = self._log_paths(run)
        # A proc we signalled may have exited on its own before the signal arrived: then it terminated.
        killed_by_us = proc.removing and ex.code in (-run.kill_sig, -signal.SIGKILL)
        if killed_by_us:
            self.events.evicted(logs, run.cluster, proc.index, ex.when)
            self._jobstate(run, "JOB_EVICTED", cid)
            reason = "via condor_rm (by autosplit local executor)"
            self.events.aborted(logs, run.cluster, proc.index, ex.when, reason)
            self._jobstate(run, "JOB_ABORTED", cid)
            run.aborted_procs += 1
            run.proc_results[proc.index] = None
            if not run.job_failed and not run.doomed:
                run.job_failed = True
                run.retval = run.job_return = RETURN_JOB_ABORTED
                run.details = f"HTCondor reported ULOG_JOB_ABORTED event for job proc ({cid}.000)"
        else:
            self.events.terminated(logs, run.cluster, proc.index, ex.when, ex.code, ex.user, ex.system)
            self._jobstate(run, "JOB_TERMINATED", cid)
            self.out(f"Event: ULOG_JOB_TERMINATED for HTCondor Node {run.name} ({cid}.0) exit {ex.code}")
            run.proc_results[proc.index] = ex.code
            if ex.code != 0 and not run.job_failed:
                run.job_failed = True
                run.retval = run.job_return = ex.code
                if ex.code > 0:
                    run.details = f"Job proc ({cid}.000) failed with status {ex.code}"
                else:
                    run.details = f"Job proc ({cid}.000) failed with signal {-ex.code}"
                for other in run.procs.values():  # failure tolerance 0: remove the rest of the cluster
                    self._remove_proc(run, other)
        if run.procs:
            return
        if run.doomed:
            self._doomed_done(run)
            return
        self._job_finished(run)

    def _job_finished(self, run: _Run) -> None:
        """All procs of the node's job left the queue."""
        self._jobstate(run, "JOB_FAILURE" if run.job_failed else "JOB_SUCCESS", str(run.retval))
        self.journal.record(
            "jobend",
            n=run.name,
            c=run.cluster,
            ret=run.job_return,
            pre=run.pre_return,
            failed=run.job_failed,
            codes=run.proc_results,
            aborted=run.aborted_procs,
        )
        if run.node.post is not None:
            self._set_status(run, NodeStatus.POSTRUN)
            self.post_wait.append(run.name)
            return
        if run.job_failed:
            self._after_failure(run, "job")
            return
        self._terminate(run)
        self._check_abort(run, "job")

    def _remove_proc(self, run: _Run, proc: _Proc) -> None:
        if proc.removing:
            return
        proc.removing = True
        self.watcher.signal(proc.pid, run.kill_sig)
        grace = run.vacate if run.vacate is not None else self.opts.kill_grace
        self._timer(grace, _Timer.SIGKILL, proc.pid)

    # ------------------------------------------------------------------------------------ dispatch
    def _dispatch(self) -> None:
        if not self.halted or self.final_started:
            while self.pre_wait and (self.max_pre == 0 or self.pre_running < self.max_pre):
                run = self.runs[self.pre_wait.popleft()]
                if run.status == NodeStatus.PRERUN and not run.doomed:
                    self._start_script(run, run.node.pre)  # type: ignore[arg-type]
        while self.post_wait and (self.max_post == 0 or self.post_running < self.max_post):
            run = self.runs[self.post_wait.popleft()]
            if run.status == NodeStatus.POSTRUN and not run.doomed:
                self._start_script(run, run.node.post)  # type: ignore[arg-type]
        if self.halted and not self.final_started:
            return
        deferred: list[tuple[int, int, str]] = []
        in_category: collections.Counter[str] = collections.Counter()
        if self.dag.maxjobs and self.ready:
            for r in self.runs.values():
                if r.status == NodeStatus.SUBMITTED and r.node.category is not None:
                    in_category[r.node.category] += 1
        while self.ready:
            if self.max_jobs and self.count[NodeStatus.SUBMITTED] >= self.max_jobs:
                break
            if self.submit_delay and time.monotonic() < self.next_submit_time:
                break
            entry = heapq.heappop(self.ready)
            run = self.runs[entry[2]]
            if run.status != NodeStatus.READY or run.doomed:
                continue
            category = run.node.category
            if category is not None:
                limit = self.dag.maxjobs.get(category)
                if limit and in_category[category] >= limit:
                    deferred.append(entry)
                    continue
            if self._submit(run) and category is not None and run.status == NodeStatus.SUBMITTED:
                in_category[category] += 1
            if self.submit_delay:
                self.next_submit_time = time.monotonic() + self.submit_delay
        for entry in deferred:
            heapq.heappush(self.ready, entry)

    # ------------------------------------------------------------------------------------ completion
    def _finished_running(self, include_final: bool) -> bool:
        final = self.dag.final
        if include_final and final is not None and not self.final_started:
            return False
        if self.halted:
            return self.count[NodeStatus.SUBMITTED] == 0 and self.pre_running + self.post_running == 0
        return (
            self.count[NodeStatus.SUBMITTED] == 0
            and self.count[NodeStatus.READY] == 0
            and self.count[NodeStatus.PRERUN] + self.count[NodeStatus.POSTRUN] == 0
        )

    def _final_done(self) -> bool:
        final = self.dag.final
        return final is not None and self.runs[final].status == NodeStatus.DONE

    def _done_count(self, include_final: bool) -> int:
        n = self.count[NodeStatus.DONE]
        if not include_final and self._final_done():
            n -= 1
        return n

    def _node_total(self, include_final: bool) -> int:
        n = len(self.runs)
        return n - 1 if (not include_final and self.dag.final is not None) else n

    def _done_success(self, include_final: bool) -> bool:
        if not self._finished_running(include_final):
            return False
        if self._done_count(include_final) == self._node_total(include_final):
            return True
        if include_final and self._final_done():
            return True
        return self.aborted and self.dag_status == DagStatus.OK

    def _done_failed(self, include_final: bool) -> bool:
        if not self._finished_running(include_final):
            return False
        if include_final and self._final_done():
            return False
        if self.aborted and self.dag_status == DagStatus.OK:
            return False
        if self.halted:
            return True
        return self.count[NodeStatus.ERROR] > 0

    def _done_cycle(self, include_final: bool) -> bool:
        return (
            self._finished_running(include_final)
            and not self._done_success(include_final)
            and self.count[NodeStatus.ERROR] == 0
            and not self.halted
            and not self.aborted
        )

    def _check_progress(self) -> None:
        if self.finishing:
            return
        if self._done_success(True):
            self.out("All jobs Completed!")
            self._finish(EXIT_OKAY)
        elif self._done_failed(True):
            halted = self.halted and not self.final_started
            self._shutdown(EXIT_ERROR, DagStatus.HALTED if halted else self.dag_status)
        elif self.in_shutdown:
            return
        elif self._done_success(False):
            self._start_final()
        elif (
            self.halted
            and self.count[NodeStatus.SUBMITTED] == 0
            and self.count[NodeStatus.POSTRUN] == 0
            and not self.final_started
        ):
            self.out("Exiting because DAG is halted and no jobs or scripts are running")
            self._shutdown(EXIT_ERROR, DagStatus.HALTED)
        elif self._finished_running(False):
            if self.count[NodeStatus.ERROR] > 0:
                status = DagStatus.NODE_FAILED
            else:
                self.out("ERROR: DAG finished but not all nodes are complete -- checking for a cycle...")
                cycle = find_cycle(self.dag)
                if cycle:
                    self.out("... ERROR: a cycle exists in the dag: " + " -> ".join(cycle))
                    status = DagStatus.CYCLE
                else:
                    self.out("... ERROR: no cycle found; unknown error condition")
                    status = DagStatus.ERROR
            self._shutdown(EXIT_ERROR, status)

    def _start_final(self) -> bool:
        final = self.dag.final
        if final is None or self.runs[final].status != NodeStatus.NOT_READY:
            return False
        self.out("Starting final node...")
        while self.ready:
            run = self.runs[heapq.heappop(self.ready)[2]]
            if run.status == NodeStatus.READY:
                self._set_status(run, NodeStatus.NOT_READY)
        self.final_started = True
        self._start_node(self.runs[final])
        return True

    def _shutdown(self, exit_code: int, status: DagStatus, removed: bool = False) -> None:
        """DAGMan's ``main_shutdown_rescue``: rescue DAG, remove jobs, kill scripts, run FINAL, exit."""
        self.dag_status = status
        if removed:
            self.removed = True
        if exit_code != 0 and self.max_rescue > 0:
            self._write_rescue()
        self.in_shutdown = True
        self._doom_all()
        if self._start_final():
            return
        self._finish(exit_code)

    def _doom_all(self) -> None:
        """Remove running jobs and kill running scripts; nodes in flight end as ERROR ("Was STATUS_...")."""
        final = self.dag.final
        for run in self.runs.values():
            if run.status not in (NodeStatus.PRERUN, NodeStatus.SUBMITTED, NodeStatus.POSTRUN):
                continue
            if run.name == final and not self.finishing:
                continue  # the FINAL node runs to the end unless the DAG is removed or stopped
            run.doomed = True
            run.details = f"Was STATUS_{run.status.name}"
            if run.procs:
                for proc in list(run.procs.values()):
                    self._remove_proc(run, proc)
            elif run.script_pid is not None and run.script_pid > 0:
                self.watcher.signal(run.script_pid, signal.SIGKILL)
            else:
                self._doomed_done(run)

    def _doomed_done(self, run: _Run) -> None:
        # When stopped for a restart, nodes keep their state: the next run re-runs them.
        if not self.stopped and run.status in (NodeStatus.PRERUN, NodeStatus.SUBMITTED, NodeStatus.POSTRUN):
            self._set_status(run, NodeStatus.ERROR)
            self.journal.record("failed", n=run.name, r=run.retval, d=run.details)

    def _finish(self, exit_code: int) -> None:
        self.exit_code = exit_code
        self.finishing = True
        self._doom_all()

    def _write_rescue(self) -> None:
        # One rescue file per run: a second write (after the FINAL node) overwrites the first.
        if self.rescue_written is not None:
            path = self.rescue_written
        else:
            number = min(rescue_mod.last_rescue_number(self.dag_path, self.max_rescue) + 1, self.max_rescue)
            path = rescue_mod.rescue_path(self.dag_path, number)
        final = self.dag.final
        done = [r.name for r in self.runs.values() if r.status == NodeStatus.DONE and r.name != final]
        failed = [r.name for r in self.runs.values() if r.status == NodeStatus.ERROR]
        retry_lines = None
        if not self.reset_retries:
            retry_lines = [
                (r.name, r.retries, r.retry_max, r.unless_exit)
                for r in self.runs.values()
                if r.retry_max > 0 and r.status != NodeStatus.DONE and r.name != final
            ]
        text = rescue_mod.render_rescue(
            self.dag.path.name,
            len(self.runs),
            self.count[NodeStatus.DONE],
            failed,
            self.count[NodeStatus.ERROR],
            done,
            retry_lines,
        )
        rescue_mod.write_rescue(path, text)
        self.rescue_written = path
        self.out(f"Writing Rescue DAG to {path}...")

    # ------------------------------------------------------------------------------------ status file
    def _status_note(self, held: bool) -> tuple[NodeStatus, str, bool]:
        if self._done_success(True):
            return NodeStatus.DONE, "success", True
        if self.removed and not self.final_started:
            return NodeStatus.ERROR, "removed", True
        if self._done_failed(True):
            return NodeStatus.ERROR, "aborted" if self.dag_status == DagStatus.ABORT else "failed", True
        if self._done_cycle(True):
            return NodeStatus.ERROR, "cycle", False
        if held:
            return NodeStatus.SUBMITTED, "held", False
        if self.removed:
            return NodeStatus.SUBMITTED, "removed", False
        if self.aborted:
            return NodeStatus.SUBMITTED, "aborted", False
        return NodeStatus.SUBMITTED, "", False

    def _write_status(self, force: bool = False, final: bool = False, held: bool = False) -> None:
        spec = self.dag.status_file
        if spec is None:
            return
        now = time.monotonic()
        if not force:
            if not (self.status_dirty or spec.always_update):
                return
            if now - self.last_status_write < max(spec.min_interval, self.opts.poll_interval):
                return
        dag_state, note, mark = self._status_note(held)
        c = self.count
        counts = {
            "NodesTotal": len(self.runs),
            "NodesDone": c[NodeStatus.DONE],
            "NodesPre": c[NodeStatus.PRERUN],
            "NodesQueued": c[NodeStatus.SUBMITTED],
            "NodesPost": c[NodeStatus.POSTRUN],
            "NodesReady": c[NodeStatus.READY],
            "NodesUnready": c[NodeStatus.NOT_READY],
            "NodesFutile": c[NodeStatus.FUTILE],
            "NodesFailed": c[NodeStatus.ERROR],
            "JobProcsHeld": 0,
            "JobProcsIdle": 0,
        }
        if mark:
            counts["NodesFailed"] += counts["NodesPre"] + counts["NodesQueued"] + counts["NodesPost"]
            counts["NodesPre"] = counts["NodesQueued"] = counts["NodesPost"] = 0
        rows = []
        for run in self.runs.values():
            status, details, queued = run.status, "", 0
            if status == NodeStatus.SUBMITTED:
                if mark:
                    status, details = NodeStatus.ERROR, "Was STATUS_SUBMITTED"
                else:
                    details, queued = "not_idle", len(run.procs)
            elif status in (NodeStatus.PRERUN, NodeStatus.POSTRUN) and mark:
                details = f"Was STATUS_{status.name}"
                status = NodeStatus.ERROR
            elif status in (NodeStatus.ERROR, NodeStatus.FUTILE):
                details = run.details
            elif status == NodeStatus.DONE and run.user_done:
                details = "User defined as DONE"
            rows.append(StatusRow(run.name, int(status), details, run.retries, queued, 0))
        next_update = None if final else time.time() + spec.min_interval
        text = render_status([str(self.dag.path)], int(dag_state), note, counts, rows, next_update)
        if self.dag.dot_file and self.dag.dot_update:
            self._write_dot()
        try:
            write_atomically(self._path(spec.path), text)
        except OSError as exc:
            self.out(f"Warning: can't write node status file {spec.path}: {exc}")
        self.last_status_write = now
        self.status_dirty = False

    _DOT_STATE = {
        NodeStatus.NOT_READY: "I",
        NodeStatus.READY: "I",
        NodeStatus.PRERUN: "Pre",
        NodeStatus.SUBMITTED: "R",
        NodeStatus.POSTRUN: "Post",
        NodeStatus.DONE: "Done",
        NodeStatus.ERROR: "E",
        NodeStatus.FUTILE: "E",
    }

    def _write_dot(self) -> None:
        """Graphviz view of the DAG, each node labelled ``name (state)`` as DAGMan's DOT file."""
        lines = ["digraph DAG {", f'    label="DAG {self.dag.path.name}";']
        for run in self.runs.values():
            lines.append(
                f'    "{run.name}" [shape=ellipse label="{run.name} ({self._DOT_STATE[run.status]})"];'
            )
        for run in self.runs.values():
            lines.extend(f'    "{run.name}" -> "{child}";' for child in run.node.children)
        lines.append("}")
        with contextlib.suppress(OSError):
            self._path(self.dag.dot_file).write_text("\n".join(lines) + "\n")  # type: ignore[arg-type]

    def discard(self) -> None:
        """Release what __init__/start acquired when the run does not go ahead."""
        self.watcher.kill_all()
        self.watcher.close()
        self.journal.close()
        if self.jobstate is not None:
            self.jobstate.close()
        self.out.close()
        if self.lock.stale:
            self.lock.abandon()  # keep the lock of an interrupted run: it still needs recovering
        else:
            self.lock.release()

    # ------------------------------------------------------------------------------------ main loop
    def _check_requests(self) -> None:
        halted = self.halt_file.exists()
        if halted != self.halted:
            if halted:
                self.out(f"DAG is halted because halt file {self.halt_file} exists")
            else:
                self.out("DAG going from halted to running state")
            self.halted = halted
            self.status_dirty = True
        request = self.signal_request
        self.signal_request = None
        if self.remove_file.exists():
            # request_remove() both creates the file and signals: one request, consumed through both channels.
            request = request or "remove"
            with contextlib.suppress(OSError):
                self.remove_file.unlink()
        if request is None or self.finishing:
            return
        if request == "remove":
            self.out("Received a removal request (condor_rm equivalent)")
            if self.in_shutdown:
                self._finish(EXIT_ABORT)
            else:
                self._shutdown(EXIT_ABORT, DagStatus.RM, removed=True)
        elif request == "stop":
            self.out("Received a stop request: stopping for a later restart (recovery mode)")
            self.stopped = True
            self._finish(EXIT_RESTART)

    def _fire_timers(self) -> None:
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, _, kind, payload = heapq.heappop(self.timers)
            if kind == _Timer.SIGKILL:
                pid = payload
                for run in self.runs.values():
                    if pid in run.procs:
                        self.watcher.signal(pid, signal.SIGKILL)
                        break
            elif kind == _Timer.DEFER:
                name, kind_ = payload
                run = self.runs[name]
                if run.doomed:
                    self._doomed_done(run)
                elif kind_ == "PRE" and run.status == NodeStatus.PRERUN:
                    self.pre_wait.append(name)
                elif kind_ == "POST" and run.status == NodeStatus.POSTRUN:
                    self.post_wait.append(name)
            elif kind == _Timer.RESUBMIT:
                run = self.runs[payload]
                if run.status == NodeStatus.READY and not run.doomed:
                    self._push_ready(run)

    def _handle(self, ex: Exit) -> None:
        name, kind = ex.token
        run = self.runs[name]
        if kind == "job":
            self._on_job_exit(run, ex)
        else:
            self._on_script_exit(run, kind, ex)

    def _timeout(self) -> float:
        timeout = self.opts.poll_interval
        if self.timers:
            timeout = min(timeout, max(self.timers[0][0] - time.monotonic(), 0.0))
        if self.submit_delay and self.ready:
            timeout = min(timeout, max(self.next_submit_time - time.monotonic(), 0.0))
        if self.pending_exits:
            timeout = 0.0
        return timeout

    def _flush(self) -> None:
        self.journal.commit()
        self.events.flush()
        if self.jobstate is not None:
            self.jobstate.flush()
        self.out.flush()

    def run(self) -> DagResult:
        try:
            while True:
                self._check_requests()
                if not self.finishing:
                    self._dispatch()
                    self._check_progress()
                if self.finishing and len(self.watcher) == 0 and not self.pending_exits:
                    break
                self.stats["cycles"] += 1
                exits = self.pending_exits + self.watcher.wait(self._timeout())
                self.pending_exits = []
                for ex in exits:
                    self._handle(ex)
                self._fire_timers()
                self._flush()
                if not self.finishing:
                    self._write_status()
            return self._close()
        except BaseException:
            self.watcher.kill_all()
            self._flush()
            raise
        finally:
            self.watcher.close()
            self.events.close()
            if self.jobstate is not None:
                self.jobstate.close()
            self.out.close()

    def _close(self) -> DagResult:
        assert self.exit_code is not None
        code = self.exit_code
        if self.stopped:
            self._write_status(force=True, held=True)
        else:
            self._write_status(force=True, final=True)
        if self.dag.dot_file and self.dag.dot_update:
            self._write_dot()
        if self.jobstate is not None:
            self.jobstate.internal(f"DAGMAN_FINISHED {code}")
        if not self.stopped:
            self.journal.record("finish", x=code)
        self.journal.close()
        self._write_metrics(code)
        self.out.exiting(code)
        if self.stopped:
            self.lock.abandon()
        else:
            self.lock.release()
        nodes = {
            r.name: NodeResult(r.name, r.status, r.retries, r.retval, r.details) for r in self.runs.values()
        }
        return DagResult(
            self.dag.path,
            code,
            self.dag_status,
            nodes,
            self.rescue_written,
            self.recovered,
            time.monotonic() - self.started,
            dict(self.stats),
        )

    def _write_metrics(self, code: int) -> None:
        c = self.count
        metrics = {
            "client": "autosplit local executor",
            "exitcode": code,
            "DagStatus": int(self.dag_status),
            "rescue_dag_number": self.rescue_number,
            "total_nodes": len(self.runs),
            "nodes_done": c[NodeStatus.DONE],
            "nodes_failed": c[NodeStatus.ERROR],
            "nodes_futile": c[NodeStatus.FUTILE],
            "duration": round(time.monotonic() - self.started, 3),
            "recovered": self.recovered,
        }
        with contextlib.suppress(OSError):
            write_atomically(
                self.dag_path.with_name(self.dag_path.name + ".metrics"), json.dumps(metrics, indent=2) + "\n"
            )


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


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
    if executor.cycle_detect:
        cycle = find_cycle(dag)
        if cycle:
            executor.discard()
            raise DagParseError(str(path), 0, "PARENT", "the DAG has a cycle: " + " -> ".join(cycle))
    main_thread = threading.current_thread() is threading.main_thread()
    handle = opts.handle_signals if opts.handle_signals is not None else main_thread
    previous: dict[int, Any] = {}
    if handle:

        def on_signal(signum: int, _frame: Any) -> None:
            executor.signal_request = "remove" if signum == signal.SIGUSR1 else "stop"
            executor.watcher.wake()

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        executor.lock.accepts_signals = handle
        try:
            executor.start()
        except BaseException:
            executor.discard()
            raise
        return executor.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _rejected(executor: _Executor, dag: Dag) -> DagResult:
    executor.out(f"Exiting because of REJECT specification in {dag.reject}")
    executor.out("DAG marked as rejected")
    executor.out.exiting(EXIT_ERROR)
    executor.discard()
    nodes = {
        n.name: NodeResult(n.name, NodeStatus.NOT_READY, 0, 0, "DAG rejected") for n in dag.nodes.values()
    }
    return DagResult(dag.path, EXIT_ERROR, DagStatus.ERROR, nodes)
