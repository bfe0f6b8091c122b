"""Creating a task: resolve the dataset, fill the ledger, write the top DAG.

``task.dag`` holds the task's chains of job nodes (:mod:`autosplit.pipeline.stages`: each node binds its
job from the scheduler when its turn comes, probes first), the ``tail-1`` sub-DAG node for whatever is left
when the chains end, and a FINAL node whose PRE script (``finalize``) closes the ledger whatever happened
(every unit ends done or quarantined with a reason).
"""

from __future__ import annotations

import os
from pathlib import Path

from autosplit.dagbuilder import DagFile
from autosplit.datasets import load_dataset, load_mask
from autosplit.ledger import Ledger
from autosplit.pipeline.config import TaskConfig, load_config
from autosplit.pipeline.stages import chain_count, chain_dag, chain_length, finalize_node
from autosplit.pipeline.taskdir import TaskDir, TaskError


def create_task(config_path: str | os.PathLike[str], *, workdir: str | None = None) -> TaskDir:
    """Make the task directory for ``config_path`` and everything ``task.dag`` needs; returns it."""
    config = load_config(config_path)
    if workdir:
        config.task.workdir = str(Path(workdir).resolve())
    return create_task_from_config(config, Path(config_path))


def create_task_from_config(config: TaskConfig, source_toml: Path | None = None) -> TaskDir:
    source = config.dataset.source
    dataset = load_dataset(source, dataset=config.dataset.name, tree=config.dataset.tree)
    mask = load_mask(config.dataset.mask) if config.dataset.mask else None
    if mask is not None:
        dataset = dataset.select(mask)
    if config.dataset.features:
        from autosplit.datasets.features import read_features

        dataset = dataset.with_features(read_features(config.dataset.features))
    if dataset.n_units == 0:
        where = f" inside the mask {config.dataset.mask}" if mask is not None else ""
        raise TaskError(f"the dataset has no (run, lumi) units{where}; nothing to process")
    task = TaskDir.create(config, source_toml)
    try:
        dataset.to_parquet(task.dataset_path)
        task.__dict__["dataset"] = dataset
        Ledger.create(task.ledger_path, dataset.units, task=config.task.name).close()
        write_top_dag(task)
    except BaseException:
        # Leave no half-made task behind (it could not be resumed anyway): the directory this process made,
        # never one it found (TaskDir.create refuses those).
        task.remove_failed_creation()
        raise
    task.creation_done()
    return task


def write_top_dag(task: TaskDir) -> Path:
    """``task.dag``: the chains, the ``tail-1`` sub-DAG node, the FINAL node."""
    n_chains = chain_count(task)
    dag: DagFile = chain_dag(
        task, "task", n_chains, chain_length(task.dataset.n_units, n_chains), next_tail="tail-1"
    )
    dag.final = finalize_node(task)
    return dag.write(task.top_dag)
