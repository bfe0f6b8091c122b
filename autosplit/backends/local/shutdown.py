"""How a run ends: DAGMan's completion rules, ABORT-DAG-ON, and the shutdown that writes the rescue DAG,
removes running jobs, kills running scripts and runs the FINAL node before the executor exits.

:meth:`Shutdown.check_progress` applies the rules of DAGMan's ``condor_event_timer`` once per cycle:
success -> exit 0; failure -> rescue DAG -> FINAL node -> exit 1; all but FINAL done -> FINAL node;
halted and drained -> exit 1; nothing left to run but nodes not done -> cycle check. Once the exit code is
decided (``state.finishing``), the loop only waits for the remaining child processes.
"""

from __future__ import annotations

import signal

from autosplit.backends.local.model import EXIT_ERROR, EXIT_OKAY, DagStatus, NodeStatus
from autosplit.backends.local.parser import find_cycle
from autosplit.backends.local.processes import ProcessWatcher
from autosplit.backends.local.state import RUNNING, DagState, JobProc, NodeRun, Timer
from autosplit.backends.local.state_files import write_rescue


class Shutdown:
    """Decides when the DAG is finished and stops what is still running."""

    def __init__(self, state: DagState, watcher: ProcessWatcher, kill_grace: float) -> None:
        self.state = state
        self.watcher = watcher
        self.kill_grace = kill_grace

    def check_progress(self) -> None:
        state = self.state
        if state.finishing:
            return
        if state.done_success(True):
            state.out("All jobs Completed!")
            self.finish(EXIT_OKAY)
        elif state.done_failed(True):
            halted = state.halted and not state.final_started
            self.begin(EXIT_ERROR, DagStatus.HALTED if halted else state.dag_status)
        elif state.in_shutdown:
            return
        elif state.done_success(False):
            state.start_final()
        elif (
            state.halted
            and state.count[NodeStatus.SUBMITTED] == 0
            and state.count[NodeStatus.POSTRUN] == 0
            and not state.final_started
        ):
            state.out("Exiting because DAG is halted and no jobs or scripts are running")
            self.begin(EXIT_ERROR, DagStatus.HALTED)
        elif state.finished_running(False):
            if state.count[NodeStatus.ERROR] > 0:
                status = DagStatus.NODE_FAILED
            else:
                state.out("ERROR: DAG finished but not all nodes are complete -- checking for a cycle...")
                cycle = find_cycle(state.dag)
                if cycle:
                    where = state.dag.cycle_location(cycle)
                    state.out(
                        "... ERROR: a cycle exists in the dag: "
                        + " -> ".join(cycle)
                        + (f" (closed by the edge declared at {where})" if where else "")
                    )
                    status = DagStatus.CYCLE
                else:
                    state.out("... ERROR: no cycle found; unknown error condition")
                    status = DagStatus.ERROR
            self.begin(EXIT_ERROR, status)

    def abort(self, run: NodeRun, what: str) -> None:
        """ABORT-DAG-ON matched: stop the DAG with the node's RETURN value (else its return value)."""
        state = self.state
        state.out(f"Aborting DAG because we got the ABORT exit value from a {what} (node {run.name})")
        state.aborted = True
        node = run.node
        if node.abort_return is not None:
            code = node.abort_return
            status = DagStatus.ABORT if code != 0 else DagStatus.OK
        else:
            code, status = run.retval, DagStatus.ABORT
        self.begin(code, status)

    def begin(self, exit_code: int, status: DagStatus, removed: bool = False) -> None:
        """DAGMan's ``main_shutdown_rescue``: rescue DAG, remove jobs, kill scripts, run FINAL, exit."""
        state = self.state
        state.dag_status = status
        if removed:
            state.removed = True
        if exit_code != 0 and state.settings.max_rescue > 0:
            write_rescue(state)
        state.in_shutdown = True
        self.doom_all()
        if state.start_final():
            return
        self.finish(exit_code)

    def finish(self, exit_code: int) -> None:
        """The exit code is decided: stop everything still running (the FINAL node too)."""
        self.state.exit_code = exit_code
        self.state.finishing = True
        self.doom_all()

    def doom_all(self) -> None:
        """Remove running jobs and kill running scripts; nodes in flight end as ERROR ("Was STATUS_...")."""
        state = self.state
        final = state.dag.final
        for run in state.runs.values():
            if run.status not in RUNNING:
                continue
            if run.name == final and not state.finishing:
                continue  # the FINAL node runs to the end unless the DAG is removed or stopped
            run.doomed = True
            run.details = f"Was STATUS_{run.status.name}"
            if run.procs:
                for proc in list(run.procs.values()):
                    self.remove_proc(run, proc)
            elif run.script_pid is not None and run.script_pid > 0:
                self.watcher.signal(run.script_pid, signal.SIGKILL)
            else:
                self.doomed_done(run)

    def doomed_done(self, run: NodeRun) -> None:
        """The last process of a doomed node is gone."""
        state = self.state
        # When stopped for a restart, nodes keep their state: the next run re-runs them.
        if not state.stopped and run.status in RUNNING:
            state.set_status(run, NodeStatus.ERROR)
            state.journal.record("failed", n=run.name, r=run.retval, d=run.details)

    def remove_proc(self, run: NodeRun, proc: JobProc) -> None:
        """``condor_rm`` of one job proc: its kill signal now, SIGKILL when the grace time is over."""
        if proc.removing:
            return
        proc.removing = True
        self.watcher.signal(proc.pid, run.kill_sig)
        grace = run.vacate if run.vacate is not None else self.kill_grace
        self.state.add_timer(grace, Timer.SIGKILL, proc.pid)
