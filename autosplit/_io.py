"""Small file helpers shared by the formats autosplit writes and reads (standard library only)."""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_text(path: str | os.PathLike[str], text: str, *, fsync: bool = False) -> Path:
    """Write ``text`` to a temporary file next to ``path``, then rename: readers never see half a file."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            if fsync:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600) -> Path:
    """Write ``data`` to a temporary file (permissions ``mode``) next to ``path``, then rename it there."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def parse_json(text: str, origin: str, error: type[Exception]) -> Any:
    """``json.loads(text)``; malformed text raises ``error`` naming ``origin`` and the line.

    So do documents nested deeper than Python's recursion allows and integers too long to convert (more
    than 4300 digits): never a RecursionError or ValueError.
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{origin}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except RecursionError:
        raise error(
            f"{origin}: JSON nested too deeply to read (thousands of levels of [ or {{); "
            "this is not the expected document"
        ) from None
    except ValueError:  # an integer literal with more digits than Python converts
        raise error(f"{origin}: not valid JSON (a number has too many digits)") from None


_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _not_regular(mode: int) -> str | None:
    """What a non-regular file is (``"a FIFO (named pipe)"``, ...), or None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in _FILE_KINDS if test(mode)), "not a regular file")


class InputProblem(Exception):
    """Why an input file cannot be read: ``reason`` (no file name in it); ``missing`` if it does not exist.

    Raised by :func:`check_regular_file`, :func:`read_regular_bytes` and :func:`decode_bytes`; readers turn it
    into their own error class (:func:`read_input_bytes` does), so the messages are the same everywhere.
    """

    def __init__(self, reason: str, *, missing: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.missing = missing


def _problem(exc: OSError | ValueError, what: str) -> InputProblem:
    if isinstance(exc, FileNotFoundError):
        return InputProblem(f"cannot read {what}: no such file", missing=True)
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(str(exc))
    return InputProblem(f"cannot read {what} ({reason})")  # ValueError: a path with a NUL character


def check_regular_file(path: str | os.PathLike[str], what: str) -> None:
    """Raise :class:`InputProblem` unless ``path`` is an existing regular file (not a directory, FIFO, ...)."""
    try:
        kind = _not_regular(os.stat(path).st_mode)
    except (OSError, ValueError) as exc:
        raise _problem(exc, what) from None
    if kind is not None:
        raise InputProblem(f"is {kind}, not a regular file; give the path of a {what} file")


def read_regular_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    """The bytes of the regular file ``path``, else :class:`InputProblem`. A FIFO is refused before it is
    opened for reading (and opened without blocking, should it appear after the check), so a FIFO without
    a writer cannot hang the reader."""
    check_regular_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
        try:
            kind = _not_regular(os.fstat(fd).st_mode)
            if kind is not None:
                raise InputProblem(f"is {kind}, not a regular file; give the path of a {what} file")
            os.set_blocking(fd, True)
            with os.fdopen(fd, "rb", closefd=False) as handle:
                return handle.read()
        finally:
            os.close(fd)
    except (OSError, ValueError) as exc:
        raise _problem(exc, what) from None


def decode_bytes(data: bytes, what: str) -> str:
    """``data`` as UTF-8 text (a leading byte-order mark is dropped); binary data: :class:`InputProblem`."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputProblem(
            f"not a text file (byte 0x{data[exc.start]:02x} at offset {exc.start} is not UTF-8); "
            f"expected a {what}"
        ) from None


def read_input_bytes(
    path: str | os.PathLike[str], error: type[Exception], what: str, *, missing: str | None = None
) -> bytes:
    """:func:`read_regular_bytes` for readers with their own error class: every failure raises ``error`` with
    one line naming the file (a missing file: ``missing`` if given, else "cannot read <what>: no such file";
    a directory, FIFO, socket or device; any other OS error)."""
    try:
        return read_regular_bytes(path, what)
    except InputProblem as problem:
        raise error(missing if problem.missing and missing else f"{path}: {problem.reason}") from None


def require_regular_file(
    path: str | os.PathLike[str], error: type[Exception], what: str, *, missing: str | None = None
) -> None:
    """Raise ``error`` unless ``path`` is an existing regular file (for readers that open it themselves)."""
    try:
        check_regular_file(path, what)
    except InputProblem as problem:
        raise error(missing if problem.missing and missing else f"{path}: {problem.reason}") from None


def decode_text(data: bytes, origin: str, error: type[Exception], what: str) -> str:
    """:func:`decode_bytes`, binary data raising ``error`` naming ``origin``."""
    try:
        return decode_bytes(data, what)
    except InputProblem as problem:
        raise error(f"{origin}: {problem.reason}") from None


def read_input_text(
    path: str | os.PathLike[str], error: type[Exception], what: str, *, missing: str | None = None
) -> str:
    """:func:`read_input_bytes` decoded with :func:`decode_text`."""
    return decode_text(read_input_bytes(path, error, what, missing=missing), str(path), error, what)


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (every run of whitespace, newlines included, becomes one blank), at most
    ``limit`` characters (cut with an ellipsis)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, for echoing bad input in an error message."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # a deeply nested list; an int too long to print
        text = f"<{type(value).__name__}>"
    return one_line(text, limit)


def load_json_source(source: str | os.PathLike[str], error: type[Exception], what: str) -> tuple[Any, str]:
    """``(data, origin)`` from JSON text (a string starting with ``{``) or a file path.

    An unreadable, binary or non-regular file or malformed JSON raises ``error`` naming the file and
    ``what`` it should hold.
    """
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text, origin = source, "JSON text"
    else:
        origin = str(source)
        text = read_input_text(source, error, what)
    return parse_json(text, origin, error), origin


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars (integers, floats, booleans) and arrays (numpy imported lazily),
    else ``str``."""
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    return str(value)
