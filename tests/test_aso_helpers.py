"""Shared helpers of the stage-out tests (no tests here): a task with staged outputs, delivery checks."""

from __future__ import annotations

import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from autosplit.aso import (
    AgentConfig,
    FlowLimits,
    RetryPolicy,
    StagedFile,
    TransferDB,
    register_outputs,
    stage_to_temp,
)
from autosplit.aso.transports import TEMP_SUFFIX


@dataclass
class AsoTask:
    """A task whose jobs staged outputs into a site temp area, registered in ``db``."""

    root: Path
    db_path: Path
    temp_root: Path
    dest_root: Path
    task: str = "t1"
    expected: dict[str, bytes] = field(default_factory=dict)  # dest_path -> content
    staged: dict[tuple[str, int], list[StagedFile]] = field(default_factory=dict)  # (job, attempt) -> files

    def db(self) -> TransferDB:
        return TransferDB(self.db_path)

    def dest(self, dest_path: str) -> Path:
        return self.dest_root / dest_path

    def source(self, staged: StagedFile) -> Path:
        return self.temp_root / staged.source_path


def fast_config(**changes) -> AgentConfig:
    """Short leases and polls, immediate retries: tests run in fractions of a second."""
    values = dict(
        workers=2,
        prefetch=2,
        lease_seconds=0.5,
        poll_seconds=0.01,
        housekeeping_seconds=0.05,
        retry=RetryPolicy(max_retries=2, backoff_base=0.0),
        flow=FlowLimits(),
    )
    values.update(changes)
    return AgentConfig(**values)


def make_task(
    tmp_path: Path,
    *,
    jobs: int = 4,
    files_per_job: int = 5,
    sizes: tuple[int, int] = (100, 5000),
    seed: int = 0,
    dest_sites: tuple[str, ...] = ("local",),
    checksum_algo: str = "adler32",
    register: bool = True,
    extra_sizes: tuple[int, ...] = (),
) -> AsoTask:
    """Write random outputs for ``jobs`` jobs, stage them to a site temp area and (optionally) register them.

    ``extra_sizes``: additional files (bytes) for the last job, e.g. a few large ones.
    """
    rng = np.random.default_rng(seed)
    task = AsoTask(
        tmp_path, tmp_path / "aso" / "aso.sqlite", tmp_path / "temp" / "T2_SITE", tmp_path / "dest"
    )
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir(exist_ok=True)
    for job in range(jobs):
        outputs = {}
        n_sizes = [int(s) for s in rng.integers(sizes[0], sizes[1] + 1, files_per_job)]
        if job == jobs - 1:
            n_sizes += list(extra_sizes)
        for index, size in enumerate(n_sizes):
            content = rng.bytes(size)
            local = sandbox / f"job{job}_{index}.root"
            local.write_bytes(content)
            dest_path = f"user/{task.task}/job{job}/out_{index}.root"
            outputs[str(local)] = dest_path
            task.expected[dest_path] = content
        staged = stage_to_temp(
            outputs,
            task.temp_root,
            task=task.task,
            job_id=f"job-{job}",
            attempt=0,
            checksum_algo=checksum_algo,
        )
        task.staged[(f"job-{job}", 0)] = staged
        if register:
            register_outputs(
                task.db_path,
                task.task,
                f"job-{job}",
                0,
                staged,
                temp_root=task.temp_root,
                destination_root=task.dest_root,
                source_site="T2_SITE",
                dest_site=dest_sites[job % len(dest_sites)],
            )
    return task


def files_under(root: Path) -> list[Path]:
    return sorted(Path(d) / f for d, _, names in os.walk(root) for f in names) if root.exists() else []


def assert_delivered(task: AsoTask) -> None:
    """Every expected file is at its destination once, with the right bytes; no temporary file anywhere;
    nothing left in the site temp area; every row DONE."""
    found = {p.relative_to(task.dest_root).as_posix() for p in files_under(task.dest_root)}
    assert not [f for f in found if f.endswith(TEMP_SUFFIX)], "temporary copies left at the destination"
    assert found == set(task.expected), (
        f"missing {set(task.expected) - found}, extra {found - set(task.expected)}"
    )
    for dest_path, content in task.expected.items():
        data = task.dest(dest_path).read_bytes()
        assert zlib.adler32(data) == zlib.adler32(content) and data == content, dest_path
    assert files_under(task.temp_root) == [], "site temp copies left behind"
    with task.db() as db:
        states = {r.state for r in db.rows()}
    assert states == {"DONE"}, states
