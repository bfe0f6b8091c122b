"""A small writer of DAGMan DAG files.

Node names are restricted to letters, digits, ``-`` and ``_`` (DAGMan reserves ``+`` and ``.``, and script
arguments are split on blanks with no quoting, so names and arguments must not contain whitespace).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from autosplit._io import atomic_write_text
from autosplit.errors import AutosplitError

NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
RESERVED = {"parent", "child", "all_nodes"}


class DagBuildError(AutosplitError, ValueError):
    """A DAG cannot be written as asked (bad node name, argument with blanks, unknown parent)."""


def check_node_name(name: str) -> str:
    """Return ``name`` if it is a valid node name, else raise :class:`DagBuildError`."""
    if not NODE_NAME.match(name) or name.lower() in RESERVED:
        raise DagBuildError(f"node name {name!r}: use letters, digits, '-' and '_' only (and not a keyword)")
    return name


_BLANK = re.compile(r"\s")


def _check_argv(argv: list[str], node: str) -> list[str]:
    for arg in argv:
        if not arg or _BLANK.search(arg):
            raise DagBuildError(
                f"node {node}: script argument {arg!r} is empty or contains blanks; DAGMan splits script "
                "arguments on blanks without quoting"
            )
    return argv


@dataclass
class DagNode:
    """One node: a job (submit file), a NOOP, or an external sub-DAG, with its scripts and policies."""

    name: str
    submit: str | None = None
    subdag: str | None = None
    noop: bool = False
    pre: list[str] | None = None
    post: list[str] | None = None
    post_defer: tuple[int, int] | None = None
    pre_defer: tuple[int, int] | None = None
    retries: int = 0
    retry_unless_exit: int | None = None
    pre_skip: int | None = None
    abort_on: tuple[int, int] | None = None
    priority: int | None = None
    category: str | None = None
    script_log: str | None = None  # SCRIPT DEBUG <file> STDERR: the scripts' stderr, appended there
    vars: dict[str, str] = field(default_factory=dict)
    parents: list[str] = field(default_factory=list)

    def lines(self, final: bool = False) -> list[str]:
        name = check_node_name(self.name)
        out = []
        if self.subdag is not None:
            out.append(f"SUBDAG EXTERNAL {name} {self.subdag}" + (" NOOP" if self.noop else ""))
        else:
            keyword = "FINAL" if final else "JOB"
            out.append(f"{keyword} {name} {self.submit or 'noop.sub'}" + (" NOOP" if self.noop else ""))
        for key, value in self.vars.items():
            escaped = value.replace("\\", "\\\\").replace('"', '\\"')
            out.append(f'VARS {name} {key}="{escaped}"')
        for kind, argv, defer in (("PRE", self.pre, self.pre_defer), ("POST", self.post, self.post_defer)):
            if argv:
                prefix = f"SCRIPT DEFER {defer[0]} {defer[1]} " if defer else "SCRIPT "
                if self.script_log:
                    prefix += f"DEBUG {_check_argv([self.script_log], name)[0]} STDERR "
                out.append(f"{prefix}{kind} {name} {' '.join(_check_argv(argv, name))}")
        if self.retries and not final:
            unless = f" UNLESS-EXIT {self.retry_unless_exit}" if self.retry_unless_exit is not None else ""
            out.append(f"RETRY {name} {self.retries}{unless}")
        if self.pre_skip is not None:
            out.append(f"PRE_SKIP {name} {self.pre_skip}")
        if self.abort_on is not None and not final:
            out.append(f"ABORT-DAG-ON {name} {self.abort_on[0]} RETURN {self.abort_on[1]}")
        if self.priority is not None and not final:
            out.append(f"PRIORITY {name} {self.priority}")
        if self.category and not final:
            out.append(f"CATEGORY {name} {self.category}")
        return out


@dataclass
class DagFile:
    """A DAG: nodes, edges (from each node's ``parents``), an optional FINAL node, and DAG-wide settings."""

    nodes: list[DagNode] = field(default_factory=list)
    final: DagNode | None = None
    node_status_file: str | None = None
    node_status_interval: int = 5
    jobstate_log: str | None = None
    max_jobs: dict[str, int] = field(default_factory=dict)
    config_file: str | None = None
    comment: str = ""

    def add(self, node: DagNode) -> DagNode:
        self.nodes.append(node)
        return node

    def render(self) -> str:
        names = {check_node_name(n.name) for n in self.nodes}
        if len(names) != len(self.nodes):
            raise DagBuildError("two nodes share a name")
        lines = [f"# {line}" for line in self.comment.splitlines()] if self.comment else []
        if self.config_file:
            lines.append(f"CONFIG {self.config_file}")
        if self.node_status_file:
            lines.append(
                f"NODE_STATUS_FILE {self.node_status_file} {self.node_status_interval} ALWAYS-UPDATE"
            )
        if self.jobstate_log:
            lines.append(f"JOBSTATE_LOG {self.jobstate_log}")
        for category, limit in self.max_jobs.items():
            lines.append(f"MAXJOBS {category} {limit}")
        for node in self.nodes:
            lines.extend(node.lines())
        for node in self.nodes:
            unknown = [p for p in node.parents if p not in names]
            if unknown:
                raise DagBuildError(f"node {node.name}: unknown parent(s) {', '.join(unknown)}")
            if node.parents:
                # One PARENT line per child keeps lines short for stages with thousands of jobs.
                for start in range(0, len(node.parents), 500):
                    chunk = " ".join(node.parents[start : start + 500])
                    lines.append(f"PARENT {chunk} CHILD {node.name}")
        if self.final is not None:
            if self.final.name in names:
                raise DagBuildError(f"FINAL node {self.final.name} clashes with another node")
            lines.extend(self.final.lines(final=True))
        return "\n".join(lines) + "\n"

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write atomically (temporary file + rename), so DAGMan never reads half a DAG."""
        return atomic_write_text(path, self.render())
