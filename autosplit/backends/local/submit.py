"""Submit-description reader: turns an HTCondor submit description into the processes to start locally.

Supported: ``executable``, ``arguments`` (old syntax and the new double-quoted syntax), ``environment``
(old ``a=b;c=d`` and new ``"a=b c='d e'"``), ``getenv`` (true/false or name patterns), ``input``,
``output``, ``error``, ``log``, ``initialdir``, ``universe`` vanilla/scheduler/local, ``+Attr``/``My.Attr``
job-ad attributes, ``log_xml``, ``kill_sig``, ``job_max_vacate_time``, ``queue [N] [vars in (...) | vars from file]``, macros ``$(name)``, ``$(name:default)``,
``$(Cluster)``, ``$(Process)``, ``$ENV(name)``, ``$CHOICE(i, a, b, ...)`` and job-ad references
``$$([expression])``. Keys that only steer a pool (requirements, request_*, file transfer, notification...)
are accepted because a local process has nothing to match or transfer; keys whose meaning the executor
cannot honour (``hold``, ``on_exit_remove``, ``periodic_*``, other universes...) raise
:class:`SubmitError` naming the key, so nothing is silently ignored. Any other key is a user macro, exactly
as in ``condor_submit``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import signal
from dataclasses import dataclass, field
from pathlib import Path

from autosplit._io import InputProblem, decode_bytes, read_regular_bytes
from autosplit.backends.local.errors import SubmitError

# Keys with a local meaning implemented here.
IMPLEMENTED = {
    "executable",
    "arguments",
    "environment",
    "env",
    "getenv",
    "input",
    "output",
    "error",
    "log",
    "initialdir",
    "iwd",
    "universe",
    "kill_sig",
    "job_max_vacate_time",
    "log_xml",
}
# Keys that cannot be honoured by starting a local process; refused with the reason.
REFUSED = {
    "hold": "jobs submitted on hold would never run locally",
    "on_exit_hold": "on_exit_hold is not supported by the local executor",
    "on_exit_remove": "on_exit_remove (re-running a job that exited) is not supported by the local executor",
    "periodic_hold": "periodic_hold is not supported by the local executor",
    "periodic_release": "periodic_release is not supported by the local executor",
    "periodic_remove": "periodic_remove is not supported by the local executor",
    "periodic_vacate": "periodic_vacate is not supported by the local executor",
    "allowed_job_duration": "allowed_job_duration is not supported by the local executor",
    "allowed_execute_duration": "allowed_execute_duration is not supported by the local executor",
    "max_retries": "job-level max_retries is not supported (use the DAG's RETRY)",
    "retry_until": "job-level retry_until is not supported (use the DAG's RETRY)",
    "success_exit_code": "success_exit_code is not supported by the local executor",
    "transfer_output_remaps": "output remaps cannot be applied without file transfer",
    "noop_job": "noop_job is not supported (use NOOP on the DAG's JOB line)",
    "deferral_time": "deferral_time is not supported by the local executor",
    "cron_minute": "cron jobs are not supported by the local executor",
    "max_materialize": "late materialization is not supported by the local executor",
}
LOCAL_UNIVERSES = {"vanilla", "scheduler", "local"}
PREDEFINED = {"iswindows": "false", "islinux": "true", "opsys": "LINUX", "dollar": "$"}
_CLUSTER_KEYS = ("cluster", "clusterid")
_PROC_KEYS = ("process", "procid")


@dataclass
class ProcSpec:
    """One process of a job cluster: what to exec and where its standard streams go."""

    proc: int
    argv: list[str]
    env: dict[str, str]
    cwd: Path
    stdin: Path | None
    stdout: Path | None
    stderr: Path | None


@dataclass
class JobSpec:
    """A node's job cluster as read from its submit description."""

    cluster: int
    procs: list[ProcSpec]
    log: Path | None
    tag: str = "-"
    attributes: dict[str, str] = field(default_factory=dict)  # job-ad attribute -> expression text
    kill_sig: int = signal.SIGTERM
    vacate_time: float | None = None  # seconds between kill_sig and SIGKILL (None = executor default)
    log_xml: bool = False  # write the job event log in XML


