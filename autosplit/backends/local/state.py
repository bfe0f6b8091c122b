"""The DAG's run-time state, and the node transitions that change it (DAGMan's node state machine).

One :class:`NodeRun` per node (status, retries, return values, running processes) and one :class:`DagState`
per run, holding every node's run plus what the scheduler works from:

* ``count`` -- the number of nodes in each :class:`NodeStatus`, kept by :meth:`DagState.set_status`, so
  the completion rules (DAGMan's FinishedRunning / DoneSuccess / DoneFailed / DoneCycle) are O(1);
* ``ready`` -- heap of nodes whose job may be submitted: highest PRIORITY first, FIFO among equals
  (:meth:`DagState.push_ready`);
* ``pre_wait`` / ``post_wait`` -- nodes whose PRE / POST script waits for a slot;
* ``timers`` -- heap of ``(due, seq, kind, payload)``: DEFER re-runs, SIGKILL escalation, submit retries;
* the DAG-wide flags (halted, aborted, final_started, in_shutdown, finishing, ...).

Node transitions: NOT_READY -> READY | PRERUN -> SUBMITTED -> POSTRUN -> DONE | ERROR, and FUTILE for the
descendants of a failed node. Each transition that matters for recovery is recorded in the journal as it
happens. Nothing here starts or stops processes.
"""

from __future__ import annotations

import collections
import heapq
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosplit.backends.local.journal import Journal
from autosplit.backends.local.logs import DagmanOut
from autosplit.backends.local.model import Dag, DagStatus, Node, NodeStatus
from autosplit.backends.local.options import Settings

RUNNING = (NodeStatus.PRERUN, NodeStatus.SUBMITTED, NodeStatus.POSTRUN)


@dataclass(eq=False)
class JobProc:
    """One running process of a node's job (a proc of its cluster)."""

    index: int
    pid: int
    started: float = 0.0  # time.monotonic() at spawn
    removing: bool = False


@dataclass(eq=False)
class NodeRun:
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
    procs: dict[int, JobProc] = field(default_factory=dict)  # running procs by pid
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


class Timer:
    """Kinds of timer entries in :attr:`DagState.timers` (payload in brackets)."""

    DEFER = "defer"  # re-queue a deferred script [(node name, "PRE" | "POST")]
    SIGKILL = "sigkill"  # escalate the removal of a job proc [pid]
    RESUBMIT = "resubmit"  # retry a failed submit [node name]


