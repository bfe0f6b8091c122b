"""Path safety: names from job reports must stay inside their root.

Two layers:

* :func:`safe_relpath` checks a relative name lexically (no absolute path, no ``..``, no NUL, not empty)
  when files are registered, so a bad job report fails early with a clear message;
* :func:`open_dir` walks a relative directory path one component at a time with ``O_NOFOLLOW`` directory
  file descriptors (``openat``), creating missing components with mode 0700. A symbolic link anywhere
  below the root is refused (even one pointing inside), and because every later operation (open, rename,
  unlink) is relative to the returned descriptor, a symlink swapped in after the check cannot redirect
  it either. The root itself may be a symlink: it is the operator's choice, not the job's.

Files are created with mode 0600 and directories with 0700 (owner only).
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

from autosplit.aso.errors import UnsafePathError

FILE_MODE = 0o600
DIR_MODE = 0o700
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def safe_relpath(name: str, what: str = "path") -> str:
    """Normalise a relative POSIX path from a job report; raise :class:`UnsafePathError` if it could escape.

    ``a//b/./c`` becomes ``a/b/c``; ``..`` anywhere, absolute paths, empty names, NUL bytes and
    backslashes are refused.
    """
    if not isinstance(name, str) or not name.strip():
        raise UnsafePathError(f"{what} {name!r} is empty; give a path relative to its root")
    if "\x00" in name or "\\" in name:
        raise UnsafePathError(f"{what} {name!r} contains a NUL byte or backslash")
    if name.startswith("/"):
        raise UnsafePathError(f"{what} {name!r} is absolute; give a path relative to its root")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise UnsafePathError(f"{what} {name!r} contains '..'; it must stay inside its root")
    if not parts:
        raise UnsafePathError(f"{what} {name!r} names no file")
    for part in parts:
        if len(part.encode()) > 255:
            raise UnsafePathError(f"{what} {name!r} has a component longer than 255 bytes")
    return "/".join(parts)


def safe_component(name: str, what: str = "name") -> str:
    """A single path component (task name, job id) that is safe to use as a directory name."""
    text = safe_relpath(str(name), what)
    if "/" in text:
        raise UnsafePathError(f"{what} {name!r} must not contain '/'")
    return text


def check_inside(root: str | os.PathLike[str], relpath: str) -> Path:
    """``root / relpath`` after checking that its existing part does not resolve outside ``root``.

    This is the early, registration-time check (it follows symlinks to see where they lead); the
    transfer itself relies on :func:`open_dir`, which refuses symlinks outright.
    """
    rel = safe_relpath(relpath)
    base = Path(root).resolve()
    target = base / rel
    probe = target
    while not probe.exists() and probe != base:
        probe = probe.parent
    resolved = probe.resolve()
    if resolved != base and base not in resolved.parents:
        raise UnsafePathError(f"{relpath!r} leads outside {root} (through a symbolic link to {resolved})")
    return target


def open_dir(root: str, parts: list[str] | tuple[str, ...], *, create: bool) -> int:
    """Open ``root/parts...`` as a directory descriptor without following symlinks below ``root``.

    Missing components are created with mode 0700 when ``create`` is true (the root too). The caller
    closes the returned descriptor. Raises :class:`UnsafePathError` when a component is a symlink or not a
    directory, and ``FileNotFoundError`` when a component is missing and ``create`` is false.
    """
    if create:
        ensure_private_dir(root)
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts:
            if part in ("", ".", "..") or "/" in part:
                raise UnsafePathError(f"unsafe path component {part!r} under {root}")
            try:
                next_fd = _open_child_dir(part, fd)
            except FileNotFoundError:
                if not create:
                    raise
                try:
                    os.mkdir(part, DIR_MODE, dir_fd=fd)
                except FileExistsError:
                    pass
                next_fd = _open_child_dir(part, fd)
            os.close(fd)
            fd = next_fd
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_child_dir(part: str, dir_fd: int) -> int:
    try:
        return os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafePathError(
                f"{part!r} is a symbolic link or not a directory; refusing to follow it"
            ) from None
        raise


def split_parent(relpath: str) -> tuple[list[str], str]:
    """``'a/b/c.root'`` -> ``(['a', 'b'], 'c.root')`` after :func:`safe_relpath`."""
    parts = safe_relpath(relpath).split("/")
    return parts[:-1], parts[-1]


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and any missing parents with mode 0700; return it. Existing directories keep their mode.

    (``os.makedirs`` applies its mode to the leaf only; here every directory created is private.)
    """
    target = Path(path).absolute()
    missing = []
    probe = target
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            pass
    if not target.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(target))
    return target