@dataclass
class SubmitLines:
    """A submit description split into assignments and its queue statement."""

    assignments: list[tuple[str, str, str]]  # (lower-case key, original key, raw value)
    queue: str


_PARSED: dict[tuple[str, bool], SubmitLines] = {}


def read_submit_text(text: str, origin: str, implicit_queue: bool = False) -> SubmitLines:
    """Cached :func:`parse_submit_text` (many nodes share one description)."""
    key = (text, implicit_queue)
    lines = _PARSED.get(key)
    if lines is None:
        lines = parse_submit_text(text, origin, implicit_queue)
        if len(_PARSED) > 256:
            _PARSED.clear()
        _PARSED[key] = lines
    return lines


def parse_submit_text(text: str, origin: str, implicit_queue: bool = False) -> SubmitLines:
    """Split submit text into ``key = value`` assignments and the single ``queue`` statement.

    ``implicit_queue``: an inline description (``JOB A { ... }``) without a queue statement queues one job.
    """
    assignments: list[tuple[str, str, str]] = []
    queue: str | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        number = i + 1
        line = lines[i].strip()
        i += 1
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + lines[i].strip()
            i += 1
        if not line or line.startswith("#"):
            continue
        first = line.split(None, 1)[0].lower()
        if first == "queue" or first.startswith("queue(") or line.lower() == "queue":
            if queue is not None:
                raise SubmitError(f"{origin}:{number}: only one queue statement is allowed in a DAG node")
            queue = line[5:].strip()
            continue
        is_assignment = re.match(r"^[+A-Za-z_][A-Za-z0-9_.]*\s*=", line) is not None
        if first in ("if", "elif", "else", "endif", "include", "error", "warning") and not is_assignment:
            raise SubmitError(f"{origin}:{number}: submit command {first!r} is not supported locally")
        if "=" not in line:
            raise SubmitError(f"{origin}:{number}: expected 'key = value', got {line!r}")
        if queue is not None:
            raise SubmitError(f"{origin}:{number}: statement after the queue statement has no effect")
        key, value = line.split("=", 1)
        key = key.strip()
        if key.startswith("+"):
            key = "My." + key[1:]
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_.]*$", key):
            raise SubmitError(f"{origin}:{number}: invalid submit key {key!r}")
        assignments.append((key.lower(), key, value.strip()))
    if queue is None:
        if not implicit_queue:
            raise SubmitError(f"{origin}: no queue statement")
        queue = ""
    return SubmitLines(assignments, queue)


# condor_submit's macro references (config.cpp, next_config_macro): a "$" (or "$" + an ASCII word) right
# before "(" may start one. In $(...) and $ENV(...) the body must be a macro name -- letters, digits and
# "_", "." or "/" -- optionally followed by ":" and a default value, which may also hold "$", blanks, ","
# and backslashes. A body with any other character (a shell "$(cat n.txt || echo 0)", an arithmetic "$((n+1))") is not
# a reference: condor_submit leaves it as written, and so does this reader. Expansion repeats, leftmost
# reference first, until none is left (a value's own references are expanded in later rounds); $(DOLLAR)
# becomes "$" only at the end, so "$(DOLLAR)(x)" stays the text "$(x)".
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./")
_DEFAULT_CHARS = _NAME_CHARS | frozenset("$ ,\\")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
# condor_submit's other macro functions (case-sensitive, as there): refused, not silently mis-expanded.
_UNSUPPORTED_FUNCTIONS = {"RANDOM_CHOICE", "RANDOM_INTEGER", "SUBSTR", "INT", "REAL", "STRING", "EVAL"}
_UNSUPPORTED_FUNCTIONS |= {"BASENAME", "DIRNAME"}
_FILENAME_FUNCTION = frozenset("pnxdqabfwuPNXDQABFWU")  # $F[pnxdq...](...)
_MAX_EXPANSIONS = 10_000  # references expanded in one value: more means a circular definition
_MAX_EXPANDED = 1 << 20  # characters


