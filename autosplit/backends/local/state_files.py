"""Files written from the DAG's state for people and tools: the NODE_STATUS_FILE, the DOT graph, the rescue
DAG and ``<dag>.metrics``.

The formats are in :mod:`~autosplit.backends.local.statusfile` and :mod:`~autosplit.backends.local.rescue`;
this module only decides what goes into them, and (for the status file) when it is rewritten.
"""

from __future__ import annotations

import contextlib
import json
import time

from autosplit.backends.local import rescue as rescue_mod
from autosplit.backends.local.model import DagStatus, NodeStatus
from autosplit.backends.local.state import DagState
from autosplit.backends.local.statusfile import StatusRow, render_status, write_atomically

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


class StatusFileWriter:
    """DAGMan's NODE_STATUS_FILE: rewritten at most every ``max(min_interval, poll_interval)`` seconds, and
    only when a node changed state (unless ALWAYS-UPDATE)."""

    def __init__(self, state: DagState, poll_interval: float) -> None:
        self.state = state
        self.poll_interval = poll_interval
        self.last_write = -1e18

    def write(self, force: bool = False, final: bool = False, held: bool = False) -> None:
        state = self.state
        spec = state.dag.status_file
        if spec is None:
            return
        now = time.monotonic()
        if not force:
            if not (state.status_dirty or spec.always_update):
                return
            if now - self.last_write < max(spec.min_interval, self.poll_interval):
                return
        dag_state, note, mark = self._note(held)
        c = state.count
        counts = {
            "NodesTotal": len(state.runs),
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
        for run in state.runs.values():
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
        text = render_status([str(state.dag.path)], int(dag_state), note, counts, rows, next_update)
        if state.dag.dot_file and state.dag.dot_update:
            write_dot(state)
        try:
            write_atomically(state.workdir_path(spec.path), text)
        except OSError as exc:
            state.out(f"Warning: can't write node status file {spec.path}: {exc}")
        self.last_write = now
        state.status_dirty = False

    def _note(self, held: bool) -> tuple[NodeStatus, str, bool]:
        """The DAG's own status line: (status, note, whether nodes still running are shown as failed)."""
        state = self.state
        if state.done_success(True):
            return NodeStatus.DONE, "success", True
        if state.removed and not state.final_started:
            return NodeStatus.ERROR, "removed", True
        if state.done_failed(True):
            return NodeStatus.ERROR, "aborted" if state.dag_status == DagStatus.ABORT else "failed", True
        if state.done_cycle(True):
            return NodeStatus.ERROR, "cycle", False
        if held:
            return NodeStatus.SUBMITTED, "held", False
        if state.removed:
            return NodeStatus.SUBMITTED, "removed", False
        if state.aborted:
            return NodeStatus.SUBMITTED, "aborted", False
        return NodeStatus.SUBMITTED, "", False


def write_dot(state: DagState) -> None:
    """Graphviz view of the DAG, each node labelled ``name (state)`` as DAGMan's DOT file."""
    dag = state.dag
    lines = ["digraph DAG {", f'    label="DAG {dag.path.name}";']
    for run in state.runs.values():
        lines.append(f'    "{run.name}" [shape=ellipse label="{run.name} ({_DOT_STATE[run.status]})"];')
    for run in state.runs.values():
        lines.extend(f'    "{run.name}" -> "{child}";' for child in run.node.children)
    lines.append("}")
    with contextlib.suppress(OSError):
        state.workdir_path(dag.dot_file).write_text("\n".join(lines) + "\n")  # type: ignore[arg-type]


def write_rescue(state: DagState) -> None:
    """Write the rescue DAG (DONE lines, and RETRY lines unless retries are reset) next to the DAG file."""
    # One rescue file per run: a second write (after the FINAL node) overwrites the first.
    max_rescue = state.settings.max_rescue
    if state.rescue_written is not None:
        path = state.rescue_written
    else:
        number = min(rescue_mod.last_rescue_number(state.dag_path, max_rescue) + 1, max_rescue)
        path = rescue_mod.rescue_path(state.dag_path, number)
    runs = state.runs.values()
    final = state.dag.final
    done = [r.name for r in runs if r.status == NodeStatus.DONE and r.name != final]
    failed = [r.name for r in runs if r.status == NodeStatus.ERROR]
    retry_lines = None
    if not state.settings.reset_retries:
        retry_lines = [
            (r.name, r.retries, r.retry_max, r.unless_exit)
            for r in runs
            if r.retry_max > 0 and r.status != NodeStatus.DONE and r.name != final
        ]
    text = rescue_mod.render_rescue(
        state.dag.path.name,
        len(state.runs),
        state.count[NodeStatus.DONE],
        failed,
        state.count[NodeStatus.ERROR],
        done,
        retry_lines,
    )
    rescue_mod.write_rescue(path, text)
    state.rescue_written = path
    state.out(f"Writing Rescue DAG to {path}...")


def write_metrics(state: DagState, code: int, duration: float) -> None:
    """``<dag>.metrics``: DAGMan's end-of-run summary (JSON)."""
    c = state.count
    metrics = {
        "client": "autosplit local executor",
        "exitcode": code,
        "DagStatus": int(state.dag_status),
        "rescue_dag_number": state.rescue_number,
        "total_nodes": len(state.runs),
        "nodes_done": c[NodeStatus.DONE],
        "nodes_failed": c[NodeStatus.ERROR],
        "nodes_futile": c[NodeStatus.FUTILE],
        "duration": round(duration, 3),
        "recovered": state.recovered,
    }
    with contextlib.suppress(OSError):
        write_atomically(
            state.dag_path.with_name(state.dag_path.name + ".metrics"), json.dumps(metrics, indent=2) + "\n"
        )