class DagState:
    """Everything about one DAG run that changes while it runs. The journal and ``dagman.out`` are here
    because the transitions record themselves in them."""

    def __init__(
        self, dag: Dag, dag_path: Path, settings: Settings, journal: Journal, out: DagmanOut
    ) -> None:
        self.dag = dag
        self.dag_path = dag_path  # absolute
        self.settings = settings
        self.journal = journal
        self.out = out
        self.runs: dict[str, NodeRun] = {}
        self.ready: list[tuple[int, int, str]] = []
        self.pre_wait: collections.deque[str] = collections.deque()
        self.post_wait: collections.deque[str] = collections.deque()
        self.timers: list[tuple[float, int, str, Any]] = []
        self.count: collections.Counter[NodeStatus] = collections.Counter()
        self.seq = 0  # tie-breaker for the ready and timer heaps
        self.pre_running = 0
        self.post_running = 0
        self.dag_status = DagStatus.OK
        self.dag_id = 0
        self.halted = False  # the halt file exists
        self.aborted = False  # an ABORT-DAG-ON value was seen
        self.final_started = False
        self.in_shutdown = False  # no new nodes start (except FINAL)
        self.removed = False  # condor_rm equivalent
        self.stopped = False  # SIGTERM/SIGINT: exit 3, recover next time
        self.finishing = False  # exit code decided: waiting for the last children to go
        self.exit_code: int | None = None
        self.status_dirty = True  # the node status file is out of date
        self.recovered = False  # resumed from the journal of an interrupted run
        self.rescue_number = 0  # number of the rescue DAG applied at start
        self.rescue_written: Path | None = None
        self.stats: dict[str, float] = {
            "cycles": 0,
            "jobs_started": 0,
            "job_seconds": 0.0,
            "scripts_started": 0,
        }

    # ------------------------------------------------------------------------------------ helpers
    def set_status(self, run: NodeRun, status: NodeStatus) -> None:
        self.count[run.status] -= 1
        self.count[status] += 1
        run.status = status
        self.status_dirty = True

    def add_timer(self, delay: float, kind: str, payload: Any) -> None:
        self.seq += 1
        heapq.heappush(self.timers, (time.monotonic() + delay, self.seq, kind, payload))

    def push_ready(self, run: NodeRun, front: bool = False) -> None:
        """Queue the node's job: highest PRIORITY first, then FIFO (LIFO with DAGMAN_SUBMIT_DEPTH_FIRST,
        or for a retry with DAGMAN_RETRY_NODE_FIRST)."""
        self.seq += 1
        order = -self.seq if (front or self.settings.depth_first) else self.seq
        heapq.heappush(self.ready, (-run.priority, order, run.name))

    def queue_post(self, run: NodeRun) -> None:
        """The node's POST script is next: wait for a POST slot."""
        self.set_status(run, NodeStatus.POSTRUN)
        self.post_wait.append(run.name)

    def node_dir(self, run: NodeRun) -> Path:
        d = run.node.dir
        return self.dag.workdir / d if d else self.dag.workdir

    def workdir_path(self, name: str) -> Path:
        """A path named in the DAG file (relative ones are relative to the DAG's working directory)."""
        p = Path(name)
        return p if p.is_absolute() else self.dag.workdir / p

    def can_retry(self, run: NodeRun) -> bool:
        if run.poisoned or self.abort_match(run):
            return False
        if run.unless_exit is not None and run.retval == run.unless_exit:
            return False
        return run.retries < run.retry_max

    def abort_match(self, run: NodeRun) -> bool:
        return run.node.abort_on is not None and run.retval == run.node.abort_on

    # ------------------------------------------------------------------------------------ node transitions
    def start_node(self, run: NodeRun, is_retry: bool = False) -> None:
        if run.node.pre is not None and not run.pre_done:
            self.set_status(run, NodeStatus.PRERUN)
            self.pre_wait.append(run.name)
        else:
            self.set_status(run, NodeStatus.READY)
            self.push_ready(run, front=is_retry and self.settings.retry_first)

    def terminate(self, run: NodeRun, journal: bool = True, start_children: bool = True) -> None:
        """The node succeeded."""
        self.set_status(run, NodeStatus.DONE)
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
                self.start_node(child)

    def fail(self, run: NodeRun, journal: bool = True, futile: bool = True) -> None:
        """The node failed for good."""
        if run.retry_max > 0 and "node retries)" not in run.details:
            run.details += f" (after {run.retries} node retries)"
        self.set_status(run, NodeStatus.ERROR)
        if journal:
            self.journal.record("failed", n=run.name, r=run.retval, d=run.details)
        if self.dag_status == DagStatus.OK:
            self.dag_status = DagStatus.NODE_FAILED
        if futile:
            stack = list(run.node.children)
            while stack:
                child = self.runs[stack.pop()]
                if child.status == NodeStatus.NOT_READY:
                    self.set_status(child, NodeStatus.FUTILE)
                    child.details = "Had an ancestor node fail"
                    stack.extend(child.node.children)

    def restart(self, run: NodeRun) -> None:
        """RETRY: run the node again from its PRE script."""
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
        self.set_status(run, NodeStatus.NOT_READY)
        self.start_node(run, is_retry=True)

    def start_final(self) -> bool:
        """Start the FINAL node (nodes still only READY go back to NOT_READY); False if there is none to start."""
        final = self.dag.final
        if final is None or self.runs[final].status != NodeStatus.NOT_READY:
            return False
        self.out("Starting final node...")
        while self.ready:
            run = self.runs[heapq.heappop(self.ready)[2]]
            if run.status == NodeStatus.READY:
                self.set_status(run, NodeStatus.NOT_READY)
        self.final_started = True
        self.start_node(self.runs[final])
        return True

    # ------------------------------------------------------------------------------------ completion rules
    def finished_running(self, include_final: bool) -> bool:
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

    def final_done(self) -> bool:
        final = self.dag.final
        return final is not None and self.runs[final].status == NodeStatus.DONE

    def done_count(self, include_final: bool) -> int:
        n = self.count[NodeStatus.DONE]
        if not include_final and self.final_done():
            n -= 1
        return n

    def node_total(self, include_final: bool) -> int:
        n = len(self.runs)
        return n - 1 if (not include_final and self.dag.final is not None) else n

    def done_success(self, include_final: bool) -> bool:
        if not self.finished_running(include_final):
            return False
        if self.done_count(include_final) == self.node_total(include_final):
            return True
        if include_final and self.final_done():
            return True
        return self.aborted and self.dag_status == DagStatus.OK

    def done_failed(self, include_final: bool) -> bool:
        if not self.finished_running(include_final):
            return False
        if include_final and self.final_done():
            return False
        if self.aborted and self.dag_status == DagStatus.OK:
            return False
        if self.halted:
            return True
        return self.count[NodeStatus.ERROR] > 0

    def done_cycle(self, include_final: bool) -> bool:
        return (
            self.finished_running(include_final)
            and not self.done_success(include_final)
            and self.count[NodeStatus.ERROR] == 0
            and not self.halted
            and not self.aborted
        )