def _reference_end(text: str, start: int) -> int | None:
    """Index of the ``)`` closing a macro-name body (``name`` or ``name:default``) that starts at
    ``start``, or None when the text there is not a macro reference (condor's MACRO_BODY_IDCHAR_COLON)."""
    allowed = _NAME_CHARS
    for index in range(start, len(text)):
        char = text[index]
        if char == ")":
            return index
        if char == ":" and allowed is _NAME_CHARS:
            allowed = _DEFAULT_CHARS
        elif char not in allowed:
            return None
    return None


def _is_dollar(body: str) -> bool:
    return body.upper() == "DOLLAR"


class _Macros:
    """Lazy, case-insensitive macro namespace with condor_submit's ``$(...)`` expansion."""

    def __init__(self, defs: dict[str, str], env: dict[str, str], origin: str) -> None:
        self.defs = defs
        self.env = env
        self.origin = origin

    def get(self, name: str) -> str | None:
        return self.defs.get(name.lower())

    def expand(self, value: str) -> str:
        """``value`` with every macro reference replaced (see the rules above ``_reference_end``)."""
        if "$" not in value:
            return value
        text = value
        for _ in range(_MAX_EXPANSIONS):
            found = self._next_reference(text)
            if found is None:
                return self._dollars(text)
            start, end, replacement = found
            text = text[:start] + replacement + text[end:]
            if len(text) > _MAX_EXPANDED:
                break
        raise SubmitError(
            f"{self.origin}: macro expansion too deep (a circular definition?) in {value[:80]!r}"
        )

    def _next_reference(self, text: str) -> tuple[int, int, str] | None:
        """(start, end, replacement) of the leftmost macro reference in ``text``, or None."""
        position = 0
        while True:
            dollar = text.find("$", position)
            if dollar < 0:
                return None
            word_start = dollar + 1
            double = text.startswith("$", word_start)
            if double:
                word_start += 1
            paren = word_start
            while paren < len(text) and text[paren] in _WORD_CHARS:
                paren += 1
            position = max(paren, dollar + 1)
            if paren >= len(text) or text[paren] != "(" or double:
                # not "$word(": literal text. "$$(...)" is a job-ad reference, evaluated per process later;
                # condor_submit still expands macros inside it, so scanning goes on inside.
                continue
            word = text[word_start:paren]
            if word in ("", "ENV"):
                end = _reference_end(text, paren + 1)
                if end is None:
                    continue  # "$(" of a shell command substitution and the like: left as written
                body = text[paren + 1 : end]
                if word == "" and _is_dollar(body):
                    position = end + 1  # $(DOLLAR) is replaced at the very end
                    continue
                return dollar, end + 1, self._env(body) if word else self._lookup(body)
            if word == "CHOICE":
                end = _matching(text, paren, self.origin)
                return dollar, end + 1, self._choice(text[paren + 1 : end])
            if word in _UNSUPPORTED_FUNCTIONS or (word[0] == "F" and set(word[1:]) <= _FILENAME_FUNCTION):
                raise SubmitError(f"{self.origin}: submit macro function ${word}() is not supported locally")
            # "$word(" that condor_submit does not know: left as written, like condor_submit does

    def _lookup(self, body: str) -> str:
        """Value of ``name`` or ``name:default`` (the default when the macro is undefined or empty)."""
        name, colon, default = body.partition(":")
        found = self.get(name)
        if colon and not found:
            return default
        return found or ""

    def _dollars(self, text: str) -> str:
        """Replace each ``$(DOLLAR)`` by ``$`` (left to right, the result not scanned again)."""
        if "$(" not in text:
            return text
        out: list[str] = []
        position = 0
        while (dollar := text.find("$(", position)) >= 0:
            end = _reference_end(text, dollar + 2)
            if end is not None and _is_dollar(text[dollar + 2 : end]):
                out.append(text[position:dollar] + "$")
                position = end + 1
            else:
                out.append(text[position : dollar + 2])
                position = dollar + 2
        out.append(text[position:])
        return "".join(out)

    def _env(self, body: str) -> str:
        name, _, default = body.partition(":")
        if not name:
            raise SubmitError(f"{self.origin}: $ENV() needs a variable name")
        return self.env.get(name, default)

    def _choice(self, body: str) -> str:
        args = [a.strip() for a in _split_commas(self.expand(body))]
        if len(args) < 2:
            raise SubmitError(f"{self.origin}: $CHOICE(index, item, ...) needs an index and items")
        raw = self.get(args[0])
        raw = self.expand(raw) if raw is not None else args[0]
        index = {"true": 1, "false": 0}.get(raw.strip().lower())
        if index is None:
            try:
                index = int(raw)
            except ValueError:
                raise SubmitError(f"{self.origin}: $CHOICE index {args[0]!r} is not an integer") from None
        if not 0 <= index < len(args) - 1:
            raise SubmitError(f"{self.origin}: $CHOICE index {index} out of range")
        return args[index + 1]


