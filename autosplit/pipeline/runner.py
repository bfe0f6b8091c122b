"""``autosplit run``: submit on the local backend (or resume) and follow the task to its end.

The executor runs detached, so interrupting ``run`` (Ctrl-C, a lost terminal, SIGKILL) loses nothing:
starting ``run`` again finds the task directory, restarts the executor if it is not running (it resumes the
DAG without re-running finished nodes; the ledger keeps done units done) and follows again. An executor
that dies while ``run`` follows it is restarted as long as the task makes progress between two deaths
(units done or given up, jobs bound or decided); after ``MAX_RESTARTS`` deaths in a row without any,
``run`` gives up with the executor's log.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autosplit.pipeline.config import load_config
from autosplit.pipeline.control import active_dags, start
from autosplit.pipeline.status import FINAL_STATES, task_status
from autosplit.pipeline.submit import create_task_from_config
from autosplit.pipeline.taskdir import TaskDir, TaskError

MAX_RESTARTS = 3  # executor deaths in a row without progress of the task in between


def resolve_task(argument: str | os.PathLike[str], workdir: str | None = None) -> TaskDir:
    """A task directory from its path, or from the task TOML that made it."""
    path = Path(argument)
    if path.is_file() and path.suffix == ".toml":
        config = load_config(path)
        root = (
            Path(workdir).resolve() / config.task.name
            if workdir
            else Path(config.task.workdir) / config.task.name
        )
        return TaskDir(root).require()
    return TaskDir(path).require()


def submit_or_resume(
    config_path: str | os.PathLike[str], *, workdir: str | None = None, backend: str | None = None
) -> tuple[TaskDir, bool]:
    """Create the task (True) or reopen the existing one made from the same file (False)."""
    config = load_config(config_path)
    if workdir:
        config.task.workdir = str(Path(workdir).resolve())
    if backend:
        config.backend.kind = backend  # type: ignore[assignment]
    root = Path(config.task.workdir) / config.task.name
    existing = TaskDir(root)
    if existing.exists():
        if existing.config.task.name != config.task.name:
            raise TaskError(f"{root} holds task {existing.config.task.name!r}, not {config.task.name!r}")
        return existing, False
    return create_task_from_config(config, Path(config_path)), True


def run(
    config_path: str | os.PathLike[str],
    *,
    workdir: str | None = None,
    poll: float = 1.0,
    timeout: float | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Submit (or resume) on the local backend and wait for the end; returns the final status."""
    task, _ = submit_or_resume(config_path, workdir=workdir, backend="local")
    if task_status(task)["state"] not in FINAL_STATES and not active_dags(task):
        start(task, _dag_to_resume(task))
    return follow(task, poll=poll, timeout=timeout, on_update=on_update, restart=True)


def follow(
    task: TaskDir,
    *,
    poll: float = 1.0,
    timeout: float | None = None,
    on_update: Callable[[dict[str, Any]], None] | None = None,
    restart: bool = True,
) -> dict[str, Any]:
    """Poll the task's status until it ends, restarting a local executor that died (``restart``)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    restarts = 0  # since the task last made progress
    seen_progress: str | None = None
    idle_polls = 0
    while True:
        status = task_status(task)
        if on_update:
            on_update(status)
        if status["state"] in FINAL_STATES and not active_dags(task):
            return status
        if deadline is not None and time.monotonic() > deadline:
            return status
        if not active_dags(task) and task.config.backend.kind == "local":
            idle_polls += 1
            # Give a just-started executor a moment to take its lock before deciding it died.
            if idle_polls >= 3:
                progress = _progress(status)
                if progress != seen_progress:
                    seen_progress, restarts = progress, 0
                if not restart or restarts >= MAX_RESTARTS:
                    raise TaskError(
                        f"the local executor of {task.root} stopped before the task ended; see "
                        f"{task.dag_dir / 'task.executor.log'}"
                    )
                restarts += 1
                start(task, _dag_to_resume(task))
                idle_polls = 0
        else:
            idle_polls = 0
        time.sleep(poll)


def _progress(status: dict[str, Any]) -> str:
    """What changes whenever the task moves on: unit counts per state and job counts per stage and state."""
    import json

    stages = {name: stage.get("states") for name, stage in (status.get("stages") or {}).items()}
    return json.dumps([status.get("units"), stages], sort_keys=True, default=str)


def _dag_to_resume(task: TaskDir) -> Path:
    resubmits = sorted(task.dag_dir.glob("resubmit-*-top.dag"), key=lambda p: int(p.stem.split("-")[1]))
    return resubmits[-1] if resubmits else task.top_dag
