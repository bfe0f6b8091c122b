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

from autosplit.datasets import Dataset
from autosplit.errors import AutosplitError
from autosplit.ledger import Ledger
from autosplit.pipeline.config import TaskConfig, dump_config, read_resolved

PRE_SKIP_CODE = 99


class TaskError(AutosplitError):
    """A task directory is missing, incomplete, or used in a way its state does not allow."""


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

    # ------------------------------------------------------------------ state
    def exists(self) -> bool:
        return self.ledger_path.is_file() and self.config_path.is_file()

    def require(self) -> TaskDir:
        if not self.exists():
            raise TaskError(f"{self.root}: not a task directory (no ledger.sqlite/config.json)")
        return self

    @cached_property
    def config(self) -> TaskConfig:
        return read_resolved(self.config_path)

    @cached_property
    def dataset(self) -> Dataset:
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
        for path in (task.root, task.dag_dir, task.root / "jobs", task.logs_dir):
            _private_dir(path)
        if source_toml is not None:
            shutil.copyfile(source_toml, task.root / "task.toml")
        task.config_path.write_text(dump_config(config))
        task.__dict__["config"] = config
        return task

    def make_job_dir(self, node: str) -> Path:
        path = self.job_dir(node)
        _private_dir(path)
        _private_dir(path / "out")
        return path

    # ------------------------------------------------------------------ commands run by DAG scripts
    @staticmethod
    def python() -> str:
        """The interpreter that runs autosplit here (jobs and scripts use the same environment)."""
        return sys.executable

    def autosplit_argv(self, *args: str) -> list[str]:
        """argv for a DAG script: ``<python> -m autosplit <args>`` (no shell, no blanks)."""
        return [self.python(), "-m", "autosplit", *args]
