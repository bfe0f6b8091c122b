"""The lexical layer of the DAG language: a DAG file read into logical lines, and ``VARS`` value lists.

Rules follow DAGMan's new parser (``dag_parser.cpp``): lines are trimmed, empty lines and lines starting
with ``#`` or ``//`` are skipped, a trailing ``\\`` joins the next line, keywords are case-insensitive and
``-`` equals ``_`` in them (:func:`normalize_keyword`). ``INCLUDE`` is textual: the included file's lines
take its place. An inline submit description (``JOB A {`` ... ``}`` or ``@=TAG`` ... ``@TAG``) becomes
the ``block`` of its line. What each command means is in :mod:`~autosplit.backends.local.dag_commands`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from autosplit._io import InputProblem, decode_bytes, read_regular_bytes
from autosplit.backends.local.errors import DagParseError
from autosplit.backends.local.model import Location

VAR_KEY = re.compile(r"^\+?[A-Za-z_][A-Za-z0-9_.]*$")


def normalize_keyword(word: str) -> str:
    """``Abort-dag-on`` -> ``ABORT_DAG_ON`` (DAGMan compares keywords case-insensitively, ``-`` == ``_``)."""
    return word.upper().replace("-", "_")


@dataclass
class Line:
    """One logical line: its text (an inline description replaced by ``<inline>``) and where it starts."""

    text: str
    loc: Location
    block: str | None = None  # inline submit description attached to a JOB/FINAL/SUBMIT-DESCRIPTION line


def read_lines(
    path: Path, stack: tuple[Path, ...], where: Location | None, resolve: Callable[[str], Path]
) -> list[Line]:
    """The logical lines of a DAG file, INCLUDEd files expanded in place (``stack``: files being read,
    for the recursion check; ``where``: the INCLUDE line; ``resolve``: a file name as written -> its path)."""
    try:
        raw = decode_bytes(read_regular_bytes(path, "DAG"), "DAG file").splitlines()
    except InputProblem as problem:
        loc = where or Location(str(path), 0)
        about = "" if where is None else f"{path}: "  # the top-level file is named by the location already
        raise DagParseError(
            loc.file, loc.line, "INCLUDE" if where else "DAG", about + problem.reason
        ) from None
    display = str(path)
    out: list[Line] = []
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
            target = resolve(words[1])
            if target.resolve() in stack:
                raise DagParseError(display, start, "INCLUDE", f"recursive DAG file parsing of {target}")
            out.extend(read_lines(target, stack + (target.resolve(),), loc, resolve))
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
        out.append(Line(text, loc, block))
    return out


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
