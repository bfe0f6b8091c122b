"""Committing a job's outputs to the task's destination ("direct" stage-out).

When the postjob accepts an attempt, the output files its report lists are copied from the job's output
directory to ``<destination>/<node>/<name>`` (temporary name, then rename; size and adler32 checksum
verified against the report). What a job run later writes never replaces committed outputs, so the
destination always matches the ledger. With ``[output] stage_out = "aso"`` the asynchronous stage-out
agent moves the files instead (:mod:`autosplit.aso`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from autosplit.errors import AutosplitError
from autosplit.jobreport import JobReport
from autosplit.worker import adler32_file


class OutputCommitError(AutosplitError):
    """An output named in a report is missing, outside the job's directory, or does not match its report."""


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
        return True
    except ValueError:
        return False


def commit_outputs(report: JobReport, job_output_dir: Path, destination: Path, node: str) -> list[Path]:
    """Copy the report's outputs to ``destination/node``; returns the final paths. Idempotent."""
    target_dir = destination / node
    committed = []
    for output in report.outputs:
        source = Path(output.name)
        if not source.is_absolute():
            source = job_output_dir / source
        if not _inside(source, job_output_dir) or source.is_symlink():
            raise OutputCommitError(f"output {output.name!r} of {node} is outside its output directory")
        relative = source.resolve().relative_to(job_output_dir.resolve())
        final = target_dir / relative
        if not _inside(final.parent, destination) and final.parent != destination:
            raise OutputCommitError(f"output {output.name!r} of {node} would land outside the destination")
        if final.exists() and (output.checksum is None or adler32_file(final) == output.checksum):
            committed.append(final)
            continue
        if not source.is_file():
            raise OutputCommitError(f"output {source} of {node} is missing")
        if output.bytes is not None and source.stat().st_size != output.bytes:
            raise OutputCommitError(
                f"output {source} of {node} has {source.stat().st_size} bytes, the report says {output.bytes}"
            )
        if output.checksum is not None and adler32_file(source) != output.checksum:
            raise OutputCommitError(
                f"output {source} of {node} does not match its checksum {output.checksum}"
            )
        final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = final.with_name(f".{final.name}.part")
        shutil.copyfile(source, tmp)
        os.chmod(tmp, 0o600)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        committed.append(final)
    return committed
