"""DAG file parser: DAGMan's language, two passes, every unsupported keyword refused with file and line.

A file is read into logical lines (:mod:`~autosplit.backends.local.dag_lines`: trimming, comments,
continuation lines, ``INCLUDE``, inline submit descriptions). Pass 1 applies the node-defining commands
(``JOB``, ``FINAL``, ``SUBDAG``, ``SPLICE``, ``SUBMIT-DESCRIPTION``, ``NODE_STATUS_FILE``, ``JOBSTATE_LOG``,
``DOT``, ``REJECT``); pass 2 the rest, so ``PARENT`` or ``VARS ALL_NODES`` may come before the nodes they
name. What each command means is in :mod:`~autosplit.backends.local.dag_commands`.

Splices are parsed as separate scopes and lifted into the parent with ``<splice>+<node>`` names. Submit
descriptions and sub-DAG files are *not* read here: they may be written at run time by the node's PRE
script.
"""

from __future__ import annotations

import os
from pathlib import Path

from autosplit._io import InputProblem, check_regular_file
from autosplit.backends.local.dag_commands import PASS1, PASS2, UNSUPPORTED, Scope, ScopeCommands, Splice
from autosplit.backends.local.dag_lines import Line, normalize_keyword, parse_vars, read_lines
from autosplit.backends.local.errors import DagParseError
from autosplit.backends.local.model import Dag

# parse_vars is re-exported: callers import it from here.
__all__ = ["find_cycle", "parse_dag", "parse_vars"]


def parse_dag(path: str | os.PathLike[str], workdir: str | os.PathLike[str] | None = None) -> Dag:
    """Parse a DAG file (with its splices, includes and CONFIG file) into a :class:`Dag`.

    ``workdir`` is the directory relative paths in the DAG are resolved against (DAGMan's working
    directory); default: the DAG file's own directory. Raises :class:`DagParseError` naming the file, line
    and keyword for anything malformed or unsupported.
    """
    dag_path = Path(path)
    try:
        check_regular_file(dag_path, "DAG")
    except InputProblem as problem:
        raise DagParseError(
            str(path), 0, "DAG", "no such DAG file" if problem.missing else problem.reason
        ) from None
    wd = Path(workdir) if workdir is not None else dag_path.resolve().parent
    dag = Dag(path=dag_path, workdir=wd.resolve())
    parser = _FileParser(dag, dag_path, prefix="", dir_prefix="", depth=0, stack=())
    scope = parser.parse()
    dag.nodes = scope.nodes
    dag.final = scope.final
    dag.reject = scope.reject
    dag.warnings.extend(scope.warnings)
    dag.maxjobs = {name: limit for name, (_, _, limit) in scope.maxjobs.items()}
    dag.descriptions = {name: text for name, (_, text) in scope.descriptions.items()}
    return dag


def find_cycle(dag: Dag) -> list[str] | None:
    """A list of node names forming a cycle (first == last), or None if the graph is acyclic."""
    color: dict[str, int] = {}
    for root in dag.nodes:
        if root in color:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            name, index = stack.pop()
            if index == 0:
                color[name] = 1
                path.append(name)
            children = dag.nodes[name].children
            if index < len(children):
                stack.append((name, index + 1))
                child = children[index]
                state = color.get(child, 0)
                if state == 1:
                    return path[path.index(child) :] + [child]
                if state == 0:
                    stack.append((child, 0))
            else:
                color[name] = 2
                path.pop()
    return None


class _FileParser(ScopeCommands):
    """Parses one file (top-level DAG or splice) in two passes."""

    def __init__(
        self, dag: Dag, path: Path, prefix: str, dir_prefix: str, depth: int, stack: tuple[Path, ...]
    ) -> None:
        super().__init__(dag, prefix, dir_prefix, depth)
        self.path = path
        self.display = str(path)
        self.stack = stack + (path.resolve(),)

    # ----------------------------------------------------------------------------------------- passes
    def parse(self) -> Scope:
        lines = read_lines(self.path, self.stack, None, self._resolve)
        for line in lines:
            keyword = normalize_keyword(line.text.split()[0])
            if keyword in UNSUPPORTED:
                raise DagParseError(line.loc.file, line.loc.line, line.text.split()[0], UNSUPPORTED[keyword])
            if keyword not in PASS1 and keyword not in PASS2:
                raise DagParseError(
                    line.loc.file, line.loc.line, line.text.split()[0], "unknown or unsupported DAG keyword"
                )
            if keyword in PASS1:
                getattr(self, "_cmd_" + keyword.lower())(line)
        for line in lines:
            keyword = normalize_keyword(line.text.split()[0])
            if keyword in PASS2:
                getattr(self, "_cmd_" + keyword.lower())(line)
        return self.scope

    # ----------------------------------------------------------------------------------------- splices
    def _cmd_splice(self, line: Line) -> None:
        words = line.text.split()
        if len(words) not in (3, 5) or (len(words) == 5 and words[3].upper() != "DIR"):
            raise self._error(line, "expected: SPLICE <name> <dag file> [DIR d]")
        local = words[1]
        self._new_node_name(line, local)
        sdir = self._join_dir(words[4]) if len(words) == 5 else self.dir_prefix
        spath = Path(words[2])
        if not spath.is_absolute():
            spath = self.dag.workdir / sdir / spath
        if not os.path.isfile(spath):  # False, not OSError, for an over-long name
            raise self._error(line, f"splice file {spath} does not exist")
        if spath.resolve() in self.stack:
            raise self._error(line, f"recursive DAG file parsing of {spath}")
        inner = _FileParser(
            self.dag, spath, self.prefix + local + "+", sdir, self.depth + 1, self.stack
        ).parse()
        inner_nodes = set(inner.nodes)
        for node in inner.nodes.values():
            self.scope.nodes[node.name] = node
        initial = [n.name for n in inner.nodes.values() if not any(p in inner_nodes for p in n.parents)]
        terminal = [n.name for n in inner.nodes.values() if not any(c in inner_nodes for c in n.children)]
        self.scope.splices[local] = Splice(initial, terminal, inner.pin_in, inner.pin_out)
        self.scope.local[local] = self.prefix + local
        for name, entry in inner.maxjobs.items():
            mine = self.scope.maxjobs.get(name)
            if mine is None or entry[0] < mine[0]:
                self.scope.maxjobs[name] = entry
        for name, entry in inner.descriptions.items():
            if name not in self.scope.descriptions:
                self.scope.descriptions[name] = entry
            elif self.scope.descriptions[name][1] != entry[1]:
                self.scope.warnings.append(
                    f"{line.loc}: SUBMIT-DESCRIPTION {name} in splice {local} clashes with the parent's; "
                    "the parent's definition is kept"
                )
        if inner.reject is not None and self.scope.reject is None:
            self.scope.reject = inner.reject
        self.scope.warnings.extend(inner.warnings)
