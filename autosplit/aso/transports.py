"""Transports: how bytes move from a site's temporary area to the destination.

The agent talks to a :class:`Transport` and never touches files itself, so other protocols (xrootd, WebDAV,
FTS, ...) plug in by implementing the same few methods and registering a factory for their URL scheme
(:func:`register_transport`). The built-in :class:`PosixTransport` serves plain paths and ``file://`` URLs.

A copy first goes to a temporary name next to its final name (``.aso-<id>.part`` for POSIX), is verified by
the agent, and only then renamed, so a final name only ever holds a complete, verified file. The temporary
name is fixed per transfer id and locked (``flock``) while a copy writes it: an agent that died leaves a
partial file that the next agent overwrites, while an agent that is merely slow still holds the lock and
is never overwritten under its feet.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from autosplit.aso.checksums import CHUNK_BYTES, Checksum
from autosplit.aso.errors import TransferCancelled, TransferError, UnsafePathError
from autosplit.aso.paths import FILE_MODE, open_dir, split_parent

TEMP_SUFFIX = ".aso-part"


def temp_name(transfer_id: str) -> str:
    """The temporary file name of a transfer (in its destination directory)."""
    return f".aso-{transfer_id}{TEMP_SUFFIX}"


@dataclass(frozen=True)
class Location:
    """A file: ``root`` (a path or URL chosen by the operator) and ``path`` (relative, from the job)."""

    root: str
    path: str

    def __str__(self) -> str:
        return f"{self.root.rstrip('/')}/{self.path}"

    @property
    def scheme(self) -> str:
        return url_scheme(self.root)


def url_scheme(root: str) -> str:
    """``'root://eos//x'`` -> ``'root'``; plain paths -> ``''``."""
    return urlsplit(root).scheme if "://" in root else ""


class PartialCopy(ABC):
    """A copy written to its temporary name: ``size`` (bytes) and ``checksum`` (hex) of what was written.

    ``commit()`` renames it to the final name; leaving the ``with`` block without committing removes it.
    """

    size: int
    checksum: str

    @abstractmethod
    def commit(self) -> None: ...

    @abstractmethod
    def discard(self) -> None: ...

    def __enter__(self) -> PartialCopy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


class Transport(ABC):
    """What the agent needs from a storage protocol. Methods raise :class:`TransferError` on failure."""

    #: URL schemes this transport serves ("" = plain path).
    schemes: tuple[str, ...] = ()

    @abstractmethod
    def stat(self, location: Location) -> int | None:
        """Size in bytes, or None if the file does not exist (a symlink or special file is an error)."""

    @abstractmethod
    def checksum(self, location: Location, algorithm: str) -> str:
        """Checksum (hex) of an existing file."""

    @abstractmethod
    def copy(
        self,
        source: Location,
        dest: Location,
        transfer_id: str,
        algorithm: str,
        *,
        cancel: threading.Event | None = None,
    ) -> PartialCopy:
        """Copy ``source`` to the temporary name of ``dest``, computing the checksum of the bytes written.

        Raises :class:`TransferCancelled` when ``cancel`` is set meanwhile.
        """

    @abstractmethod
    def discard(self, dest: Location, transfer_id: str) -> bool:
        """Remove a leftover temporary copy of this transfer (unless a live copy holds it); true if removed."""

    @abstractmethod
    def remove(self, location: Location) -> bool:
        """Delete a file (the temp copy after DONE); false if it was already gone."""


# -- failure classification -----------------------------------------------------------------------------

_PERMANENT_ERRNO = {
    errno.EACCES: "permission",
    errno.EPERM: "permission",
    errno.EROFS: "permission",
    errno.EDQUOT: "quota",
    errno.ELOOP: "unsafe-path",
    errno.ENOTDIR: "unsafe-path",
    errno.EISDIR: "bad-path",
    errno.ENAMETOOLONG: "bad-path",
}

# Messages of transports that only give text (gfal, xrootd, FTS), after CRAB3's ServerUtilities.STAGEOUT_ERRORS.
_MESSAGE_RULES: tuple[tuple[re.Pattern[str], str, bool], ...] = (
    (re.compile(r"no such file|not found|does not exist|ENOENT", re.I), "missing-source", True),
    (
        re.compile(r"permission denied|not authori[sz]ed|forbidden|\b403\b|login|mkdir failed", re.I),
        "permission",
        True,
    ),
    (re.compile(r"quota|\b507\b|insufficient storage", re.I), "quota", True),
    (re.compile(r"all pools are full", re.I), "quota", True),
    (re.compile(r"checksum mismatch|checksum.*(differ|does not match)", re.I), "checksum-mismatch", False),
    (re.compile(r"timed? ?out|timeout", re.I), "timeout", False),
    (re.compile(r"connection refused|connection reset|unreachable", re.I), "connection", False),
)


def classify_message(message: str) -> tuple[str, bool]:
    """``(kind, permanent)`` for a failure described only by text; unknown messages are recoverable."""
    for pattern, kind, permanent in _MESSAGE_RULES:
        if pattern.search(message):
            return kind, permanent
    return "io", False


def classify_os_error(exc: OSError, what: str, *, source_side: bool) -> TransferError:
    """Turn an ``OSError`` on ``what`` into a :class:`TransferError` with kind and permanence.

    A missing source is permanent (the temp copy is gone); a missing destination directory is not (it may
    have been removed while we worked). A full disk (ENOSPC) is recoverable; a quota (EDQUOT) is not.
    """
    reason = f"{what}: {exc.strerror or exc}"
    if exc.errno == errno.ENOENT and source_side:
        return TransferError(reason, kind="missing-source", permanent=True)
    kind = _PERMANENT_ERRNO.get(exc.errno or 0)
    if kind is not None:
        return TransferError(reason, kind=kind, permanent=True)
    if exc.errno == errno.ENOSPC:
        return TransferError(reason, kind="no-space", permanent=False)
    return TransferError(reason, kind="io", permanent=False)


# -- POSIX -------------------------------------------------------------------------------------------------


def local_root(root: str) -> str:
    """The filesystem path of a plain-path or ``file://`` root."""
    if root.startswith("file://"):
        return urlsplit(root).path or "/"
    return root


