"""How a run begins: take the DAG's lock, replay the journal, then either apply the newest rescue DAG (a
fresh run) or recover the interrupted run the journal describes, and queue every node that can start.

Recovery: process groups left running are killed; nodes the journal records as done stay done, failed
ones stay failed; a node whose job finished but whose POST script did not re-runs only the POST script;
every other node that was running re-runs from its PRE script.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from autosplit.backends.local import rescue as rescue_mod
from autosplit.backends.local.control_requests import ControlRequests
from autosplit.backends.local.errors import DagParseError
from autosplit.backends.local.journal import DagLock, Recovery, kill_orphans, kill_unrecorded
from autosplit.backends.local.logs import JobstateLog
from autosplit.backends.local.model import NodeStatus
from autosplit.backends.local.node_logs import NodeLogs
from autosplit.backends.local.options import RunOptions
from autosplit.backends.local.state import DagState, NodeRun
from autosplit.backends.local.state_files import StatusFileWriter, write_dot


def start_run(
    state: DagState,
    lock: DagLock,
    requests: ControlRequests,
    logs: NodeLogs,
    status_file: StatusFileWriter,
    opts: RunOptions,
) -> int:
    """Everything before the first cycle of the loop. Returns the first cluster id free for this run's jobs."""
    dag = state.dag
    journal = state.journal
    began = time.time()
    lock.acquire()
    recovery, max_cluster = journal.replay()
    if recovery is not None and not lock.stale:
        recovery = None  # journal of an interrupted run but no lock left behind: start fresh
    state.recovered = recovery is not None
    requests.discard_stale(state.recovered, began)
    state.out(f"** condor_dagman (local executor, autosplit) pid {os.getpid()} starting DAG {dag.path}")
    for warning in dag.warnings:
        state.out(f"Warning: {warning}")
    # Node run records, in declaration order.
    for order, node in enumerate(dag.nodes.values()):
        run = NodeRun(node=node, order=order, retry_max=node.retry, unless_exit=node.unless_exit)
        run.priority = node.priority + opts.priority
        run.waiting = len(node.parents)
        state.runs[node.name] = run
        state.count[NodeStatus.NOT_READY] += 1
    if state.settings.debug_test:
        for name, (members, limit) in dag.categories().items():
            state.out(f"CHECK CATEGORY {name} {members} {limit if limit is not None else 'none'}")
    # Rescue DAG (fresh runs) or the journal (recovery).
    rescue_path: Path | None = None
    if recovery is not None:
        rescue_path = Path(recovery.rescue) if recovery.rescue else None
        state.dag_id = recovery.dag_id or max_cluster + 1
    else:
        rescue_path = _choose_rescue(state, opts)
        state.dag_id = max_cluster + 1
    next_cluster = max(max_cluster, state.dag_id) + 1
    if rescue_path is not None:
        _apply_rescue(state, rescue_path)
    for run in state.runs.values():
        if run.node.done and not run.node.is_final:
            run.user_done = True
    journal.open(fresh=recovery is None)
    if recovery is None:
        journal.record(
            "start",
            t=time.time(),
            pid=os.getpid(),
            dag_id=state.dag_id,
            c=state.dag_id,
            rescue=str(rescue_path) if rescue_path else None,
        )
    if dag.jobstate_log:
        logs.jobstate = JobstateLog(state.workdir_path(dag.jobstate_log))
        logs.jobstate.internal(f"DAGMAN_STARTED {state.dag_id}.0")
    if dag.dot_file:
        write_dot(state)
    # Pre-completed nodes, then recovered state, then start every node that can start.
    for run in state.runs.values():
        if run.user_done:
            run.details = "User defined as DONE"
            state.terminate(run, journal=False, start_children=False)
    if recovery is not None:
        _recover(state, recovery, logs, opts.kill_grace, lock.path)
    for run in state.runs.values():
        if run.status == NodeStatus.NOT_READY and run.waiting == 0 and not run.node.is_final:
            state.start_node(run)
    status_file.write(force=True)
    return next_cluster


def _choose_rescue(state: DagState, opts: RunOptions) -> Path | None:
    """The rescue DAG to apply: the one named in the options, else the newest (DAGMAN_AUTO_RESCUE)."""
    if opts.rescue_file is not None:
        return Path(opts.rescue_file)
    settings = state.settings
    if not settings.auto_rescue or settings.max_rescue <= 0:
        return None
    number = rescue_mod.last_rescue_number(state.dag_path, settings.max_rescue)
    return rescue_mod.rescue_path(state.dag_path, number) if number else None


def _apply_rescue(state: DagState, rescue_path: Path) -> None:
    """Nodes the rescue DAG lists as DONE are done (not the FINAL node); its RETRY lines replace the DAG's."""
    info = rescue_mod.read_rescue(rescue_path)
    state.out(f"Found rescue DAG {rescue_path}; running it in combination with the normal DAG file")
    for name in info.done:
        run = state.runs.get(name)
        if run is None:
            raise DagParseError(str(rescue_path), 0, "DONE", f"no node named {name!r} in {state.dag.path}")
        if not run.node.is_final:
            run.user_done = True
    for name, (count, unless) in info.retries.items():
        if name in state.runs:
            state.runs[name].retry_max, state.runs[name].unless_exit = count, unless
    m = re.search(r"\.rescue(\d{3})$", rescue_path.name)
    state.rescue_number = int(m.group(1)) if m else 0


def _recover(state: DagState, recovery: Recovery, logs: NodeLogs, kill_grace: float, lock_path: Path) -> None:
    state.out("Running in RECOVERY mode... (journal of an interrupted run found)")
    if logs.jobstate is not None:
        logs.jobstate.internal("RECOVERY_STARTED")
    killed = kill_orphans(recovery.orphans, grace=kill_grace + 1.0)
    if killed:
        state.out(f"Killed {len(killed)} process group(s) left running by the interrupted run")
    unrecorded = kill_unrecorded(
        lock_path, state.journal.path, grace=kill_grace + 1.0, recorded=frozenset(recovery.orphans)
    )
    if unrecorded:
        state.out(f"Killed {len(unrecorded)} process(es) the interrupted run started but never recorded")
    for name, retries in recovery.retries.items():
        if name in state.runs:
            state.runs[name].retries = retries
    for name in recovery.done:
        run = state.runs.get(name)
        if run is not None and run.status != NodeStatus.DONE:
            state.terminate(run, journal=False, start_children=False)
    for name, (retval, details) in recovery.failed.items():
        run = state.runs.get(name)
        if run is not None and run.status == NodeStatus.NOT_READY:
            run.retval, run.details = retval, details
            state.fail(run, journal=False)
    for name, rec in recovery.jobend.items():
        run = state.runs.get(name)
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
        state.queue_post(run)
    if logs.jobstate is not None:
        logs.jobstate.internal("RECOVERY_FINISHED")
    state.out("...done with RECOVERY mode")