def _matching(text: str, open_index: int, origin: str) -> int:
    """Index of the ``)`` closing the ``(`` at ``open_index``."""
    depth = 0
    for j in range(open_index, len(text)):
        if text[j] == "(":
            depth += 1
        elif text[j] == ")":
            depth -= 1
            if depth == 0:
                return j
    raise SubmitError(f"{origin}: unbalanced parentheses in {text!r}")


def _split_commas(text: str) -> list[str]:
    parts, depth, current = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def split_arguments(value: str) -> list[str]:
    """HTCondor ``arguments``: new syntax if the value is wrapped in double quotes, else old syntax.

    Old syntax splits on blanks and turns ``\\"`` into ``"``. New syntax splits on blanks, groups words in
    single quotes (``''`` is a literal ``'``) and writes a literal ``"`` as ``""``.
    """
    v = value.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return _split_new_syntax(v[1:-1])
    if '"' in v.replace('\\"', ""):
        raise SubmitError(f"arguments {value!r}: an unescaped double quote in old-syntax arguments")
    return [word.replace('\\"', '"') for word in v.split()]


def _split_new_syntax(text: str) -> list[str]:
    args: list[str] = []
    current: list[str] = []
    started = False
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch == '"':
            if i + 1 < n and text[i + 1] == '"':
                current.append('"')
                started = True
                i += 2
                continue
            raise SubmitError(f'arguments {text!r}: a double quote must be written as "" in new syntax')
        if ch == "'":
            started = True
            i += 1
            while True:
                if i >= n:
                    raise SubmitError(f"arguments {text!r}: unterminated single quote")
                if text[i] == "'":
                    if i + 1 < n and text[i + 1] == "'":
                        current.append("'")
                        i += 2
                        continue
                    i += 1
                    break
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        current.append('"')
                        i += 2
                        continue
                    raise SubmitError(f'arguments {text!r}: a double quote must be written as ""')
                current.append(text[i])
                i += 1
            continue
        if ch in " \t\n":
            if started:
                args.append("".join(current))
                current, started = [], False
            i += 1
            continue
        current.append(ch)
        started = True
        i += 1
    if started:
        args.append("".join(current))
    return args


def parse_environment(value: str) -> dict[str, str]:
    """HTCondor ``environment``: new syntax ``"a=1 b='x y'"`` or old syntax ``a=1;b=2``."""
    v = value.strip()
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        items = _split_new_syntax(v[1:-1])
    else:
        items = [item for item in v.split(";") if item.strip()]
    env: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise SubmitError(f"environment {value!r}: {item!r} is not name=value")
        name, val = item.split("=", 1)
        env[name.strip()] = val
    return env


