"""Committing a job's outputs to the task's destination ("direct" stage-out).

When the postjob accepts an attempt, the output files its report lists are moved from the job's output
directory to ``<destination>/<node>/<name>`` (renamed on the same file system, else copied under a
temporary name and renamed; size and adler32 checksum verified against the report first). What a job run
later writes never replaces committed outputs, so the destination always matches the ledger. With
``[output] stage_out = "aso"`` the asynchronous stage-out agent moves the files instead
(:mod:`autosplit.aso`).

A report is untrusted input (the payload wrote it). Where a file goes is decided here, from what the ledger
knows — the node (the job), and the file's name relative to the node's own output directory — never from
the report: a name that is absolute elsewhere, climbs out (``..``), or reaches its file through a symbolic
link (the output directory itself replaced by a link included) is refused, and every directory and file is
opened without following links (``O_NOFOLLOW`` at every level), so nothing from outside the job's
directory is committed.

A postjob killed half-way through a commit leaves files under ``<destination>/<node>/`` for an attempt the
ledger never accepted; the next attempt's postjob replaces them (accepted) or removes them
(:func:`discard_outputs`), so committed outputs always match the ledger's accepted attempts.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from autosplit.errors import AutosplitError
from autosplit.jobreport import JobReport

_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class OutputCommitError(AutosplitError):
    """An output named in a report is missing, outside the job's directory, or does not match its report."""


def output_relpath(name: str, job_output_dir: Path) -> PurePosixPath:
    """The report's output ``name`` as a clean path relative to the job's output directory.

    Absolute names must lie inside ``job_output_dir`` (compared as written, no link resolved); the result
    has no ``..``, ``.`` or empty component. Raises :class:`OutputCommitError` otherwise.
    """
    if not isinstance(name, str) or not name or "\x00" in name:
        raise OutputCommitError(f"output name {name!r} is not a file name")
    path = PurePosixPath(name)
    if path.is_absolute():
        base = PurePosixPath(os.path.abspath(job_output_dir))
        try:
            path = PurePosixPath(os.path.normpath(path)).relative_to(base)
        except ValueError:
            raise OutputCommitError(f"output {name!r} is outside the job's output directory") from None
    parts = path.parts
    if not parts or any(p in ("..", ".", "") for p in parts):
        raise OutputCommitError(f"output {name!r} is outside the job's output directory")
    return PurePosixPath(*parts)


class _Dirs:
    """Directory descriptors opened without following links, cached by relative path."""

    def __init__(self, root_fd: int, *, create: bool) -> None:
        self.fds: dict[PurePosixPath, int] = {PurePosixPath(): root_fd}
        self.create = create

    def get(self, relative: PurePosixPath) -> int:
        fd = self.fds.get(relative)
        if fd is not None:
            return fd
        parent = self.get(relative.parent)
        name = relative.name
        if self.create:
            try:
                os.mkdir(name, 0o700, dir_fd=parent)
            except FileExistsError:
                pass
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            raise OutputCommitError(f"{relative}: not a directory of its own ({exc.strerror})") from None
        self.fds[relative] = fd
        return fd

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def _open_dir(path: Path, what: str, *, create: bool = False) -> int:
    if create:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        return os.open(path, _DIR_FLAGS)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise OutputCommitError(f"{what} {path} is a link or not a directory") from None
        raise OutputCommitError(f"{what} {path}: {exc.strerror}") from None


