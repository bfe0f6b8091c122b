"""File checksums: adler32 (as CMS records them: 8 lowercase hex digits) and sha256.

Both are computed by streaming the data in chunks, so files of any size use constant memory; the same
:class:`Checksum` objects are fed while copying, so a copy and its checksum cost one read.
"""

from __future__ import annotations

import hashlib
import os
import re
import zlib

from autosplit._checksums import CHUNK_BYTES, adler32_file
from autosplit.aso.errors import RegistrationError

ALGORITHMS = ("adler32", "sha256")
_HEX = {"adler32": re.compile(r"[0-9a-f]{8}"), "sha256": re.compile(r"[0-9a-f]{64}")}


class Checksum:
    """Incremental checksum: ``update(bytes)`` then ``hexdigest()``."""

    def __init__(self, algorithm: str = "adler32") -> None:
        if algorithm not in ALGORITHMS:
            raise RegistrationError(
                f"unknown checksum algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}"
            )
        self.algorithm = algorithm
        self._adler = 1
        self._sha = hashlib.sha256() if algorithm == "sha256" else None

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if self._sha is not None:
            self._sha.update(data)
        else:
            self._adler = zlib.adler32(data, self._adler)

    def hexdigest(self) -> str:
        if self._sha is not None:
            return self._sha.hexdigest()
        return f"{self._adler & 0xFFFFFFFF:08x}"


def file_checksum(path: str | os.PathLike[str], algorithm: str = "adler32") -> str:
    """Checksum of a whole file (hex), read in 1 MiB chunks."""
    if algorithm == "adler32":
        return adler32_file(path, CHUNK_BYTES)
    digest = Checksum(algorithm)
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def normalize_checksum(value: str, algorithm: str) -> str:
    """Validate a hex checksum for ``algorithm`` and return it lowercase (adler32 zero-padded to 8 digits).

    Accepts the ``"adler32:0a1b2c3d"`` prefixed form too. Raises :class:`RegistrationError` if malformed.
    """
    if algorithm not in ALGORITHMS:
        raise RegistrationError(
            f"unknown checksum algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}"
        )
    text = str(value).strip().lower()
    if text.startswith(algorithm + ":"):
        text = text[len(algorithm) + 1 :]
    if algorithm == "adler32" and 0 < len(text) < 8 and re.fullmatch(r"[0-9a-f]+", text):
        text = text.zfill(8)
    if not _HEX[algorithm].fullmatch(text):
        raise RegistrationError(f"checksum {value!r} is not a valid {algorithm} (hex) value")
    return text