def _getenv(value: str, base: dict[str, str]) -> dict[str, str]:
    v = value.strip()
    low = v.lower()
    if low in ("true", "yes", "1"):
        return dict(base)
    if low in ("false", "no", "0", ""):
        return {}
    patterns = [p for p in re.split(r"[,\s]+", v) if p]
    keep: dict[str, str] = {}
    for name, val in base.items():
        upper = name.upper()
        if any(fnmatch.fnmatchcase(upper, p.upper()) for p in patterns if not p.startswith("!")) and not any(
            fnmatch.fnmatchcase(upper, p[1:].upper()) for p in patterns if p.startswith("!")
        ):
            keep[name] = val
    return keep


def _queue_items(queue: str, macros: _Macros, submit_dir: Path, origin: str) -> list[dict[str, str]]:
    """Expand a queue statement into one dict of item variables per process."""
    text = macros.expand(queue).strip()
    m = re.match(r"^(\d+)?\s*(.*)$", text, re.S)
    assert m
    count = int(m.group(1)) if m.group(1) else 1
    rest = m.group(2).strip()
    if not rest:
        return [{} for _ in range(count)]
    m = re.match(r"^(?:(.*?)\s+)?(in|from)\s+(.*)$", rest, re.S | re.I)
    if not m:
        if re.search(r"\bmatching\b", rest, re.I):
            raise SubmitError(f"{origin}: 'queue ... matching' is not supported locally")
        raise SubmitError(f"{origin}: cannot read queue statement {queue!r}")
    names = [n for n in re.split(r"[,\s]+", (m.group(1) or "").strip()) if n] or ["Item"]
    source = m.group(3).strip()
    if m.group(2).lower() == "in":
        if not (source.startswith("(") and source.endswith(")")):
            raise SubmitError(f"{origin}: 'queue ... in' needs a (list)")
        rows = [r.strip() for r in re.split(r"[,\n]", source[1:-1]) if r.strip()]
        if len(names) == 1:
            rows = [w for r in rows for w in r.split()]
    else:
        if source.startswith("("):
            raise SubmitError(f"{origin}: 'queue ... from (inline list)' is not supported locally")
        path = Path(source)
        path = path if path.is_absolute() else submit_dir / path
        try:
            text = decode_bytes(read_regular_bytes(path, "queue item"), "queue item file")
        except InputProblem as problem:
            raise SubmitError(f"{origin}: queue item file {path}: {problem.reason}") from None
        rows = [r.strip() for r in text.splitlines() if r.strip() and not r.startswith("#")]
    items: list[dict[str, str]] = []
    for row in rows:
        fields = [row] if len(names) == 1 else re.split(r"[,\s]+", row, maxsplit=len(names) - 1)
        fields += [""] * (len(names) - len(fields))
        item = {name.lower(): value for name, value in zip(names, fields, strict=True)}
        items.extend(dict(item) for _ in range(count))
    return items


