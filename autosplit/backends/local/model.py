"""The parsed form of a DAG: nodes, scripts, edges and DAG-wide settings (no run-time state here).

Status and exit codes use DAGMan's numbers (``node.h``, ``dagman_main.h``, ``dagman_utils.h``) because they
appear in files other tools read: the node status file, ``$DAG_STATUS``, the executor's exit status.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path


class NodeStatus(enum.IntEnum):
    """Node states as DAGMan numbers them (``NodeStatus`` in the node status file)."""

    NOT_READY = 0
    READY = 1
    PRERUN = 2
    SUBMITTED = 3
    POSTRUN = 4
    DONE = 5
    ERROR = 6
    FUTILE = 7


class DagStatus(enum.IntEnum):
    """DAG-wide status (``$DAG_STATUS``, ``DAG_Status``): why the DAG stopped, 0 while all is well."""

    OK = 0
    ERROR = 1
    NODE_FAILED = 2
    ABORT = 3
    RM = 4
    CYCLE = 5
    HALTED = 6


EXIT_OKAY = 0
EXIT_ERROR = 1
EXIT_ABORT = 2  # removed (condor_rm), or a log/setup problem
EXIT_RESTART = 3  # stopped (held / interrupted); run again to recover

# $RETURN values DAGMan gives a POST script when no job exit code exists (dag.h).
RETURN_SUBMIT_FAILED = -1001
RETURN_JOB_ABORTED = -1002
RETURN_JOB_SKIPPED = -1004


@dataclass(frozen=True)
class Location:
    """Where a command came from (for error messages)."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass
class Script:
    """A PRE, POST or HOLD script: the raw command tokens (split on blanks, macros not yet replaced)."""

    kind: str  # "PRE" | "POST" | "HOLD"
    tokens: list[str]
    defer_status: int | None = None
    defer_time: float = 0.0  # seconds
    debug_file: str | None = None
    debug_type: str | None = None  # "STDOUT" | "STDERR" | "ALL"
    location: Location | None = None


@dataclass
class VarDef:
    """One ``VARS`` assignment; ``prepend`` None means the DAG default (prepend unless configured)."""

    key: str
    value: str
    prepend: bool | None = None


@dataclass
class Node:
    """One DAG node as declared: what to run and how to react to its results."""

    name: str
    submit: str = ""  # submit file path, SUBMIT-DESCRIPTION name, or sub-DAG file (subdag nodes)
    inline_submit: str | None = None  # text of an inline description (JOB A { ... })
    is_subdag: bool = False
    is_final: bool = False
    dir: str = ""  # DIR, relative to the DAG's working directory ("" = none)
    noop: bool = False
    done: bool = False
    pre: Script | None = None
    post: Script | None = None
    hold: Script | None = None
    retry: int = 0
    unless_exit: int | None = None
    abort_on: int | None = None
    abort_return: int | None = None
    pre_skip: int | None = None
    vars: list[VarDef] = field(default_factory=list)
    priority: int = 0
    category: str | None = None
    parents: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    location: Location | None = None


@dataclass
class StatusFileSpec:
    """``NODE_STATUS_FILE file [min_interval] [ALWAYS-UPDATE]``."""

    path: str
    min_interval: float = 60.0  # seconds
    always_update: bool = False


@dataclass
class Dag:
    """A parsed DAG file (splices already lifted into it, INCLUDEs expanded)."""

    path: Path
    workdir: Path
    nodes: dict[str, Node] = field(default_factory=dict)  # declaration order
    final: str | None = None
    status_file: StatusFileSpec | None = None
    jobstate_log: str | None = None
    dot_file: str | None = None
    dot_update: bool = False  # DOT ... UPDATE: rewrite the graph as node states change
    config_file: str | None = None
    config: dict[str, str] = field(default_factory=dict)
    maxjobs: dict[str, int] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)  # SUBMIT-DESCRIPTION name -> text
    env_set: dict[str, str] = field(default_factory=dict)
    reject: Location | None = None
    warnings: list[str] = field(default_factory=list)
    # (parent, child) -> where the edge was declared (PARENT/CHILD or CONNECT line), in declaration order
    edges: dict[tuple[str, str], Location] = field(default_factory=dict)

    def cycle_location(self, cycle: list[str]) -> Location | None:
        """Where the edge that closes ``cycle`` (node names, first == last) was declared: of the cycle's
        edges, the one declared last (the line that turned the graph cyclic)."""
        order = {edge: index for index, edge in enumerate(self.edges)}
        edges = [(a, b) for a, b in zip(cycle, cycle[1:], strict=False) if (a, b) in order]
        return self.edges[max(edges, key=order.__getitem__)] if edges else None

    def categories(self) -> dict[str, tuple[int, int | None]]:
        """Category name -> (number of member nodes, MAXJOBS limit or None)."""
        counts: dict[str, int] = {}
        for node in self.nodes.values():
            if node.category is not None:
                counts[node.category] = counts.get(node.category, 0) + 1
        names = list(counts) + [name for name in self.maxjobs if name not in counts]
        return {name: (counts.get(name, 0), self.maxjobs.get(name)) for name in names}
