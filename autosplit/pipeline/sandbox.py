"""What a job without a shared filesystem takes along: the user's code (a sandbox) and the job-side zipapp.

* :func:`build_sandbox` packs the task's code directory (``[code] path``) into ``sandbox.tar.gz``, CRAB
  style: version-control, virtualenv and cache directories, compiled files and ROOT files are left out
  (plus ``[backend] sandbox_exclude`` patterns), and an archive above ``[backend] sandbox_limit_mb`` is an
  error that names the biggest files, instead of a slow submission that the pool would refuse anyway.
* :func:`build_zipapp` writes ``autosplit-job.pyz``: one file holding :mod:`autosplit.backends.condor_job`
  (its ``__main__``), autosplit's job-side modules (wrapper, worker, job report) and the pure-Python chirp
  client ``htchirp``. Starting it needs only a Python 3 standard library; the payload's own software
  (msgspec, numpy, uproot, ...) comes from the job interpreter named in the task.
"""

from __future__ import annotations

import fnmatch
import io
import os
import tarfile
import zipfile
from pathlib import Path

from autosplit.errors import AutosplitError

DEFAULT_EXCLUDES = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    "__pycache__",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    "*.pyc",
    "*.pyo",
    "*.root",
    "*.egg-info",
    "autosplit-tasks",
)
#: autosplit's modules a job needs (imported by the wrapper and the worker), relative to the package.
JOB_MODULES = (
    "__init__.py",
    "_version.py",
    "_lazy.py",
    "errors.py",
    "_io.py",
    "_checksums.py",
    "fjr.py",
    "jobreport.py",
    "worker.py",
    "pipeline/__init__.py",
    "pipeline/wrapper.py",
    "backends/__init__.py",
    "backends/condor_job.py",
)
ZIPAPP_MAIN = (
    "import sys, zipfile\n"
    "if zipfile.is_zipfile(sys.argv[0]) and sys.argv[0] not in sys.path:\n"
    "    sys.path.insert(0, sys.argv[0])\n"
    "from autosplit.backends.condor_job import main\n"
    "sys.exit(main())\n"
)
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


class SandboxError(AutosplitError):
    """The user's code cannot be packed for the job (too big, unreadable)."""


def _excluded(relative: str, patterns: tuple[str, ...]) -> bool:
    parts = relative.split("/")
    return any(fnmatch.fnmatch(part, pat) for part in parts for pat in patterns) or any(
        fnmatch.fnmatch(relative, pat) for pat in patterns
    )


def sandbox_members(
    code_dir: str | os.PathLike[str], exclude: list[str] | tuple[str, ...] = ()
) -> list[Path]:
    """Files of the code directory that go into the sandbox (sorted, relative paths)."""
    root = Path(code_dir)
    patterns = (*DEFAULT_EXCLUDES, *exclude)
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not _excluded((rel_dir / d).as_posix(), patterns))
        for name in sorted(filenames):
            relative = rel_dir / name
            path = root / relative
            if _excluded(relative.as_posix(), patterns) or not path.is_file():
                continue
            found.append(relative)
    return found


def build_sandbox(
    code_dir: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    limit_mb: float = 100.0,
    exclude: list[str] | tuple[str, ...] = (),
) -> Path:
    """Pack ``code_dir`` into ``dest`` (``.tar.gz``); :class:`SandboxError` when it exceeds ``limit_mb``."""
    root = Path(code_dir)
    dest = Path(dest)
    if not root.is_dir():
        raise SandboxError(f"{root}: the code directory ([code] path) does not exist")
    members = sandbox_members(root, exclude)
    limit = int(limit_mb * 1024 * 1024)
    sizes = {m: (root / m).stat().st_size for m in members}
    raw = sum(sizes.values())
    tmp = dest.with_name(dest.name + ".tmp")
    with tarfile.open(tmp, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        for member in members:
            info = tar.gettarinfo(str(root / member), arcname=member.as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mode = 0o755 if os.access(root / member, os.X_OK) else 0o644
            with open(root / member, "rb") as handle:
                tar.addfile(info, handle)
    packed = tmp.stat().st_size
    if packed > limit:
        tmp.unlink()
        biggest = sorted(sizes.items(), key=lambda kv: -kv[1])[:5]
        listing = ", ".join(f"{m.as_posix()} ({s / 1e6:.1f} MB)" for m, s in biggest)
        raise SandboxError(
            f"the sandbox of {root} is {packed / 1024 / 1024:.1f} MB packed ({raw / 1024 / 1024:.1f} MB of "
            f"{len(members)} files), above the limit of {limit_mb:g} MB; biggest: {listing}. Leave data out "
            'with [backend] sandbox_exclude = ["pattern", ...] (inputs travel separately), or raise '
            "[backend] sandbox_limit_mb"
        )
    os.replace(tmp, dest)
    return dest


def build_zipapp(dest: str | os.PathLike[str]) -> Path:
    """Write the job-side zipapp (see the module docstring) to ``dest``; returns it."""
    import autosplit

    package = Path(autosplit.__file__).resolve().parent
    dest = Path(dest)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:

        def add(arcname: str, data: bytes) -> None:
            info = zipfile.ZipInfo(arcname, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, data)

        add("__main__.py", ZIPAPP_MAIN.encode())
        for module in JOB_MODULES:
            add(f"autosplit/{module}", (package / module).read_bytes())
        try:
            import htchirp
        except ImportError:
            raise SandboxError(
                "the job-side zipapp needs htchirp (live progress and stop requests); install it with: "
                "pip install 'autosplit[condor]'"
            ) from None
        chirp_dir = Path(htchirp.__file__).resolve().parent
        for path in sorted(chirp_dir.glob("*.py")):
            add(f"htchirp/{path.name}", path.read_bytes())
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_bytes(b"#!/usr/bin/env python3\n" + buffer.getvalue())
    os.chmod(tmp, 0o755)
    os.replace(tmp, dest)
    return dest
