"""Small file helpers shared by the formats autosplit writes and reads (standard library only)."""

from __future__ import annotations

import json
import os
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


def parse_json(text: str, origin: str, error: type[Exception]) -> Any:
    """``json.loads(text)``; malformed text raises ``error`` naming ``origin`` and the line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{origin}: not valid JSON ({exc.msg} at line {exc.lineno})") from None


def load_json_source(source: str | os.PathLike[str], error: type[Exception], what: str) -> tuple[Any, str]:
    """``(data, origin)`` from JSON text (a string starting with ``{``) or a file path.

    An unreadable file or malformed JSON raises ``error`` naming the file and ``what`` it should hold.
    """
    if isinstance(source, str) and source.lstrip().startswith("{"):
        text, origin = source, "JSON text"
    else:
        origin = str(source)
        try:
            text = Path(source).read_text()
        except OSError as exc:
            raise error(f"{origin}: cannot read {what} ({exc.strerror or exc})") from None
    return parse_json(text, origin, error), origin


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars and arrays (imported lazily), else ``str``."""
    import numpy as np

    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
