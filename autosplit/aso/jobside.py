"""Job side of stage-out: copy outputs to the site's temporary area, then register them for transfer.

The job wrapper calls :func:`stage_to_temp` (local copy, checksum computed while copying, files 0600 in
0700 directories) and puts the returned :class:`StagedFile` records in its job report; the files are then
registered with :func:`register_outputs` (by the wrapper, or by the postjob when a temporary-space budget
applies). Neither ever waits for the final transfer: the ASO agent does that.

Temporary-area layout: ``<temp_root>/<task>/<job_id>/<attempt>/<dest_path>``, where ``temp_root`` is the
site's temporary area (a directory per site in local runs).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from autosplit.aso.checksums import CHUNK_BYTES, Checksum, normalize_checksum
from autosplit.aso.db import TransferDB, using_db
from autosplit.aso.errors import RegistrationError, UnsafePathError
from autosplit.aso.flow import temp_space_allows
from autosplit.aso.paths import FILE_MODE, check_inside, open_dir, safe_component, safe_relpath
from autosplit.aso.records import InsertResult, NewTransfer
from autosplit.aso.transports import local_root, url_scheme

KINDS = ("output", "log")


@dataclass(frozen=True)
class StagedFile:
    """One output in a site's temporary area, as the job report records it.

    ``source_path`` is relative to the site's temporary root, ``dest_path`` relative to the destination
    root; ``size`` in bytes; ``checksum`` hex of ``checksum_algo`` (adler32 or sha256).
    """

    source_path: str
    dest_path: str
    size: int
    checksum: str
    checksum_algo: str = "adler32"
    kind: str = "output"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StagedFile:
        """Read a job-report record; raises :class:`RegistrationError` naming the bad field."""
        where = f"output record {dict(data)!r}"
        try:
            return cls(
                source_path=str(data["source_path"]),
                dest_path=str(data["dest_path"]),
                size=data["size"],
                checksum=str(data["checksum"]),
                checksum_algo=str(data.get("checksum_algo", "adler32")),
                kind=str(data.get("kind", "output")),
            )
        except KeyError as exc:
            raise RegistrationError(f"{where}: missing field {exc.args[0]!r}") from None


def stage_to_temp(
    outputs: Mapping[str | os.PathLike[str], str] | Iterable[tuple[str | os.PathLike[str], str]],
    temp_root: str | os.PathLike[str],
    *,
    task: str,
    job_id: str | int,
    attempt: int,
    checksum_algo: str = "adler32",
    kind: str = "output",
    fsync: bool = True,
) -> list[StagedFile]:
    """Copy each local output file to the site's temporary area; return the records to register.

    ``outputs`` maps a local file (the job's sandbox) to its path relative to the destination root, e.g.
    ``{"out.root": "user/task/out_12.root"}``. Each copy is written under a temporary name and renamed, so a
    staged file is always complete; re-staging the same attempt overwrites. Raises
    :class:`UnsafePathError` for destination names that could escape their root and ``OSError`` when a
    local file cannot be read.
    """
    pairs = list(outputs.items()) if isinstance(outputs, Mapping) else list(outputs)
    prefix = [safe_component(task, "task name"), safe_component(str(job_id), "job id"), str(int(attempt))]
    staged = []
    for local, dest_path in pairs:
        rel = safe_relpath(dest_path, "output name")
        source_path = "/".join([*prefix, rel])
        size, checksum = _copy_into(Path(local), os.fspath(temp_root), source_path, checksum_algo, fsync)
        staged.append(StagedFile(source_path, rel, size, checksum, checksum_algo, kind))
    return staged


def _copy_into(local: Path, root: str, relpath: str, algorithm: str, fsync: bool) -> tuple[int, str]:
    parts = relpath.split("/")
    digest = Checksum(algorithm)
    with open(local, "rb") as source:
        for tries in range(3):
            dir_fd = open_dir(root, parts[:-1], create=True)
            temp = f".stage-{secrets.token_hex(6)}.part"
            try:
                fd = os.open(
                    temp,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                    FILE_MODE,
                    dir_fd=dir_fd,
                )
            except FileNotFoundError:
                # the agent removed this (empty) directory between our open and create: try again
                os.close(dir_fd)
                if tries == 2:
                    raise
                continue
            except BaseException:
                os.close(dir_fd)
                raise
            break
        size = 0
        try:
            with open(fd, "wb") as out:
                while chunk := source.read(CHUNK_BYTES):
                    digest.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                out.flush()
                if fsync:
                    os.fsync(out.fileno())
            os.replace(temp, parts[-1], src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(temp, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        finally:
            os.close(dir_fd)
    return size, digest.hexdigest()


@dataclass(frozen=True)
class Registration:
    """Result of :func:`register_outputs`.

    ``admitted`` false means the site's temporary-space budget is exhausted and nothing was registered:
    the caller (postjob) should DEFER and register again later. ``inserted``/``existing`` count new and
    already registered files; ``superseded`` counts active rows of earlier attempts that were killed;
    ``site_usage_bytes`` is the site's temporary area in use after the call.
    """

    admitted: bool
    ids: tuple[str, ...]
    inserted: int
    existing: int
    superseded: int
    site_usage_bytes: int
    bytes: int


def register_outputs(
    db: TransferDB | str | os.PathLike[str],
    task: str,
    job_id: str | int,
    attempt: int,
    files: Sequence[StagedFile | Mapping[str, Any]],
    *,
    temp_root: str | os.PathLike[str],
    destination_root: str | os.PathLike[str],
    source_site: str = "local",
    dest_site: str = "local",
    temp_budget_bytes: int | None = None,
    supersede_older_attempts: bool = True,
) -> Registration:
    """Register a job attempt's staged outputs for asynchronous transfer (idempotent, one transaction).

    ``temp_root``: the site's temporary area the files were staged into; ``destination_root``: where they
    go (``dest_path`` is relative to it). Roots are plain paths or URLs of a registered transport. Names
    are checked (:class:`UnsafePathError` if one could leave its root) and sizes/checksums validated
    (:class:`RegistrationError`). Registering the same files again changes nothing.

    ``temp_budget_bytes``: per-site budget of the temporary area (bytes). If this job's files do not fit
    next to what the site already holds, nothing is registered and ``admitted`` is false; an empty area
    always accepts. With ``supersede_older_attempts``, earlier attempts' unfinished transfers of this job
    are killed (the newer attempt's outputs replace them).
    """
    records = [f if isinstance(f, StagedFile) else StagedFile.from_dict(f) for f in files]
    source_root = _root(temp_root)
    dest_root = _root(destination_root)
    rows = []
    for record in records:
        if record.kind not in KINDS:
            raise RegistrationError(f"{record.source_path}: kind must be one of {KINDS}, got {record.kind!r}")
        if isinstance(record.size, bool) or not isinstance(record.size, int) or record.size < 0:
            raise RegistrationError(
                f"{record.source_path}: size must be a non-negative integer (bytes), got {record.size!r}"
            )
        dest_path = safe_relpath(record.dest_path, "destination name")
        if not url_scheme(dest_root):
            check_inside(local_root(dest_root), dest_path)
        rows.append(
            NewTransfer(
                task=str(task),
                job_id=str(job_id),
                attempt=int(attempt),
                kind=record.kind,
                source_site=str(source_site),
                source_root=source_root,
                source_path=safe_relpath(record.source_path, "temporary name"),
                dest_site=str(dest_site),
                dest_root=dest_root,
                dest_path=dest_path,
                size=record.size,
                checksum_algo=record.checksum_algo,
                checksum=normalize_checksum(record.checksum, record.checksum_algo),
            )
        )
    if not rows:
        return Registration(True, (), 0, 0, 0, 0, 0)
    with using_db(db) as handle:
        result: InsertResult = handle.insert(
            rows, temp_budget_bytes=temp_budget_bytes, supersede_older_attempts=supersede_older_attempts
        )
    return Registration(
        result.admitted,
        result.ids,
        result.inserted,
        result.existing,
        result.superseded,
        result.site_usage_bytes,
        sum(r.size for r in rows),
    )


def _root(root: str | os.PathLike[str]) -> str:
    text = os.fspath(root)
    if not text:
        raise UnsafePathError("empty root path")
    if url_scheme(text):
        return text.rstrip("/") or text
    return os.path.abspath(local_root(text))


def site_temp_usage(db: TransferDB | str | os.PathLike[str], site: str) -> int:
    """Bytes in ``site``'s temporary area held by registered files whose temp copy is not yet removed."""
    with using_db(db) as handle:
        return handle.site_usage(site)


def can_accept_temp(
    db: TransferDB | str | os.PathLike[str], site: str, nbytes: int, budget_bytes: int | None
) -> bool:
    """May ``nbytes`` more be put in ``site``'s temporary area under ``budget_bytes``? (Empty area: always.)"""
    return temp_space_allows(site_temp_usage(db, site), nbytes, budget_bytes)
