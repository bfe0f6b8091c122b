"""DAG file parser: DAGMan's language, two passes, every unsupported keyword refused with file and line.

Lexical rules follow DAGMan's new parser (``dag_parser.cpp``): lines are trimmed, empty lines and lines
starting with ``#`` or ``//`` are skipped, a trailing ``\\`` joins the next line, keywords are
case-insensitive and ``-`` equals ``_`` in them. Pass 1 reads the node-defining commands (``JOB``,
``FINAL``, ``SUBDAG``, ``SPLICE``, ``SUBMIT-DESCRIPTION``, ``NODE_STATUS_FILE``, ``JOBSTATE_LOG``, ``DOT``,
``REJECT``); pass 2 reads the rest, so ``PARENT`` or ``VARS ALL_NODES`` may come before the nodes they name.

Splices are parsed as separate scopes and lifted into the parent with ``<splice>+<node>`` names; ``INCLUDE``
is textual. Submit descriptions and sub-DAG files are *not* read here: they may be written at run time by
the node's PRE script.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from autosplit.backends.local.errors import DagParseError
from autosplit.backends.local.model import Dag, Location, Node, Script, StatusFileSpec, VarDef

RESERVED_NAMES = {"PARENT", "CHILD", "ALL_NODES"}
NODE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")
VAR_KEY = re.compile(r"^\+?[A-Za-z_][A-Za-z0-9_.]*$")

PASS1 = {
    "JOB",
    "FINAL",
    "SUBDAG",
    "SPLICE",
    "SUBMIT_DESCRIPTION",
    "NODE_STATUS_FILE",
    "JOBSTATE_LOG",
    "DOT",
    "REJECT",
}
PASS2 = {
    "PARENT",
    "SCRIPT",
    "RETRY",
    "ABORT_DAG_ON",
    "VARS",
    "PRIORITY",
    "PRE_SKIP",
    "CATEGORY",
    "MAXJOBS",
    "CONFIG",
    "DONE",
    "CONNECT",
    "PIN_IN",
    "PIN_OUT",
    "ENV",
}
UNSUPPORTED = {
    "SERVICE": "SERVICE nodes are not supported by the local executor",
    "PROVISIONER": "PROVISIONER nodes need a pool; not supported by the local executor",
    "SET_JOB_ATTR": "there is no DAGMan job ad to set attributes on when running locally",
    "SAVE_POINT_FILE": "save points are not supported by the local executor",
    "TOLERANCE": "per-node failure TOLERANCE is not supported by the local executor",
    "WEAK": "WEAK edges are not supported by the local executor",
}

# DAGMan configuration knobs (CONFIG file) the executor understands. Values are parsed by the executor.
CONFIG_KNOBS = {
    "DAGMAN_MAX_JOBS_SUBMITTED",
    "DAGMAN_MAX_PRE_SCRIPTS",
    "DAGMAN_MAX_POST_SCRIPTS",
    "DAGMAN_ALWAYS_RUN_POST",
    "DAGMAN_MAX_SUBMIT_ATTEMPTS",
    "DAGMAN_SUBMIT_DELAY",
    "DAGMAN_PROHIBIT_MULTI_JOBS",
    "DAGMAN_RESET_RETRIES_UPON_RESCUE",
    "DAGMAN_MAX_RESCUE_NUM",
    "DAGMAN_AUTO_RESCUE",
    "DAGMAN_RETRY_NODE_FIRST",
    "DAGMAN_SUBMIT_DEPTH_FIRST",
    "DAGMAN_STARTUP_CYCLE_DETECT",
    "DAGMAN_DEFAULT_APPEND_VARS",
    "DAGMAN_DEBUG",
}
# Knobs that only tune how DAGMan talks to a schedd; they have no meaning for local processes (jobs start
# at once and are watched directly, never idle), so accepting them changes nothing.
CONFIG_POOL_ONLY = {
    "DAGMAN_USER_LOG_SCAN_INTERVAL",
    "DAGMAN_MAX_SUBMITS_PER_INTERVAL",
    "DAGMAN_MAX_JOBS_IDLE",
    "DAGMAN_WRITE_PARTIAL_RESCUE",
    "DAGMAN_NODE_JOB_FAILURE_TOLERANCE",  # only 0 is accepted, checked below
    "SCHEDULER_UNIVERSE_COOL_DOWN_DURATION",
}


def normalize_keyword(word: str) -> str:
    """``Abort-dag-on`` -> ``ABORT_DAG_ON`` (DAGMan compares keywords case-insensitively, ``-`` == ``_``)."""
    return word.upper().replace("-", "_")


@dataclass
class _Line:
    text: str
    loc: Location
    block: str | None = None  # inline submit description attached to a JOB/FINAL/SUBMIT-DESCRIPTION line


@dataclass
class _Splice:
    initial: list[str]
    terminal: list[str]
    pin_in: dict[int, list[str]]
    pin_out: dict[int, list[str]]


@dataclass
class _Scope:
    """Result of parsing one file (the top DAG or a splice), node names already fully qualified."""

    nodes: dict[str, Node] = field(default_factory=dict)
    local: dict[str, str] = field(default_factory=dict)  # name as written in this file -> full name
    splices: dict[str, _Splice] = field(default_factory=dict)
    pin_in: dict[int, list[str]] = field(default_factory=dict)
    pin_out: dict[int, list[str]] = field(default_factory=dict)
    maxjobs: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (depth, order, limit)
    descriptions: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (depth, text)
    final: str | None = None
    reject: Location | None = None
    warnings: list[str] = field(default_factory=list)


def parse_dag(path: str | os.PathLike[str], workdir: str | os.PathLike[str] | None = None) -> Dag:
    """Parse a DAG file (with its splices, includes and CONFIG file) into a :class:`Dag`.

    ``workdir`` is the directory relative paths in the DAG are resolved against (DAGMan's working
    directory); default: the DAG file's own directory. Raises :class:`DagParseError` naming the file, line
    and keyword for anything malformed or unsupported.
    """
    dag_path = Path(path)
    if not dag_path.is_file():
        raise DagParseError(str(path), 0, "DAG", "no such DAG file")
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


class _FileParser:
    """Parses one file (top-level DAG or splice) in two passes."""

    def __init__(
        self, dag: Dag, path: Path, prefix: str, dir_prefix: str, depth: int, stack: tuple[Path, ...]
    ) -> None:
        self.dag = dag
        self.path = path
        self.display = str(path)
        self.prefix = prefix
        self.dir_prefix = dir_prefix
        self.depth = depth
        self.stack = stack + (path.resolve(),)
        self.scope = _Scope()
        self._maxjobs_order = 0

    # ----------------------------------------------------------------------------------------- reading
    def _read_lines(self, path: Path, stack: tuple[Path, ...], where: Location | None) -> list[_Line]:
        try:
            raw = path.read_text().splitlines()
        except OSError as exc:
            loc = where or Location(str(path), 0)
            raise DagParseError(
                loc.file, loc.line, "INCLUDE" if where else "DAG", f"cannot read {path}: {exc}"
            ) from None
        display = str(path)
        out: list[_Line] = []
        i = 0
        while i < len(raw):
            start = i + 1
            text = raw[i].strip()
            i += 1
            while text.endswith("\\") and i < len(raw):
                text = text[:-1].rstrip() + " " + raw[i].strip()
                i += 1
            if not text or text.startswith("#") or text.startswith("//"):
                continue
            loc = Location(display, start)
            words = text.split()
            keyword = normalize_keyword(words[0])
            if keyword == "INCLUDE":
                if len(words) != 2:
                    raise DagParseError(display, start, "INCLUDE", "expected: INCLUDE <file>")
                target = self._resolve(words[1])
                if target.resolve() in stack:
                    raise DagParseError(display, start, "INCLUDE", f"recursive DAG file parsing of {target}")
                out.extend(self._read_lines(target, stack + (target.resolve(),), loc))
                continue
            block = None
            if keyword in ("JOB", "FINAL", "SUBMIT_DESCRIPTION") and len(words) >= 3:
                opener = words[2]
                if opener == "{" or opener.startswith("@="):
                    end_tag = "}" if opener == "{" else "@" + opener[2:]
                    if opener.startswith("@=") and len(opener) == 2:
                        raise DagParseError(display, start, keyword, "empty @= tag")
                    body: list[str] = []
                    trailer = None
                    while i < len(raw):
                        stripped = raw[i].strip()
                        i += 1
                        if stripped.split()[:1] == [end_tag] or (end_tag == "}" and stripped.startswith("}")):
                            trailer = stripped[len(end_tag) :].strip()
                            break
                        body.append(raw[i - 1])
                    if trailer is None:
                        raise DagParseError(
                            display, start, keyword, f"inline description not closed by {end_tag}"
                        )
                    block = "\n".join(body) + "\n"
                    text = " ".join(words[:2] + ["<inline>"] + ([trailer] if trailer else []))
            out.append(_Line(text, loc, block))
        return out

    def _resolve(self, name: str) -> Path:
        p = Path(name)
        if p.is_absolute():
            return p
        return self.dag.workdir / self.dir_prefix / p

    # ----------------------------------------------------------------------------------------- passes
    def parse(self) -> _Scope:
        lines = self._read_lines(self.path, self.stack, None)
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

    def _error(self, line: _Line, message: str) -> DagParseError:
        return DagParseError(line.loc.file, line.loc.line, line.text.split()[0], message)

    # ----------------------------------------------------------------------------------------- helpers
    def _new_node_name(self, line: _Line, name: str) -> str:
        if name.upper() in RESERVED_NAMES:
            raise self._error(line, f"{name!r} is a reserved word and cannot name a node")
        if not NODE_NAME.match(name):
            raise self._error(
                line,
                f"invalid node name {name!r}: use letters, digits and . _ - : only "
                "('+' separates splice scopes; blanks and quotes cannot be passed to scripts)",
            )
        if name in self.scope.local:
            raise self._error(line, f"node or splice {name!r} is already defined")
        return self.prefix + name

    def _lookup(self, line: _Line, name: str, allow_splice: bool = False) -> str:
        """Full node name for a name written in this file (own nodes and lifted splice nodes)."""
        if name in self.scope.splices:
            if allow_splice:
                return name
            raise self._error(line, f"{name!r} is a splice; this command cannot target a splice")
        full = self.scope.local.get(name)
        if full is None and (self.prefix + name) in self.scope.nodes:
            full = self.prefix + name
        if full is None:
            raise self._error(line, f"no node named {name!r}")
        return full

    def _targets(self, line: _Line, name: str, what: str, allow_final: bool) -> list[Node]:
        """Nodes a per-node command applies to (``ALL_NODES`` = every non-FINAL node of this file)."""
        if name.upper() == "ALL_NODES":
            return [n for n in self.scope.nodes.values() if not n.is_final and n.name in self._own]
        node = self.scope.nodes[self._lookup(line, name)]
        if node.is_final and not allow_final:
            raise self._error(line, f"{what} cannot be used with the FINAL node {node.name}")
        return [node]

    @property
    def _own(self) -> set[str]:
        return set(self.scope.local.values())

    def _int(self, line: _Line, value: str, what: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise self._error(line, f"{what} must be an integer, got {value!r}") from None

    def _join_dir(self, d: str) -> str:
        if not self.dir_prefix:
            return d
        if not d:
            return self.dir_prefix
        return d if os.path.isabs(d) else os.path.join(self.dir_prefix, d)

    # ----------------------------------------------------------------------------------------- pass 1
    def _node_options(self, line: _Line, words: list[str], allowed: set[str]) -> dict[str, str | bool]:
        opts: dict[str, str | bool] = {}
        i = 0
        while i < len(words):
            word = words[i].upper()
            if word == "DIR" and "DIR" in allowed:
                if i + 1 >= len(words):
                    raise self._error(line, "DIR needs a directory")
                opts["DIR"] = words[i + 1]
                i += 2
            elif word in allowed and word != "DIR":
                opts[word] = True
                i += 1
            else:
                raise self._error(line, f"unexpected {words[i]!r} (allowed: {', '.join(sorted(allowed))})")
        return opts

    def _add_node(self, line: _Line, node: Node, local_name: str) -> None:
        node.location = line.loc
        self.scope.nodes[node.name] = node
        self.scope.local[local_name] = node.name

    def _cmd_job(self, line: _Line, final: bool = False) -> None:
        words = line.text.split()
        if len(words) < 3:
            raise self._error(line, f"expected: {words[0]} <name> <submit file> [DIR d] [NOOP] [DONE]")
        name = self._new_node_name(line, words[1])
        allowed = {"DIR", "NOOP"} if final else {"DIR", "NOOP", "DONE"}
        opts = self._node_options(line, words[3:], allowed)
        node = Node(name=name, is_final=final)
        if line.block is not None:
            node.inline_submit = line.block
        else:
            node.submit = words[2]
            if words[2].endswith(".condor.sub"):
                raise self._error(line, "a .condor.sub submit file (nested DAG) is not supported; use SUBDAG")
        node.dir = self._join_dir(str(opts.get("DIR", "")))
        node.noop = bool(opts.get("NOOP", False))
        node.done = bool(opts.get("DONE", False))
        if final:
            if self.depth > 0:
                raise self._error(line, "a FINAL node is not allowed inside a splice")
            if self.scope.final is not None:
                raise self._error(line, f"only one FINAL node is allowed (already {self.scope.final})")
            self.scope.final = name
        self._add_node(line, node, words[1])

    def _cmd_final(self, line: _Line) -> None:
        self._cmd_job(line, final=True)

    def _cmd_subdag(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) < 4 or words[1].upper() != "EXTERNAL":
            raise self._error(line, "expected: SUBDAG EXTERNAL <name> <dag file> [DIR d] [NOOP] [DONE]")
        name = self._new_node_name(line, words[2])
        opts = self._node_options(line, words[4:], {"DIR", "NOOP", "DONE"})
        node = Node(name=name, submit=words[3], is_subdag=True)
        node.dir = self._join_dir(str(opts.get("DIR", "")))
        node.noop = bool(opts.get("NOOP", False))
        node.done = bool(opts.get("DONE", False))
        self._add_node(line, node, words[2])

    def _cmd_splice(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) not in (3, 5) or (len(words) == 5 and words[3].upper() != "DIR"):
            raise self._error(line, "expected: SPLICE <name> <dag file> [DIR d]")
        local = words[1]
        self._new_node_name(line, local)
        sdir = self._join_dir(words[4]) if len(words) == 5 else self.dir_prefix
        spath = Path(words[2])
        if not spath.is_absolute():
            spath = self.dag.workdir / sdir / spath
        if not spath.is_file():
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
        self.scope.splices[local] = _Splice(initial, terminal, inner.pin_in, inner.pin_out)
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

    def _cmd_submit_description(self, line: _Line) -> None:
        words = line.text.split()
        if line.block is None or len(words) < 3:
            raise self._error(line, "expected: SUBMIT-DESCRIPTION <name> { ... } (or @=TAG ... @TAG)")
        # A later definition in the same file replaces an earlier one; a parent's wins over a splice's.
        self.scope.descriptions[words[1]] = (self.depth, line.block)

    def _cmd_node_status_file(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) < 2 or len(words) > 4:
            raise self._error(line, "expected: NODE_STATUS_FILE <file> [min seconds] [ALWAYS-UPDATE]")
        if self.depth > 0:
            self.scope.warnings.append(f"{line.loc}: NODE_STATUS_FILE inside a splice is ignored (as DAGMan)")
            return
        if self.dag.status_file is not None:
            self.scope.warnings.append(f"{line.loc}: second NODE_STATUS_FILE ignored (first one wins)")
            return
        spec = StatusFileSpec(path=words[1])
        for word in words[2:]:
            if normalize_keyword(word) == "ALWAYS_UPDATE":
                spec.always_update = True
            else:
                try:
                    spec.min_interval = float(word)
                except ValueError:
                    raise self._error(line, f"bad minimum update time {word!r}") from None
        self.dag.status_file = spec

    def _cmd_jobstate_log(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) != 2:
            raise self._error(line, "expected: JOBSTATE_LOG <file>")
        if self.depth > 0:
            self.scope.warnings.append(f"{line.loc}: JOBSTATE_LOG inside a splice is ignored")
        elif self.dag.jobstate_log is not None:
            self.scope.warnings.append(f"{line.loc}: second JOBSTATE_LOG ignored (first one wins)")
        else:
            self.dag.jobstate_log = words[1]

    def _cmd_dot(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) < 2:
            raise self._error(line, "expected: DOT <file> [UPDATE|DONT-UPDATE] [OVERWRITE]")
        for word in words[2:]:
            if normalize_keyword(word) not in ("UPDATE", "DONT_UPDATE", "OVERWRITE"):
                raise self._error(
                    line, f"DOT option {word!r} is not supported (UPDATE, DONT-UPDATE, OVERWRITE)"
                )
        if self.depth > 0:
            self.scope.warnings.append(f"{line.loc}: DOT inside a splice is ignored")
            return
        self.dag.dot_file = words[1]
        self.dag.dot_update = any(normalize_keyword(w) == "UPDATE" for w in words[2:])

    def _cmd_reject(self, line: _Line) -> None:
        if len(line.text.split()) != 1:
            raise self._error(line, "REJECT takes no arguments")
        if self.scope.reject is None:
            self.scope.reject = line.loc

    # ----------------------------------------------------------------------------------------- pass 2
    def _endpoints(self, line: _Line, name: str, as_parent: bool) -> list[str]:
        full = self._lookup(line, name, allow_splice=True)
        splice = self.scope.splices.get(full)
        if splice is not None:
            return splice.terminal if as_parent else splice.initial
        return [full]

    def _add_edge(self, parent: str, child: str) -> None:
        p, c = self.scope.nodes[parent], self.scope.nodes[child]
        if p.is_final or c.is_final:
            raise ValueError(
                f"the FINAL node {p.name if p.is_final else c.name} cannot have parents or children"
            )
        if child not in p.children:
            p.children.append(child)
            c.parents.append(parent)

    def _cmd_parent(self, line: _Line) -> None:
        words = line.text.split()
        upper = [w.upper() for w in words]
        if "CHILD" not in upper:
            raise self._error(line, "expected: PARENT <nodes...> CHILD <nodes...>")
        split = upper.index("CHILD")
        parents, children = words[1:split], words[split + 1 :]
        if not parents or not children:
            raise self._error(line, "PARENT and CHILD each need at least one node")
        ps = [p for name in parents for p in self._endpoints(line, name, True)]
        cs = [c for name in children for c in self._endpoints(line, name, False)]
        try:
            for p in ps:
                for c in cs:
                    if p == c:
                        raise ValueError(f"node {p} cannot be its own parent")
                    self._add_edge(p, c)
        except ValueError as exc:
            raise self._error(line, str(exc)) from None

    def _cmd_script(self, line: _Line) -> None:
        rest = line.text.split(None, 1)[1] if len(line.text.split(None, 1)) > 1 else ""
        tokens = rest.split()
        defer_status, defer_time, debug_file, debug_type = None, 0.0, None, None
        while tokens and tokens[0].upper() in ("DEFER", "DEBUG"):
            head = tokens.pop(0).upper()
            if len(tokens) < 2:
                raise self._error(line, f"{head} needs two values")
            a, b = tokens.pop(0), tokens.pop(0)
            if head == "DEFER":
                defer_status = self._int(line, a, "DEFER status")
                try:
                    defer_time = float(b)
                except ValueError:
                    raise self._error(line, f"DEFER time must be a number of seconds, got {b!r}") from None
            else:
                debug_file, debug_type = a, b.upper()
                if debug_type not in ("STDOUT", "STDERR", "ALL"):
                    raise self._error(line, f"DEBUG output type must be STDOUT, STDERR or ALL, got {b!r}")
        if len(tokens) < 3:
            raise self._error(
                line, "expected: SCRIPT [DEFER s t] [DEBUG f type] PRE|POST|HOLD <node> <exe> [args]"
            )
        kind = tokens[0].upper()
        if kind not in ("PRE", "POST", "HOLD"):
            raise self._error(line, f"script type must be PRE, POST or HOLD, got {tokens[0]!r}")
        for node in self._targets(line, tokens[1], "SCRIPT", allow_final=True):
            script = Script(kind, tokens[2:], defer_status, defer_time, debug_file, debug_type, line.loc)
            setattr(node, kind.lower(), script)

    def _cmd_retry(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) not in (3, 5) or (len(words) == 5 and normalize_keyword(words[3]) != "UNLESS_EXIT"):
            raise self._error(line, "expected: RETRY <node> <count> [UNLESS-EXIT <value>]")
        count = self._int(line, words[2], "retry count")
        if count < 0:
            raise self._error(line, "retry count must be >= 0")
        unless = self._int(line, words[4], "UNLESS-EXIT value") if len(words) == 5 else None
        for node in self._targets(line, words[1], "RETRY", allow_final=False):
            node.retry, node.unless_exit = count, unless

    def _cmd_abort_dag_on(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) not in (3, 5) or (len(words) == 5 and words[3].upper() != "RETURN"):
            raise self._error(line, "expected: ABORT-DAG-ON <node> <value> [RETURN <dag exit code>]")
        value = self._int(line, words[2], "abort value")
        ret = None
        if len(words) == 5:
            ret = self._int(line, words[4], "RETURN value")
            if not 0 <= ret <= 255:
                raise self._error(line, "RETURN value must be in 0..255")
        for node in self._targets(line, words[1], "ABORT-DAG-ON", allow_final=False):
            node.abort_on, node.abort_return = value, ret

    def _cmd_pre_skip(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, "expected: PRE_SKIP <node> <exit code>")
        value = self._int(line, words[2], "PRE_SKIP value")
        if not 1 <= value <= 255:
            raise self._error(line, "PRE_SKIP value must be in 1..255 (0 means the PRE script succeeded)")
        for node in self._targets(line, words[1], "PRE_SKIP", allow_final=True):
            node.pre_skip = value

    def _cmd_priority(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, "expected: PRIORITY <node> <value>")
        value = self._int(line, words[2], "priority")
        for node in self._targets(line, words[1], "PRIORITY", allow_final=False):
            node.priority = value

    def _scoped_category(self, name: str) -> str:
        return name if name.startswith("+") else self.prefix + name

    def _cmd_category(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, "expected: CATEGORY <node> <category>")
        for node in self._targets(line, words[1], "CATEGORY", allow_final=False):
            node.category = self._scoped_category(words[2])

    def _cmd_maxjobs(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, "expected: MAXJOBS <category> <limit>")
        limit = self._int(line, words[2], "MAXJOBS limit")
        if limit < 0:
            raise self._error(line, "MAXJOBS limit must be >= 0")
        self._maxjobs_order += 1
        self.scope.maxjobs[self._scoped_category(words[1])] = (self.depth, self._maxjobs_order, limit)

    def _cmd_config(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) != 2:
            raise self._error(line, "expected: CONFIG <file>")
        if self.depth > 0:
            self.scope.warnings.append(f"{line.loc}: CONFIG inside a splice is ignored (as DAGMan)")
            return
        if self.dag.config_file is not None:
            raise self._error(line, f"only one CONFIG file per DAG (already {self.dag.config_file})")
        self.dag.config_file = words[1]
        self.dag.config.update(read_config(self._resolve(words[1]), line.loc))

    def _cmd_done(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) != 2:
            raise self._error(line, "expected: DONE <node>")
        node = self.scope.nodes[self._lookup(line, words[1])]
        if node.is_final:
            raise self._error(line, "the FINAL node cannot be marked DONE")
        node.done = True

    def _cmd_vars(self, line: _Line) -> None:
        parts = line.text.split(None, 2)
        if len(parts) < 3:
            raise self._error(line, 'expected: VARS <node> [PREPEND|APPEND] key="value" ...')
        targets = self._targets(line, parts[1], "VARS", allow_final=True)
        rest = parts[2]
        prepend: bool | None = None
        head = rest.split(None, 1)
        if head and head[0].upper() in ("PREPEND", "APPEND"):
            prepend = head[0].upper() == "PREPEND"
            rest = head[1] if len(head) > 1 else ""
        pairs = parse_vars(rest, lambda msg: self._error(line, msg))
        if not pairs:
            raise self._error(line, 'no key="value" pairs')
        for node in targets:
            node.vars.extend(VarDef(k, v, prepend) for k, v in pairs)

    def _cmd_connect(self, line: _Line) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, "expected: CONNECT <splice1> <splice2>")
        a, b = (self.scope.splices.get(w) for w in words[1:])
        if a is None or b is None:
            raise self._error(line, "CONNECT needs two splices of this file")
        if set(a.pin_out) != set(b.pin_in):
            raise self._error(
                line,
                f"pin mismatch: {words[1]} has PIN_OUT {sorted(a.pin_out)}, {words[2]} has PIN_IN {sorted(b.pin_in)}",
            )
        try:
            for pin, outs in a.pin_out.items():
                for p in outs:
                    for c in b.pin_in[pin]:
                        self._add_edge(p, c)
        except ValueError as exc:
            raise self._error(line, str(exc)) from None

    def _cmd_pin_in(self, line: _Line, out: bool = False) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, f"expected: {words[0]} <node> <pin number>")
        full = self._lookup(line, words[1])
        pin = self._int(line, words[2], "pin number")
        if pin < 1:
            raise self._error(line, "pin numbers start at 1")
        pins = self.scope.pin_out if out else self.scope.pin_in
        pins.setdefault(pin, []).append(full)

    def _cmd_pin_out(self, line: _Line) -> None:
        self._cmd_pin_in(line, out=True)

    def _cmd_env(self, line: _Line) -> None:
        words = line.text.split(None, 2)
        if len(words) < 3 or words[1].upper() not in ("SET", "GET"):
            raise self._error(line, "expected: ENV SET k=v;k2=v2 | ENV GET VAR ...")
        if self.depth > 0:
            self.scope.warnings.append(f"{line.loc}: ENV inside a splice is ignored (as DAGMan)")
            return
        if words[1].upper() == "GET":
            # DAGMan imports these from the submitter's environment; the local executor already runs
            # with that environment, so nothing to copy.
            return
        for item in words[2].split(";"):
            item = item.strip()
            if not item:
                continue
            if "=" not in item:
                raise self._error(line, f"ENV SET item {item!r} is not key=value")
            key, value = item.split("=", 1)
            self.dag.env_set[key.strip()] = value.strip()


def parse_vars(text: str, error) -> list[tuple[str, str]]:
    """Parse ``key="value" key2 = "value 2"`` (``\\x`` in a value stands for ``x``)."""
    pairs: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            return pairs
        start = i
        while i < n and text[i] not in " \t=":
            i += 1
        key = text[start:i]
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != "=":
            raise error(f'VARS expects key="value", got {text[start:]!r}')
        i += 1
        while i < n and text[i] in " \t":
            i += 1
        if i >= n or text[i] != '"':
            raise error(f"the value of {key!r} must be in double quotes")
        i += 1
        value: list[str] = []
        while True:
            if i >= n:
                raise error(f"unterminated value for {key!r}")
            ch = text[i]
            if ch == "\\" and i + 1 < n:
                value.append(text[i + 1])
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                value.append(ch)
                i += 1
        if not VAR_KEY.match(key) and not key.lower().startswith("my."):
            raise error(f"invalid VARS name {key!r}")
        if key.lower().startswith("queue"):
            raise error(f"VARS name {key!r} may not begin with 'queue'")
        pairs.append((key, "".join(value)))


def read_config(path: Path, where: Location) -> dict[str, str]:
    """Read a DAGMan CONFIG file (``KNOB = value`` lines); unknown knobs are refused with file and line."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DagParseError(where.file, where.line, "CONFIG", f"cannot read {path}: {exc}") from None
    out: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if "=" not in text:
            raise DagParseError(str(path), number, "CONFIG", f"expected KNOB = value, got {text!r}")
        key, value = (s.strip() for s in text.split("=", 1))
        knob = key.upper()
        if knob.startswith("_CONDOR_"):
            knob = knob[len("_CONDOR_") :]
        if knob not in CONFIG_KNOBS and knob not in CONFIG_POOL_ONLY:
            raise DagParseError(str(path), number, knob, "DAGMan configuration knob not supported locally")
        if knob == "DAGMAN_NODE_JOB_FAILURE_TOLERANCE" and value.strip() not in ("0", ""):
            raise DagParseError(str(path), number, knob, "only a tolerance of 0 is supported locally")
        out[knob] = value
    return out
