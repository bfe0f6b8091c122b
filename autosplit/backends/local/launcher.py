"""Launching: PRE/POST scripts (command line with DAGMan's ``$`` macros) and node jobs (submit macros and
VARS, the submit description turned into processes, SUBDAG command lines, NOOP jobs, submit failures).

What happens when they exit is in :mod:`~autosplit.backends.local.exits`; which of them may start now is
decided by :mod:`~autosplit.backends.local.throttle`.
"""

from __future__ import annotations

import collections
import errno
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from autosplit.backends.local.errors import SubmitError
from autosplit.backends.local.exits import ExitHandler
from autosplit.backends.local.launch import spawn_job_proc, subdag_spec, submit_text
from autosplit.backends.local.model import RETURN_SUBMIT_FAILED, NodeStatus, Script
from autosplit.backends.local.node_logs import NodeLogs
from autosplit.backends.local.options import RunOptions
from autosplit.backends.local.processes import Exit, ProcessWatcher
from autosplit.backends.local.state import DagState, JobProc, NodeRun, Timer
from autosplit.backends.local.submit import JobSpec, build_job

_PERMANENT_SPAWN_ERRORS = {
    errno.ENOENT,
    errno.EACCES,
    errno.ENOEXEC,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.EPERM,
}


class Launcher:
    """Starts scripts and jobs. ``pending_exits`` holds exits of scripts that could not be started (DAGMan
    counts those as exit 1); the loop applies them with the next batch of exits."""

    def __init__(
        self, state: DagState, logs: NodeLogs, watcher: ProcessWatcher, exits: ExitHandler, opts: RunOptions
    ) -> None:
        self.state = state
        self.logs = logs
        self.watcher = watcher
        self.exits = exits
        self.opts = opts
        self.env = dict(os.environ)
        self.env.update(state.dag.env_set)
        self.next_cluster = 1
        self.pending_exits: list[Exit] = []

    # ------------------------------------------------------------------------------------ scripts
    def script_argv(self, run: NodeRun, script: Script) -> list[str]:
        state = self.state
        is_pre = script.kind == "PRE"
        n_total = len(state.runs)
        values = {
            "$NODE": run.name,
            "$JOB": run.name,
            "$RETRY": str(run.retries),
            "$MAX_RETRIES": str(run.retry_max),
            "$DAG_STATUS": str(int(state.dag_status)),
            "$FAILED_COUNT": str(state.count[NodeStatus.ERROR]),
            "$FUTILE_COUNT": str(state.count[NodeStatus.FUTILE]),
            "$DONE_COUNT": str(state.count[NodeStatus.DONE]),
            "$QUEUED_COUNT": str(state.count[NodeStatus.SUBMITTED]),
            "$NODE_COUNT": str(n_total),
            "$DAGID": str(state.dag_id),
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
                state.out(
                    f"Warning: unrecognized or unavailable macro {token} in node {run.name} {script.kind} script"
                )
            argv.append(token if value is None else value)
        return argv

    def start_script(self, run: NodeRun, script: Script) -> None:
        state = self.state
        argv = self.script_argv(run, script)
        cwd = state.node_dir(run)
        exe = Path(argv[0])
        exe_path = str(exe if exe.is_absolute() else cwd / exe)
        kind = script.kind
        if kind == "PRE":
            state.pre_running += 1
            self.logs.jobstate_event(run, "PRE_SCRIPT_STARTED", "-")
        else:
            state.post_running += 1
            cid = f"{run.cluster}.0" if run.cluster is not None else "-"
            self.logs.jobstate_event(run, "POST_SCRIPT_STARTED", cid)
        out: Any = subprocess.DEVNULL
        err: Any = subprocess.DEVNULL
        capture = None
        try:
            if script.debug_file:
                # Script output is discarded unless SCRIPT DEBUG asks for it (then appended after exit).
                capture = open(self.logs.debug_capture(run, kind), "w")  # noqa: SIM115
                out = capture if script.debug_type in ("STDOUT", "ALL") else subprocess.DEVNULL
                err = capture if script.debug_type in ("STDERR", "ALL") else subprocess.DEVNULL
            proc = self.watcher.spawn(
                (run.name, kind), argv, cwd=cwd, env=self.env, executable=exe_path, stdout=out, stderr=err
            )
        except OSError as exc:
            # DAGMan treats a script that cannot be started as having exited with status 1.
            state.out(
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
        state.stats["scripts_started"] += 1
        state.journal.record("spawn", n=run.name, w=kind.lower(), pid=proc.pid, t=time.time())

    # ------------------------------------------------------------------------------------ jobs
    def submit(self, run: NodeRun) -> bool:
        """Submit the node's job; False if the submission failed (node already handled)."""
        state, logs = self.state, self.logs
        node = run.node
        now = time.time()
        if node.noop:
            cluster = self.next_cluster_id()
            run.cluster = cluster
            run.proc_results = [0]
            logs.events.submit([logs.nodes_log], cluster, 0, now, run.name)
            logs.events.terminated([logs.nodes_log], cluster, 0, now, 0)
            logs.jobstate_event(run, "SUBMIT", f"{cluster}.0")
            logs.jobstate_event(run, "JOB_TERMINATED", f"{cluster}.0")
            run.retval = run.job_return = 0
            state.set_status(run, NodeStatus.SUBMITTED)
            self.exits.job_finished(run)
            return True
        run.submit_attempts += 1
        try:
            spec = self.build_spec(run)
        except SubmitError as exc:
            return self.submit_failed(run, str(exc), permanent=True)
        procs: list[tuple[int, subprocess.Popen]] = []
        try:
            for proc_spec in spec.procs:
                procs.append((proc_spec.proc, spawn_job_proc(self.watcher, (run.name, "job"), proc_spec)))
        except OSError as exc:
            for _, p in procs:
                self.watcher.signal(p.pid, signal.SIGKILL)
            permanent = exc.errno in _PERMANENT_SPAWN_ERRORS
            return self.submit_failed(run, f"cannot start job: {exc.strerror}", permanent=permanent)
        run.cluster = spec.cluster
        run.kill_sig, run.vacate = spec.kill_sig, spec.vacate_time
        run.log_paths = [spec.log] if spec.log is not None else []
        if spec.log is not None and spec.log_xml:
            logs.events.xml.add(spec.log)
        if spec.tag != "-" or run.tag is None:
            run.tag = spec.tag
        run.proc_results = [None] * len(spec.procs)
        run.job_failed = False
        run.aborted_procs = 0
        run.job_return = run.retval = 0
        started = time.monotonic()
        state.stats["jobs_started"] += len(procs)
        for index, p in procs:
            run.procs[p.pid] = JobProc(index, p.pid, started)
            state.journal.record("spawn", n=run.name, w="job", pid=p.pid, t=now, c=spec.cluster)
        paths = logs.log_paths(run)
        for index, _ in procs:
            logs.events.submit(paths, spec.cluster, index, now, run.name)
            logs.jobstate_event(run, "SUBMIT", f"{spec.cluster}.{index}")
        for index, _ in procs:
            state.out(f"Event: ULOG_SUBMIT for HTCondor Node {run.name} ({spec.cluster}.{index}.0)")
        for index, _ in procs:
            logs.events.execute(paths, spec.cluster, index, now)
            logs.jobstate_event(run, "EXECUTE", f"{spec.cluster}.{index}")
            state.out(f"Event: ULOG_EXECUTE for HTCondor Node {run.name} ({spec.cluster}.{index}.0)")
        state.set_status(run, NodeStatus.SUBMITTED)
        return True

    def next_cluster_id(self) -> int:
        cluster = self.next_cluster
        self.next_cluster += 1
        return cluster

    def macros(self, run: NodeRun) -> tuple[dict[str, str], dict[str, str]]:
        """DAGMan's injected submit macros plus the node's VARS (prepend, append)."""
        state = self.state
        node = run.node
        parents = ",".join(node.parents)
        prepend = {
            "JOB": node.name,
            "RETRY": str(run.retries),
            "DAG_STATUS": str(int(state.dag_status)),
            "FAILED_COUNT": str(state.count[NodeStatus.ERROR]),
            "DAG_PARENT_NAMES": parents,
            "DAGManJobId": str(state.dag_id),
            "dag_node_name": node.name,
        }
        append: dict[str, str] = {}
        for var in node.vars:
            as_prepend = var.prepend if var.prepend is not None else not state.settings.append_vars
            (prepend if as_prepend else append)[var.key] = var.value
            (append if as_prepend else prepend).pop(var.key, None)
        return prepend, append

    def build_spec(self, run: NodeRun) -> JobSpec:
        state = self.state
        node = run.node
        cwd = state.node_dir(run)
        if node.is_subdag:
            return self.subdag_spec(run, cwd)
        text = submit_text(node, cwd, state.dag.descriptions)
        assert text is not None
        origin = f"{node.submit or 'inline description'} (node {node.name})"
        prepend, append = self.macros(run)
        parents = ",".join(node.parents)
        dag_attrs = {
            "DAGNodeName": _quote(node.name),
            "DAGParentNodeNames": _quote(parents),
            "DAGManJobId": str(state.dag_id),
        }
        return build_job(
            text,
            origin,
            submit_dir=cwd,
            cluster=self.next_cluster_id(),
            prepend=prepend,
            append=append,
            base_env=self.env,
            dag_attributes=dag_attrs,
            prohibit_multi=state.settings.prohibit_multi,
            inline=node.inline_submit is not None or node.submit in state.dag.descriptions,
        )

    def subdag_spec(self, run: NodeRun, cwd: Path) -> JobSpec:
        o = self.opts
        settings = self.state.settings
        options = ["--poll-interval", repr(o.poll_interval), "--kill-grace", repr(o.kill_grace)]
        options += [
            "--defer-factor",
            repr(o.defer_factor),
            "--submit-retry-delay",
            repr(o.submit_retry_delay),
        ]
        options += ["--priority", str(run.priority)]
        options += ["--no-auto-rescue"] if not settings.auto_rescue else []
        options += ["--cycle-check" if settings.cycle_detect else "--no-cycle-check"]
        return subdag_spec(run.node.submit, cwd, self.next_cluster_id(), self.env, options, o.kill_grace)

    def submit_failed(self, run: NodeRun, message: str, permanent: bool) -> bool:
        state = self.state
        state.out(f"ERROR: submit attempt {run.submit_attempts} for node {run.name} failed: {message}")
        self.logs.jobstate_event(run, "SUBMIT_FAILURE", "-")
        if not permanent and run.submit_attempts < state.settings.max_submit_attempts:
            delay = self.opts.submit_retry_delay * 2 ** (run.submit_attempts - 1)
            state.add_timer(delay, Timer.RESUBMIT, run.name)
            return False
        run.poisoned = True
        run.details = f"Job submit failed: {message}"
        run.retval = run.job_return = RETURN_SUBMIT_FAILED
        run.job_failed = True
        run.cluster = None
        run.proc_results = []
        if run.node.post is not None:
            state.queue_post(run)
        else:
            state.fail(run)
            self.exits.check_abort(run, "job")
        return False


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