def build_job(
    text: str,
    origin: str,
    *,
    submit_dir: Path,
    cluster: int,
    prepend: dict[str, str],
    append: dict[str, str],
    base_env: dict[str, str],
    dag_attributes: dict[str, str],
    prohibit_multi: bool = False,
    inline: bool = False,
) -> JobSpec:
    """Read a submit description into a :class:`JobSpec` (one :class:`ProcSpec` per queued process).

    ``prepend`` macros are defined before the description is read (a definition in the file wins),
    ``append`` macros after it (they win). ``dag_attributes`` are job-ad attributes DAGMan adds
    (``DAGNodeName``, ``DAGParentNodeNames``, ...); values are ClassAd expression texts.
    """
    lines = read_submit_text(text, origin, implicit_queue=inline)
    defs: dict[str, str] = dict(PREDEFINED)
    original: dict[str, str] = {}
    for key, value in prepend.items():
        _define(defs, _macro_key(key), value)
        original.setdefault(_macro_key(key), _attr_name(key))
    for low, key, value in lines.assignments:
        _define(defs, low, value)
        original[low] = key
    for key, value in append.items():
        _define(defs, _macro_key(key), value)
        original[_macro_key(key)] = _attr_name(key)
    for low in defs:
        if low in REFUSED:
            raise SubmitError(f"{origin}: {original.get(low, low)}: {REFUSED[low]}")
    defs[_CLUSTER_KEYS[0]] = defs[_CLUSTER_KEYS[1]] = str(cluster)
    macros = _Macros(defs, base_env, origin)

    universe = macros.expand(defs.get("universe", "vanilla")).strip().lower()
    if universe not in LOCAL_UNIVERSES:
        raise SubmitError(f"{origin}: universe = {universe}: only vanilla, scheduler and local run locally")
    log_xml = macros.expand(defs.get("log_xml", "false")).strip().lower() in ("true", "yes", "1")

    items = _queue_items(lines.queue, macros, submit_dir, origin)
    if not items:
        raise SubmitError(f"{origin}: the queue statement queues no jobs")
    if prohibit_multi and len(items) > 1:
        raise SubmitError(f"{origin}: queues {len(items)} jobs but DAGMAN_PROHIBIT_MULTI_JOBS is set")

    kill_sig = signal.SIGTERM
    if "kill_sig" in defs:
        name = macros.expand(defs["kill_sig"]).strip().upper()
        try:
            kill_sig = (
                int(name)
                if name.isdigit()
                else int(getattr(signal, name if name.startswith("SIG") else "SIG" + name))
            )
        except (AttributeError, ValueError):
            raise SubmitError(f"{origin}: kill_sig = {name}: unknown signal") from None
    vacate = None
    if "job_max_vacate_time" in defs:
        try:
            vacate = float(macros.expand(defs["job_max_vacate_time"]))
        except ValueError:
            raise SubmitError(f"{origin}: job_max_vacate_time must be a number of seconds") from None

    procs: list[ProcSpec] = []
    log_path: Path | None = None
    attributes: dict[str, str] = {}
    for proc, item in enumerate(items):
        local = dict(defs)
        local.update(item)
        local[_PROC_KEYS[0]] = local[_PROC_KEYS[1]] = str(proc)
        local.setdefault("step", "0")
        local.setdefault("itemindex", str(proc))
        local.setdefault("row", str(proc))
        pm = _Macros(local, base_env, origin)

        def value(key: str, pm: _Macros = pm) -> str:
            raw = pm.get(key)
            return pm.expand(raw).strip() if raw is not None else ""

        iwd_text = value("initialdir") or value("iwd")
        iwd = submit_dir / iwd_text if iwd_text else submit_dir
        exe_text = value("executable")
        if not exe_text:
            raise SubmitError(f"{origin}: no executable")
        exe = Path(exe_text)
        exe = exe if exe.is_absolute() else submit_dir / exe
        if not os.path.isfile(exe):  # False, not OSError, for a name longer than the system allows
            raise SubmitError(f"{origin}: executable {exe} does not exist")
        attrs = dict(dag_attributes)
        for low, raw in local.items():
            if low.startswith("my."):
                attrs[original.get(low, low)[3:]] = pm.expand(raw)
        attrs.update(
            {
                "ClusterId": str(cluster),
                "ProcId": str(proc),
                "Iwd": _classad_string(str(iwd)),
                "Cmd": _classad_string(str(exe)),
                "JobUniverse": "5" if universe == "vanilla" else ("7" if universe == "scheduler" else "12"),
            }
        )
        raw_args = pm.get("arguments")
        arg_text = pm.expand(raw_args) if raw_args is not None else ""
        arg_text = _expand_job_ad_refs(arg_text, attrs, origin)
        env = _getenv(value("getenv"), base_env)
        env_raw = pm.get("environment") if pm.get("environment") is not None else pm.get("env")
        try:
            argv = [str(exe)] + split_arguments(arg_text)
            if env_raw is not None:
                env.update(parse_environment(_expand_job_ad_refs(pm.expand(env_raw), attrs, origin)))
        except SubmitError as exc:
            message = str(exc)
            raise SubmitError(message if message.startswith(origin) else f"{origin}: {message}") from None

        def stream(key: str, iwd: Path = iwd, value=value) -> Path | None:
            v = value(key)
            if not v or v == "/dev/null":
                return None
            return Path(v) if os.path.isabs(v) else iwd / v

        procs.append(ProcSpec(proc, argv, env, iwd, stream("input"), stream("output"), stream("error")))
        if proc == 0:
            log_path = stream("log")
            attributes = attrs
    tag = _job_tag(attributes)
    return JobSpec(cluster, procs, log_path, tag, attributes, kill_sig, vacate, log_xml)


