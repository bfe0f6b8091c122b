"""Reaping: what the exit of a PRE script, a job proc or a POST script means for its node.

Node semantics follow ``dag.cpp``: the last component run decides the node; SCRIPT DEFER re-runs the
script later; PRE_SKIP skips job and POST; a failed proc removes the rest of its cluster; RETRY re-runs
PRE, job and POST; UNLESS-EXIT and ABORT-DAG-ON stop retries, and ABORT-DAG-ON stops the DAG. An exit of a
node that is being removed (``doomed``) only ends it.
"""

from __future__ import annotations

import signal
import time

from autosplit.backends.local.model import RETURN_JOB_ABORTED, RETURN_JOB_SKIPPED, NodeStatus
from autosplit.backends.local.node_logs import NodeLogs
from autosplit.backends.local.processes import Exit
from autosplit.backends.local.shutdown import Shutdown
from autosplit.backends.local.state import DagState, NodeRun, Timer


class ExitHandler:
    """Applies child-process exits to the node state machine."""

    def __init__(self, state: DagState, logs: NodeLogs, shutdown: Shutdown, defer_factor: float) -> None:
        self.state = state
        self.logs = logs
        self.shutdown = shutdown
        self.defer_factor = defer_factor

    def handle(self, ex: Exit) -> None:
        name, kind = ex.token
        run = self.state.runs[name]
        if kind == "job":
            self.on_job_exit(run, ex)
        else:
            self.on_script_exit(run, kind, ex)

    # ------------------------------------------------------------------------------------ outcomes
    def after_failure(self, run: NodeRun, what: str) -> None:
        """A node component failed: abort the DAG, retry the node, or fail it."""
        state = self.state
        if state.abort_match(run):
            state.fail(run, futile=False)
            self.shutdown.abort(run, what)
        elif state.can_retry(run):
            state.restart(run)
        else:
            state.fail(run)

    def check_abort(self, run: NodeRun, what: str) -> None:
        if self.state.abort_match(run) and not self.state.aborted:
            self.shutdown.abort(run, what)

    # ------------------------------------------------------------------------------------ scripts
    def on_script_exit(self, run: NodeRun, kind: str, ex: Exit) -> None:
        state = self.state
        script = run.node.pre if kind == "PRE" else run.node.post
        assert script is not None
        if kind == "PRE":
            state.pre_running -= 1
        else:
            state.post_running -= 1
        run.script_pid = None
        if ex.pid > 0:
            state.journal.record("reap", pid=ex.pid)
        if script.debug_file:
            self.logs.append_debug(run, script, ex.code, " ".join(script.tokens))
        if run.doomed:
            self.shutdown.doomed_done(run)
            return
        code = ex.code
        if script.defer_status is not None and code == script.defer_status:
            delay = script.defer_time * self.defer_factor
            state.out(f"Deferring {kind} script of node {run.name} for {script.defer_time:g} s (exit {code})")
            state.add_timer(delay, Timer.DEFER, (run.name, kind))
            return
        if kind == "PRE":
            self.pre_done(run, code)
        else:
            self.post_done(run, code, ex.when)

    def pre_done(self, run: NodeRun, code: int) -> None:
        state = self.state
        self.logs.jobstate_event(run, "PRE_SCRIPT_SUCCESS" if code == 0 else "PRE_SCRIPT_FAILURE", "-")
        run.pre_return = code
        if code == 0:
            run.retval = 0
            run.pre_done = True
            state.set_status(run, NodeStatus.READY)
            state.push_ready(run)
            self.check_abort(run, "PRE script")
            return
        node = run.node
        if code < 0:
            run.details = f"PRE Script died on signal {-code}"
        else:
            run.details = f"PRE Script failed with status {code}"
        run.retval = code
        if node.pre_skip is not None and code == node.pre_skip:
            state.out(
                f"PRE_SKIP return value {code} indicates we are done (successfully) with node {run.name}"
            )
            run.retval = 0
            run.details = ""
            run.pre_done = True
            state.terminate(run)
        elif state.settings.always_run_post and node.post is not None:
            run.job_return = RETURN_JOB_SKIPPED
            run.job_failed = True
            state.queue_post(run)
            return
        elif state.abort_match(run):
            state.fail(run, futile=False)
        elif state.can_retry(run):
            state.restart(run)
            return
        else:
            state.fail(run)
        self.check_abort(run, "PRE script")

    def post_done(self, run: NodeRun, code: int, when: float) -> None:
        cid = f"{run.cluster}.0" if run.cluster is not None else "-"
        if run.cluster is not None:
            self.logs.events.post_script([self.logs.nodes_log], run.cluster, when, run.name, code)
        self.logs.jobstate_event(run, "POST_SCRIPT_TERMINATED", cid)
        self.logs.jobstate_event(run, "POST_SCRIPT_SUCCESS" if code == 0 else "POST_SCRIPT_FAILURE", cid)
        job_ret = run.retval
        run.retval = code
        if code == 0:
            run.details = ""
            self.state.terminate(run)
            self.check_abort(run, "POST script")
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
        self.after_failure(run, "POST script")

    # ------------------------------------------------------------------------------------ jobs
    def on_job_exit(self, run: NodeRun, ex: Exit) -> None:
        state, logs = self.state, self.logs
        proc = run.procs.pop(ex.pid)
        state.stats["job_seconds"] += time.monotonic() - proc.started
        state.journal.record("reap", pid=ex.pid)
        assert run.cluster is not None
        cid = f"{run.cluster}.{proc.index}"
        paths = logs.log_paths(run)
        # A proc we signalled may have exited on its own before the signal arrived: then it terminated.
        killed_by_us = proc.removing and ex.code in (-run.kill_sig, -signal.SIGKILL)
        if killed_by_us:
            logs.events.evicted(paths, run.cluster, proc.index, ex.when)
            logs.jobstate_event(run, "JOB_EVICTED", cid)
            reason = "via condor_rm (by autosplit local executor)"
            logs.events.aborted(paths, run.cluster, proc.index, ex.when, reason)
            logs.jobstate_event(run, "JOB_ABORTED", cid)
            run.aborted_procs += 1
            run.proc_results[proc.index] = None
            if not run.job_failed and not run.doomed:
                run.job_failed = True
                run.retval = run.job_return = RETURN_JOB_ABORTED
                run.details = f"HTCondor reported ULOG_JOB_ABORTED event for job proc ({cid}.000)"
        else:
            logs.events.terminated(paths, run.cluster, proc.index, ex.when, ex.code, ex.user, ex.system)
            logs.jobstate_event(run, "JOB_TERMINATED", cid)
            state.out(f"Event: ULOG_JOB_TERMINATED for HTCondor Node {run.name} ({cid}.0) exit {ex.code}")
            run.proc_results[proc.index] = ex.code
            if ex.code != 0 and not run.job_failed:
                run.job_failed = True
                run.retval = run.job_return = ex.code
                if ex.code > 0:
                    run.details = f"Job proc ({cid}.000) failed with status {ex.code}"
                else:
                    run.details = f"Job proc ({cid}.000) failed with signal {-ex.code}"
                for other in run.procs.values():  # failure tolerance 0: remove the rest of the cluster
                    self.shutdown.remove_proc(run, other)
        if run.procs:
            return
        if run.doomed:
            self.shutdown.doomed_done(run)
            return
        self.job_finished(run)

    def job_finished(self, run: NodeRun) -> None:
        """All procs of the node's job left the queue."""
        state = self.state
        self.logs.jobstate_event(run, "JOB_FAILURE" if run.job_failed else "JOB_SUCCESS", str(run.retval))
        state.journal.record(
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
            state.queue_post(run)
            return
        if run.job_failed:
            self.after_failure(run, "job")
            return
        state.terminate(run)
        self.check_abort(run, "job")