class PosixTransport(Transport):
    """Copies between local (or network-mounted) filesystems.

    ``fsync``: flush each copy (and its directory after the rename) to stable storage before it counts as
    done, so a machine crash cannot leave an empty final file (seconds: roughly one disk flush per file).
    ``max_rate``: cap each copy at this many bytes per second (None: no cap); it keeps a site link from
    being saturated by one agent.
    """

    schemes = ("", "file")

    def __init__(
        self, *, chunk_bytes: int = CHUNK_BYTES, fsync: bool = True, max_rate: float | None = None
    ) -> None:
        self.chunk_bytes = int(chunk_bytes)
        self.fsync = fsync
        self.max_rate = float(max_rate) if max_rate else None

    # Every file operation below walks from the root with O_NOFOLLOW directory descriptors.

    def _open_parent(self, location: Location, *, create: bool) -> tuple[int, str]:
        parents, name = split_parent(location.path)
        return open_dir(local_root(location.root), parents, create=create), name

    def stat(self, location: Location) -> int | None:
        try:
            dir_fd, name = self._open_parent(location, create=False)
        except FileNotFoundError:
            return None
        except (OSError, UnsafePathError) as exc:
            raise _as_transfer_error(exc, str(location), source_side=False) from None
        try:
            info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise classify_os_error(exc, str(location), source_side=False) from None
        finally:
            os.close(dir_fd)
        if stat.S_ISLNK(info.st_mode):
            raise TransferError(
                f"{location} is a symbolic link; refusing to follow it", kind="unsafe-path", permanent=True
            )
        if not stat.S_ISREG(info.st_mode):
            raise TransferError(f"{location} is not a regular file", kind="bad-path", permanent=True)
        return info.st_size

    def checksum(self, location: Location, algorithm: str) -> str:
        fd = self._open_file(location, source_side=False)
        digest = Checksum(algorithm)
        try:
            with open(fd, "rb", buffering=0, closefd=False) as handle:
                while chunk := handle.read(self.chunk_bytes):
                    digest.update(chunk)
        except OSError as exc:
            raise classify_os_error(exc, str(location), source_side=False) from None
        finally:
            os.close(fd)
        return digest.hexdigest()

    def _open_file(self, location: Location, *, source_side: bool) -> int:
        try:
            dir_fd, name = self._open_parent(location, create=False)
        except (OSError, UnsafePathError) as exc:
            raise _as_transfer_error(exc, str(location), source_side=source_side) from None
        try:
            return os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError as exc:
            raise classify_os_error(exc, str(location), source_side=source_side) from None
        finally:
            os.close(dir_fd)

    def copy(
        self,
        source: Location,
        dest: Location,
        transfer_id: str,
        algorithm: str,
        *,
        cancel: threading.Event | None = None,
    ) -> PartialCopy:
        src_fd = self._open_file(source, source_side=True)
        try:
            part = _PosixPart.open(self, dest, transfer_id)
            try:
                part.fill(src_fd, algorithm, cancel)
            except BaseException:
                part.discard()
                raise
        finally:
            os.close(src_fd)
        return part

    def discard(self, dest: Location, transfer_id: str) -> bool:
        try:
            dir_fd, _ = self._open_parent(dest, create=False)
        except FileNotFoundError:
            return False
        except (OSError, UnsafePathError) as exc:
            raise _as_transfer_error(exc, str(dest), source_side=False) from None
        name = temp_name(transfer_id)
        try:
            fd = os.open(name, os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        except FileNotFoundError:
            os.close(dir_fd)
            return False
        except OSError as exc:
            os.close(dir_fd)
            raise classify_os_error(exc, f"{dest} (temporary copy)", source_side=False) from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a live copy holds it; it cleans up after itself
            if _same_file(fd, name, dir_fd):
                os.unlink(name, dir_fd=dir_fd)
                return True
            return False
        finally:
            os.close(fd)
            os.close(dir_fd)

    def remove(self, location: Location) -> bool:
        parents, name = split_parent(location.path)
        root = local_root(location.root)
        try:
            grand_fd = open_dir(root, parents[:-1], create=False)
        except FileNotFoundError:
            return False
        except (OSError, UnsafePathError) as exc:
            raise _as_transfer_error(exc, str(location), source_side=False) from None
        try:
            if parents:
                try:
                    dir_fd = os.open(
                        parents[-1],
                        os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                        dir_fd=grand_fd,
                    )
                except FileNotFoundError:
                    return False
                except OSError as exc:
                    raise classify_os_error(exc, str(location), source_side=False) from None
            else:
                dir_fd = os.dup(grand_fd)
            try:
                os.unlink(name, dir_fd=dir_fd)
                removed = True
            except FileNotFoundError:
                removed = False
            except OSError as exc:
                raise classify_os_error(exc, str(location), source_side=False) from None
            finally:
                os.close(dir_fd)
            if parents:
                # the job-attempt directory of the temp area, once its last file is gone
                try:
                    os.rmdir(parents[-1], dir_fd=grand_fd)
                except OSError:
                    pass
            return removed
        finally:
            os.close(grand_fd)


class _PosixPart(PartialCopy):
    """The locked temporary file of one POSIX copy."""

    def __init__(
        self, transport: PosixTransport, dest: Location, dir_fd: int, final_name: str, temp: str, fd: int
    ) -> None:
        self.transport = transport
        self.dest = dest
        self.dir_fd = dir_fd
        self.final_name = final_name
        self.temp = temp
        self.fd = fd
        self.size = 0
        self.checksum = ""
        self._closed = False

    @classmethod
    def open(cls, transport: PosixTransport, dest: Location, transfer_id: str) -> _PosixPart:
        try:
            dir_fd, final_name = transport._open_parent(dest, create=True)
        except (OSError, UnsafePathError) as exc:
            raise _as_transfer_error(exc, str(dest), source_side=False) from None
        name = temp_name(transfer_id)
        fd = -1
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            for _ in range(5):
                try:  # the usual case: no leftover; a fresh file is empty and owner-only already
                    fd = os.open(name, flags | os.O_EXCL, FILE_MODE, dir_fd=dir_fd)
                    fresh = True
                except FileExistsError:
                    fd = os.open(name, flags, FILE_MODE, dir_fd=dir_fd)
                    fresh = False
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    raise TransferError(
                        f"{dest}: another agent is still writing this transfer", kind="busy", permanent=False
                    ) from None
                if _same_file(fd, name, dir_fd):
                    break
                # the previous holder removed the name between our open and our lock: open it again
                os.close(fd)
                fd = -1
            else:
                raise TransferError(
                    f"{dest}: temporary copy keeps disappearing", kind="busy", permanent=False
                )
            if not fresh:  # a dead agent's partial copy: overwrite it, owner-only
                os.ftruncate(fd, 0)
                os.fchmod(fd, FILE_MODE)
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            os.close(dir_fd)
            if isinstance(exc, OSError):
                raise classify_os_error(exc, f"{dest} (temporary copy)", source_side=False) from None
            raise
        return cls(transport, dest, dir_fd, final_name, name, fd)

    def fill(self, src_fd: int, algorithm: str, cancel: threading.Event | None) -> None:
        transport = self.transport
        digest = Checksum(algorithm)
        # small files get a small buffer: zeroing 1 MiB per file would cost more than copying it
        expected = os.fstat(src_fd).st_size
        buffer = bytearray(max(65536, min(transport.chunk_bytes, expected + 1)))
        view = memoryview(buffer)
        written = 0
        start = time.monotonic()
        source = open(src_fd, "rb", buffering=0, closefd=False)
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    raise TransferCancelled(f"{self.dest}: agent stopping")
                try:
                    n = source.readinto(buffer)
                except OSError as exc:
                    raise classify_os_error(
                        exc, f"reading source for {self.dest}", source_side=True
                    ) from None
                if not n:
                    break
                chunk = view[:n]
                digest.update(chunk)
                try:
                    _write_all(self.fd, chunk)
                except OSError as exc:
                    raise classify_os_error(exc, f"{self.dest} (temporary copy)", source_side=False) from None
                written += n
                if transport.max_rate:
                    ahead = written / transport.max_rate - (time.monotonic() - start)
                    if ahead > 0:
                        if cancel is not None:
                            cancel.wait(ahead)
                        else:
                            time.sleep(ahead)
            if transport.fsync:
                os.fsync(self.fd)
        finally:
            source.close()
            view.release()
        self.size = written
        self.checksum = digest.hexdigest()

    def commit(self) -> None:
        try:
            os.replace(self.temp, self.final_name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            if self.transport.fsync:
                os.fsync(self.dir_fd)
        except OSError as exc:
            raise classify_os_error(exc, f"{self.dest} (rename into place)", source_side=False) from None
        self._close()

    def discard(self) -> None:
        if self._closed:
            return
        try:
            if _same_file(self.fd, self.temp, self.dir_fd):
                os.unlink(self.temp, dir_fd=self.dir_fd)
        except OSError:
            pass
        self._close()

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            os.close(self.fd)  # releases the lock
            os.close(self.dir_fd)


def _same_file(fd: int, name: str, dir_fd: int) -> bool:
    """Does ``name`` (in ``dir_fd``) still refer to the open file ``fd``?"""
    try:
        on_disk = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _write_all(fd: int, data: memoryview) -> None:
    while data:
        n = os.write(fd, data)
        data = data[n:]


def _as_transfer_error(exc: BaseException, what: str, *, source_side: bool) -> TransferError:
    if isinstance(exc, UnsafePathError):
        return TransferError(f"{what}: {exc}", kind="unsafe-path", permanent=True)
    if isinstance(exc, FileNotFoundError) and not source_side:
        return TransferError(f"{what}: directory vanished", kind="io", permanent=False)
    assert isinstance(exc, OSError)
    return classify_os_error(exc, what, source_side=source_side)


# -- registry ----------------------------------------------------------------------------------------------

_FACTORIES: dict[str, Callable[[], Transport]] = {"": PosixTransport, "file": PosixTransport}


def register_transport(scheme: str, factory: Callable[[], Transport]) -> None:
    """Make ``factory()`` the transport for destination roots of URL scheme ``scheme`` (``'root'``, ``'davs'``)."""
    _FACTORIES[scheme] = factory


def make_transport(scheme: str) -> Transport:
    """A new transport instance for ``scheme``; raises :class:`TransferError` (permanent) if none is known."""
    factory = _FACTORIES.get(scheme)
    if factory is None:
        raise TransferError(
            f"no transport for URL scheme {scheme!r} (known: {', '.join(repr(s) for s in sorted(_FACTORIES))})",
            kind="no-transport",
            permanent=True,
        )
    return factory()