def _define(defs: dict[str, str], key: str, value: str) -> None:
    """Define a macro; a reference to itself means its previous value (``X = $(X) more``, as condor_submit)."""
    if "$(" in value:
        pattern = re.compile(r"\$\(" + re.escape(key) + r"(?::[^)]*)?\)", re.I)
        if pattern.search(value):
            previous = defs.get(key, "")
            value = pattern.sub(lambda _m: previous, value)
    defs[key] = value


def _macro_key(key: str) -> str:
    if key.startswith("+"):
        return "my." + key[1:].lower()
    return key.lower()


def _attr_name(key: str) -> str:
    return "My." + key[1:] if key.startswith("+") else key


def _classad_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _expand_job_ad_refs(text: str, attributes: dict[str, str], origin: str) -> str:
    """Replace ``$$([expr])`` by the expression's value evaluated in the job ad."""
    if "$$(" not in text:
        return text
    out: list[str] = []
    i = 0
    while True:
        j = text.find("$$(", i)
        if j < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:j])
        end = _matching(text, j + 2, origin)
        body = text[j + 3 : end]
        if not (body.startswith("[") and body.endswith("]")):
            raise SubmitError(f"{origin}: $$({body}) refers to a machine attribute; that needs a pool")
        out.append(_eval_in_ad(body[1:-1], attributes, origin))
        i = end + 1


def _eval_in_ad(expression: str, attributes: dict[str, str], origin: str) -> str:
    from autosplit._condor import condor_module  # classad2 lazily: only descriptions with $$([...]) need it

    classad2 = condor_module("classad2", f"{origin}: evaluating $$([{expression}])")

    ad = classad2.ClassAd()
    for name, expr in attributes.items():
        try:
            ad[name] = classad2.ExprTree(expr)
        except Exception:
            raise SubmitError(
                f"{origin}: attribute {name} = {expr!r} is not a valid ClassAd expression"
            ) from None
    try:
        result = classad2.ExprTree(expression).eval(ad)
    except Exception as exc:
        raise SubmitError(f"{origin}: cannot evaluate $$([{expression}]): {exc}") from None
    if isinstance(result, classad2.Value):
        raise SubmitError(f"{origin}: $$([{expression}]) evaluates to {result.name}")
    if isinstance(result, bool):
        return "true" if result else "false"
    return str(result)


def _job_tag(attributes: dict[str, str]) -> str:
    """Jobstate-log tag: ``+job_tag_name`` names the attribute holding it, else ``+pegasus_site``, else ``-``."""
    lower = {k.lower(): v for k, v in attributes.items()}
    name = lower.get("job_tag_name")
    value = None
    if name is not None:
        value = lower.get(_unquote(name).lstrip("+").lower())
    if value is None:
        value = lower.get("pegasus_site")
    return _unquote(value) if value else "-"


def _unquote(text: str) -> str:
    t = text.strip()
    if len(t) >= 2 and t[0] == '"' and t[-1] == '"':
        return t[1:-1]
    return t
