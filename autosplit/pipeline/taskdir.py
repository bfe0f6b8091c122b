"""The task directory: where a task keeps everything, private to its owner (mode 0700).

::

    <workdir>/<task>/
        task.toml            the configuration as given
        config.json          the resolved configuration (absolute paths, seconds)
        dataset.parquet      the dataset after the lumi mask: what the task must process
        ledger.sqlite        unit and job states (the truth)
        dag/                 task.dag, processing.dag, tail-K.dag, their status files and logs
        jobs/<node>/         spec.json, job.sub, report.json (+ report.<attempt>.json), job.out/err, out/
        outputs/             final outputs (default destination)
        logs/                predag/postjob/finalize logs
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from autosplit.errors import AutosplitError
from autosplit.ledger import Ledger
from autosplit.pipeline.config import TaskConfig, dump_config, read_resolved

if TYPE_CHECKING:  # the dataset (polars) is loaded only by what reads it; the job scripts do not
    from autosplit.datasets import Dataset

PRE_SKIP_CODE = 99


class TaskError(AutosplitError):
    """A task directory is missing, incomplete, or used in a way its state does not allow."""


CREATING = ".creating"


class _Creator:
    def __init__(self, pid: int, alive: bool) -> None:
        self.pid, self.alive = pid, alive


def _process_identity(pid: int) -> str:
    """``pid start-time``: a pid alone may be reused by another process once the first one is gone."""
    try:
        import psutil

        return f"{pid} {psutil.Process(pid).create_time():.3f}"
    except Exception:  # noqa: BLE001 - a process that cannot be inspected: its pid only
        return str(pid)


def _creator(marker: Path) -> _Creator | None:
    """The process named by a creation marker (and whether it still runs), or None without a marker."""
    try:
        text = marker.read_text()
    except FileNotFoundError:
        return None
    except OSError:
        return _Creator(-1, True)
    fields = text.split()
    try:
        pid = int(fields[0])
    except (IndexError, ValueError):
        return _Creator(-1, False)  # torn by a kill while it was written: that creation is gone
    if pid == os.getpid():
        return _Creator(pid, True)
    return _Creator(pid, _process_identity(pid) == text.strip())


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


class TaskDir:
    """Paths and lazily opened state of one task directory."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    # ------------------------------------------------------------------ paths
    @property
    def config_path(self) -> Path:
        return self.root / "config.json"

    @property
    def dataset_path(self) -> Path:
        return self.root / "dataset.parquet"

    @property
    def ledger_path(self) -> Path:
        return self.root / "ledger.sqlite"

    @property
    def dag_dir(self) -> Path:
        return self.root / "dag"

    @property
    def top_dag(self) -> Path:
        return self.dag_dir / "task.dag"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def event_log(self) -> Path:
        return self.dag_dir / "jobs.log"

    def stage_dag(self, stage: str) -> Path:
        return self.dag_dir / f"{stage}.dag"

    def job_dir(self, node: str) -> Path:
        return self.root / "jobs" / node

    def spec_path(self, node: str) -> Path:
        return self.job_dir(node) / "spec.json"

    def report_path(self, node: str) -> Path:
        return self.job_dir(node) / "report.json"

    def archived_report(self, node: str, attempt: int) -> Path:
        return self.job_dir(node) / f"report.{attempt}.json"

    def output_dir(self, node: str) -> Path:
        return self.job_dir(node) / "out"

    @property
    def transfer_db(self) -> Path:
        return self.root / "transfers.sqlite"

    @property
    def temp_root(self) -> Path:
        root = Path(self.config.output.temp_root)
        return root if root.is_absolute() else self.root / root

    @property
    def destination(self) -> Path:
        dest = Path(self.config.output.destination)
        return dest if dest.is_absolute() else self.root / dest

    @property
    def creating_marker(self) -> Path:
        """Exists while the task is being created (holds the creating process's pid and start time)."""
        return self.root / CREATING

    # ------------------------------------------------------------------ state
    def exists(self) -> bool:
        """A complete task directory (one still being created, or whose creation was killed, is not)."""
        return self.ledger_path.is_file() and self.config_path.is_file() and not self.creating_marker.exists()

    def require(self) -> TaskDir:
        if not self.exists():
            raise TaskError(f"{self.root}: not a task directory (no ledger.sqlite/config.json)")
        return self

    @cached_property
    def config(self) -> TaskConfig:
        return read_resolved(self.config_path)

    @cached_property
    def dataset(self) -> Dataset:
        from autosplit.datasets import Dataset

        return Dataset.from_parquet(self.dataset_path)

    def ledger(self) -> Ledger:
        return Ledger.open(self.ledger_path)

    @property
    def name(self) -> str:
        return self.config.task.name

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(cls, config: TaskConfig, source_toml: Path | None, root: Path | None = None) -> TaskDir:
        """Make the private directory tree and store the configuration."""
        root = Path(root) if root else Path(config.task.workdir) / config.task.name
        task = cls(root)
        if any(ch.isspace() for ch in str(task.root)):
            raise TaskError(
                f"{task.root}: the task directory path must not contain blanks (DAGMan arguments)"
            )
        if task.exists():
            raise TaskError(
                f"{task.root}: task already exists; run 'autosplit status {task.root}', or pick another name"
            )
        task._make_root()
        for path in (task.dag_dir, task.root / "jobs", task.logs_dir):
            _private_dir(path)
        if source_toml is not None:
            shutil.copyfile(source_toml, task.root / "task.toml")
        task.config_path.write_text(dump_config(config))
        task.__dict__["config"] = config
        return task

    def _make_root(self) -> None:
        """Create the task directory itself, atomically, marked as being created by this process.

        A directory that already exists is never adopted (nor chmod-ed, nor later removed): it belongs to
        someone else, or to another creation of the same task running now. The one exception is the
        leftover of a creation that was killed (its marker names a process that is gone): that directory
        is autosplit's own, half made, and is made anew.
        """
        self.root.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                os.mkdir(self.root, 0o700)
            except FileExistsError:
                owner = _creator(self.creating_marker)
                if owner is None:
                    what = "task" if self.exists() else "directory that is not an autosplit task"
                    raise TaskError(
                        f"{self.root}: a {what} is already there; pick another name or workdir "
                        "(autosplit never reuses a directory it did not create)"
                    ) from None
                if owner.alive:
                    raise TaskError(
                        f"{self.root}: the task is being created by process {owner.pid}; wait for it "
                        f"and run 'autosplit status {self.root}'"
                    ) from None
                shutil.rmtree(self.root)  # a killed creation's leftover (its marker says so)
                continue
            os.chmod(self.root, 0o700)
            marker = self.creating_marker.with_name(f"{CREATING}.{os.getpid()}")
            marker.write_text(_process_identity(os.getpid()))
            os.replace(marker, self.creating_marker)
            return
        raise TaskError(f"{self.root}: another creation keeps making this directory; try again")

    def creation_done(self) -> None:
        """The task is complete: it exists from now on."""
        self.creating_marker.unlink(missing_ok=True)

    def remove_failed_creation(self) -> None:
        """Remove the directory this process created and could not finish (never anyone else's)."""
        owner = _creator(self.creating_marker)
        if owner is not None and owner.pid == os.getpid():
            shutil.rmtree(self.root, ignore_errors=True)

    def make_job_dir(self, node: str) -> Path:
        """The node's private job directory and its ``out/`` (made again before each attempt). A job may
        have replaced either by a symbolic link (a loop, or a way out of the task): the link is removed,
        never followed, and a real directory made in its place."""
        path = self.job_dir(node)
        for directory in (path, path / "out"):
            if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
                directory.unlink()
            _private_dir(directory)
        return path

    # ------------------------------------------------------------------ commands run by DAG scripts
    @staticmethod
    def python() -> str:
        """The interpreter that runs autosplit here (jobs and scripts use the same environment)."""
        return sys.executable

    def script_argv(self, script: str, *args: str) -> list[str]:
        """argv of a DAG script: ``<python> -I -m autosplit.pipeline.<script> <args>``.

        Isolated mode (``-I``): the script imports the installed autosplit, never a directory named
        ``autosplit`` in the directory DAGMan runs it from, and ignores ``PYTHON*`` variables and the
        user's site directory. No shell, no blanks."""
        return [self.python(), "-I", "-m", f"autosplit.pipeline.{script}", *args]

    @property
    def closed_marker(self) -> Path:
        """Exists once the scheduler has nothing left to hand out (chain nodes then skip at once)."""
        return self.dag_dir / "closed"
