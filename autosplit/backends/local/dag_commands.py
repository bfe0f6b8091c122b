"""What each DAG command means: one ``_cmd_<keyword>`` method per command of the DAG language, applied to
the scope of the file being parsed (the top-level DAG or a splice).

Each method checks its command's words and records the result: nodes (``JOB``, ``FINAL``, ``SUBDAG``),
DAG-wide settings (``NODE_STATUS_FILE``, ``JOBSTATE_LOG``, ``DOT``, ``CONFIG``, ``ENV``, ``REJECT``), node
settings (``SCRIPT``, ``RETRY``, ``VARS``, ...) and edges (``PARENT``/``CHILD``, ``CONNECT``). Errors name
the file, line and keyword. Reading files into lines is :mod:`~autosplit.backends.local.dag_lines`; the
two passes and splices are :mod:`~autosplit.backends.local.parser`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from autosplit.backends.local.dag_config import read_config
from autosplit.backends.local.dag_lines import Line, normalize_keyword, parse_vars
from autosplit.backends.local.errors import DagParseError
from autosplit.backends.local.model import Dag, Location, Node, Script, StatusFileSpec, VarDef

RESERVED_NAMES = {"PARENT", "CHILD", "ALL_NODES"}
NODE_NAME = re.compile(r"^[A-Za-z0-9_.:\-]+$")

# Pass 1: commands that define nodes or DAG-wide files; pass 2: the rest (they may name nodes defined later).
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


@dataclass
class Splice:
    """A splice as its parent sees it: its initial and terminal nodes, and its pins."""

    initial: list[str]
    terminal: list[str]
    pin_in: dict[int, list[str]]
    pin_out: dict[int, list[str]]


@dataclass
class Scope:
    """Result of parsing one file (the top DAG or a splice), node names already fully qualified."""

    nodes: dict[str, Node] = field(default_factory=dict)
    local: dict[str, str] = field(default_factory=dict)  # name as written in this file -> full name
    splices: dict[str, Splice] = field(default_factory=dict)
    pin_in: dict[int, list[str]] = field(default_factory=dict)
    pin_out: dict[int, list[str]] = field(default_factory=dict)
    maxjobs: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> (depth, order, limit)
    descriptions: dict[str, tuple[int, str]] = field(default_factory=dict)  # name -> (depth, text)
    final: str | None = None
    reject: Location | None = None
    warnings: list[str] = field(default_factory=list)


class ScopeCommands:
    """The commands of one file. ``prefix`` is prepended to node names (``<splice>+``), ``dir_prefix`` to
    node directories; ``depth`` is 0 for the top-level DAG. ``SPLICE``, which parses another file, is
    implemented by the parser (a subclass)."""

    def __init__(self, dag: Dag, prefix: str, dir_prefix: str, depth: int) -> None:
        self.dag = dag
        self.prefix = prefix
        self.dir_prefix = dir_prefix
        self.depth = depth
        self.scope = Scope()
        self._maxjobs_order = 0

    def _resolve(self, name: str) -> Path:
        p = Path(name)
        if p.is_absolute():
            return p
        return self.dag.workdir / self.dir_prefix / p

    def _error(self, line: Line, message: str) -> DagParseError:
        return DagParseError(line.loc.file, line.loc.line, line.text.split()[0], message)

    # ----------------------------------------------------------------------------------------- helpers
    def _new_node_name(self, line: Line, name: str) -> str:
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

    def _lookup(self, line: Line, name: str, allow_splice: bool = False) -> str:
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

    def _targets(self, line: Line, name: str, what: str, allow_final: bool) -> list[Node]:
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

    def _int(self, line: Line, value: str, what: str) -> int:
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
    def _node_options(self, line: Line, words: list[str], allowed: set[str]) -> dict[str, str | bool]:
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

    def _add_node(self, line: Line, node: Node, local_name: str) -> None:
        node.location = line.loc
        self.scope.nodes[node.name] = node
        self.scope.local[local_name] = node.name

    def _cmd_job(self, line: Line, final: bool = False) -> None:
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

    def _cmd_final(self, line: Line) -> None:
        self._cmd_job(line, final=True)

    def _cmd_subdag(self, line: Line) -> None:
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

    def _cmd_submit_description(self, line: Line) -> None:
        words = line.text.split()
        if line.block is None or len(words) < 3:
            raise self._error(line, "expected: SUBMIT-DESCRIPTION <name> { ... } (or @=TAG ... @TAG)")
        # A later definition in the same file replaces an earlier one; a parent's wins over a splice's.
        self.scope.descriptions[words[1]] = (self.depth, line.block)

    def _cmd_node_status_file(self, line: Line) -> None:
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

    def _cmd_jobstate_log(self, line: Line) -> None:
        words = line.text.split()
        if len(words) != 2:
            raise self._error(line, "expected: JOBSTATE_LOG <file>")
        if self.depth > 0:
            self.scope.warnings.append(f"{line.loc}: JOBSTATE_LOG inside a splice is ignored")
        elif self.dag.jobstate_log is not None:
            self.scope.warnings.append(f"{line.loc}: second JOBSTATE_LOG ignored (first one wins)")
        else:
            self.dag.jobstate_log = words[1]

    def _cmd_dot(self, line: Line) -> None:
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

    def _cmd_reject(self, line: Line) -> None:
        if len(line.text.split()) != 1:
            raise self._error(line, "REJECT takes no arguments")
        if self.scope.reject is None:
            self.scope.reject = line.loc

    # ----------------------------------------------------------------------------------------- pass 2
    def _endpoints(self, line: Line, name: str, as_parent: bool) -> list[str]:
        full = self._lookup(line, name, allow_splice=True)
        splice = self.scope.splices.get(full)
        if splice is not None:
            return splice.terminal if as_parent else splice.initial
        return [full]

    def _add_edge(self, parent: str, child: str, line: Line) -> None:
        p, c = self.scope.nodes[parent], self.scope.nodes[child]
        if p.is_final or c.is_final:
            raise ValueError(
                f"the FINAL node {p.name if p.is_final else c.name} cannot have parents or children"
            )
        if child not in p.children:
            p.children.append(child)
            c.parents.append(parent)
            self.dag.edges[(parent, child)] = line.loc

    def _cmd_parent(self, line: Line) -> None:
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
                    self._add_edge(p, c, line)
        except ValueError as exc:
            raise self._error(line, str(exc)) from None

    def _cmd_script(self, line: Line) -> None:
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

    def _cmd_retry(self, line: Line) -> None:
        words = line.text.split()
        if len(words) not in (3, 5) or (len(words) == 5 and normalize_keyword(words[3]) != "UNLESS_EXIT"):
            raise self._error(line, "expected: RETRY <node> <count> [UNLESS-EXIT <value>]")
        count = self._int(line, words[2], "retry count")
        if count < 0:
            raise self._error(line, "retry count must be >= 0")
        unless = self._int(line, words[4], "UNLESS-EXIT value") if len(words) == 5 else None
        for node in self._targets(line, words[1], "RETRY", allow_final=False):
            node.retry, node.unless_exit = count, unless

    def _cmd_abort_dag_on(self, line: Line) -> None:
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

    def _cmd_pre_skip(self, line: Line) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, "expected: PRE_SKIP <node> <exit code>")
        value = self._int(line, words[2], "PRE_SKIP value")
        if not 1 <= value <= 255:
            raise self._error(line, "PRE_SKIP value must be in 1..255 (0 means the PRE script succeeded)")
        for node in self._targets(line, words[1], "PRE_SKIP", allow_final=True):
            node.pre_skip = value

    def _cmd_priority(self, line: Line) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, "expected: PRIORITY <node> <value>")
        value = self._int(line, words[2], "priority")
        for node in self._targets(line, words[1], "PRIORITY", allow_final=False):
            node.priority = value

    def _scoped_category(self, name: str) -> str:
        return name if name.startswith("+") else self.prefix + name

    def _cmd_category(self, line: Line) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, "expected: CATEGORY <node> <category>")
        for node in self._targets(line, words[1], "CATEGORY", allow_final=False):
            node.category = self._scoped_category(words[2])

    def _cmd_maxjobs(self, line: Line) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, "expected: MAXJOBS <category> <limit>")
        limit = self._int(line, words[2], "MAXJOBS limit")
        if limit < 0:
            raise self._error(line, "MAXJOBS limit must be >= 0")
        self._maxjobs_order += 1
        self.scope.maxjobs[self._scoped_category(words[1])] = (self.depth, self._maxjobs_order, limit)

    def _cmd_config(self, line: Line) -> None:
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

    def _cmd_done(self, line: Line) -> None:
        words = line.text.split()
        if len(words) != 2:
            raise self._error(line, "expected: DONE <node>")
        node = self.scope.nodes[self._lookup(line, words[1])]
        if node.is_final:
            raise self._error(line, "the FINAL node cannot be marked DONE")
        node.done = True

    def _cmd_vars(self, line: Line) -> None:
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

    def _cmd_connect(self, line: Line) -> None:
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
                        self._add_edge(p, c, line)
        except ValueError as exc:
            raise self._error(line, str(exc)) from None

    def _cmd_pin_in(self, line: Line, out: bool = False) -> None:
        words = line.text.split()
        if len(words) != 3:
            raise self._error(line, f"expected: {words[0]} <node> <pin number>")
        full = self._lookup(line, words[1])
        pin = self._int(line, words[2], "pin number")
        if pin < 1:
            raise self._error(line, "pin numbers start at 1")
        pins = self.scope.pin_out if out else self.scope.pin_in
        pins.setdefault(pin, []).append(full)

    def _cmd_pin_out(self, line: Line) -> None:
        self._cmd_pin_in(line, out=True)

    def _cmd_env(self, line: Line) -> None:
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
