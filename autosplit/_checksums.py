"""adler32 of a file, as CMS records it (8 lowercase hex digits), streamed in chunks (constant memory).

Standard library only, so the job-side API (:mod:`autosplit.worker`) stays light to import; stage-out
(:mod:`autosplit.aso`) uses the same function.
"""

from __future__ import annotations

import os
import zlib

CHUNK_BYTES = 1 << 20


def adler32_file(path: str | os.PathLike[str], chunk_bytes: int = CHUNK_BYTES) -> str:
    """CMS-style adler32 checksum of a file, as 8 hex digits."""
    value = 1
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            value = zlib.adler32(chunk, value)
    return f"{value & 0xFFFFFFFF:08x}"