def _check_file(dir_fd: int, name: str, relative: PurePosixPath, node: str, output) -> bool:
    """Check one output against its report entry; False when it is not there (any more)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    except OSError as exc:  # ELOOP: a link
        raise OutputCommitError(f"output {relative} of {node} cannot be used ({exc.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OutputCommitError(f"output {relative} of {node} is not a regular file")
        if output.bytes is not None and info.st_size != output.bytes:
            raise OutputCommitError(
                f"output {relative} of {node} has {info.st_size} bytes, the report says {output.bytes}"
            )
        if output.checksum is not None:
            value = 1
            while chunk := os.read(fd, _CHUNK):
                value = zlib.adler32(chunk, value)
            if f"{value & 0xFFFFFFFF:08x}" != output.checksum:
                raise OutputCommitError(
                    f"output {relative} of {node} does not match its checksum {output.checksum}"
                )
    finally:
        os.close(fd)
    return True


def _copy_between(src_fd: int, name: str, dst_fd: int, tmp: str) -> None:
    """Copy ``name`` (in directory ``src_fd``) to ``tmp`` (in directory ``dst_fd``), mode 0600, synced."""
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
    try:
        out = os.open(
            tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dst_fd
        )
        try:
            while chunk := os.read(fd, _CHUNK):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(out, view) :]
            os.fsync(out)
        finally:
            os.close(out)
    finally:
        os.close(fd)


def commit_outputs(report: JobReport, job_output_dir: Path, destination: Path, node: str) -> list[Path]:
    """Move the report's outputs from the job's output directory to ``destination/node``; returns the
    final paths. Idempotent: a file already moved by an earlier, killed run counts when it matches.

    Every file is checked first (inside the job's directory, reached without a link, a regular file,
    size and checksum as reported); then the file system is flushed once and each file is renamed into
    place (copied under a temporary name and renamed, across file systems). A report of thousands of
    outputs costs one sync and a few system calls per file; nothing is half-written at the destination.
    """
    if os.sep in node or node in ("", ".", ".."):
        raise OutputCommitError(f"node name {node!r} cannot name a directory")
    job_output_dir = Path(os.path.abspath(job_output_dir))
    plan: list[tuple[PurePosixPath, Any]] = []
    seen: set[PurePosixPath] = set()
    for output in report.outputs:
        relative = output_relpath(output.name, job_output_dir)
        if relative not in seen:
            seen.add(relative)
            plan.append((relative, output))
    target_dir = destination / node
    if not plan:
        return []
    sources = _Dirs(_open_dir(job_output_dir, "the job's output directory"), create=False)
    targets = None
    try:
        targets = _Dirs(_open_dir(target_dir, "the destination", create=True), create=True)
        moves: list[tuple[int, str, int, PurePosixPath]] = []
        for relative, output in plan:
            name = relative.name
            src_fd = sources.get(relative.parent)
            dst_fd = targets.get(relative.parent)
            if _check_file(src_fd, name, relative, node, output):
                moves.append((src_fd, name, dst_fd, relative))
            elif output.checksum is None or not _check_file(dst_fd, name, relative, node, output):
                raise OutputCommitError(f"output {relative} of {node} is missing")
            # else: moved by an earlier run of this postjob, killed before it recorded the attempt
        if moves and not _syncfs(moves[0][0]):
            os.sync()  # the data reaches the disk before any name points at it
        for src_fd, name, dst_fd, relative in moves:
            try:
                os.replace(name, name, src_dir_fd=src_fd, dst_dir_fd=dst_fd)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise OutputCommitError(
                        f"output {relative} of {node} cannot be committed ({exc.strerror})"
                    ) from None
                tmp = f".{name}.part"  # another file system: copy, then rename there
                _copy_between(src_fd, name, dst_fd, tmp)
                os.replace(tmp, name, src_dir_fd=dst_fd, dst_dir_fd=dst_fd)
        for fd in targets.fds.values():
            try:
                os.fsync(fd)
            except OSError:
                pass
    finally:
        sources.close()
        if targets is not None:
            targets.close()
    return [target_dir.joinpath(*relative.parts) for relative, _ in plan]


def _syncfs(fd: int) -> bool:
    """Flush the file system holding ``fd`` once (Linux ``syncfs``); False where that is not available."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).syncfs(fd) == 0
    except (OSError, AttributeError):
        return False


def discard_outputs(destination: Path, node: str) -> bool:
    """Remove what an attempt of ``node`` the ledger did not accept left at the destination (a postjob
    killed between commit and record). Returns True when something was removed."""
    if os.sep in node or node in ("", ".", ".."):
        return False
    target = destination / node
    if target.is_symlink():
        target.unlink()
        return True
    if not target.exists():
        return False
    shutil.rmtree(target)
    return True


__all__ = ["OutputCommitError", "commit_outputs", "discard_outputs", "output_relpath"]
