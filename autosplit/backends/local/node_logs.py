"""The logs written about nodes while they run: job events in ``<dag>.nodes.log`` (and each job's own
``log``), the JOBSTATE_LOG with each node's tag, and the output of ``SCRIPT DEBUG`` scripts.

The writers buffer; the loop flushes them once per cycle (:meth:`NodeLogs.flush`).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from autosplit.backends.local.launch import submit_text
from autosplit.backends.local.logs import EventLogWriter, JobstateLog
from autosplit.backends.local.model import Script
from autosplit.backends.local.state import DagState, NodeRun


class NodeLogs:
    """``events`` writes job event logs; ``jobstate`` is the JOBSTATE_LOG (None unless the DAG asks for one,
    opened when the run starts)."""

    def __init__(self, state: DagState) -> None:
        self.state = state
        base = state.dag_path
        self.nodes_log = base.with_name(base.name + ".nodes.log")
        self.events = EventLogWriter()
        self.jobstate: JobstateLog | None = None

    def log_paths(self, run: NodeRun) -> list[Path]:
        """Event logs of the node's job: the DAG's nodes.log, and the job's own ``log`` if it has one."""
        return [self.nodes_log] + [p for p in run.log_paths if p != self.nodes_log]

    # ------------------------------------------------------------------------------------ jobstate log
    def jobstate_event(self, run: NodeRun, event: str, condor_id: str, when: float | None = None) -> None:
        if self.jobstate is None:
            return
        if run.seq is None:
            run.seq = self.jobstate.take_seq()
        self.jobstate.write(run.name, event, condor_id, self.tag(run), run.seq, when)

    def tag(self, run: NodeRun) -> str:
        """The jobstate tag (from ``+job_tag_name`` / ``+pegasus_site`` in the submit description)."""
        if run.tag is not None:
            return run.tag
        run.tag = "-"
        if run.node.noop or run.node.is_subdag:
            return run.tag
        text = submit_text(run.node, self.state.node_dir(run), self.state.dag.descriptions, quiet=True)
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

    # ------------------------------------------------------------------------------------ SCRIPT DEBUG
    def debug_capture(self, run: NodeRun, kind: str) -> str:
        """Where a DEBUG script's output is captured while it runs (appended to its debug file after)."""
        dag_path = self.state.dag_path
        return str(dag_path.with_name(f".{dag_path.name}.{run.name}.{kind}.debug"))

    def append_debug(self, run: NodeRun, script: Script, status: int, argv_text: str) -> None:
        tmp = Path(self.debug_capture(run, script.kind))
        try:
            output = tmp.read_text(errors="replace")
            tmp.unlink()
        except OSError:
            output = ""
        path = self.state.node_dir(run) / script.debug_file  # type: ignore[operator]
        with open(path, "a") as fh:
            fh.write(
                f"*** Node={run.name} Type={script.kind} Status={status} Completion={int(time.time())} "
                f"Cmd='{argv_text}'\n{output}"
            )

    # ------------------------------------------------------------------------------------ buffers
    def flush(self) -> None:
        self.events.flush()
        if self.jobstate is not None:
            self.jobstate.flush()

    def close(self) -> None:
        self.events.close()
        if self.jobstate is not None:
            self.jobstate.close()
