"""Small file helpers shared by the formats autosplit writes and reads (standard library only)."""

from __future__ import annotations

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


def read_json_source(source: str | os.PathLike[str], error: type[Exception], what: str) -> tuple[str, str]:
    """``(text, origin)`` from JSON text (a string starting with ``{``) or a file path.

    An unreadable file raises ``error`` naming the file and ``what`` it should hold.
    """
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return source, "JSON text"
    origin = str(source)
    try:
        return Path(source).read_text(), origin
    except OSError as exc:
        raise error(f"{origin}: cannot read {what} ({exc.strerror or exc})") from None


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
