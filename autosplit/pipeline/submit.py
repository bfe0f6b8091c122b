"""Creating a task: resolve the dataset, fill the ledger, choose probes, write the top DAG, hand it over.

``task.dag`` holds the probe jobs, then the ``processing`` sub-DAG node (its PRE script plans processing
from the probes' measurements), and a FINAL node whose PRE script (``autosplit finalize``) closes the
ledger whatever happened (every unit ends done or quarantined with a reason).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from autosplit.dagbuilder import DagFile
from autosplit.datasets import load_dataset, load_mask
from autosplit.ledger import Ledger
from autosplit.pipeline.config import TaskConfig, load_config
from autosplit.pipeline.predag import probe_jobs
from autosplit.pipeline.stages import finalize_node, stage_dag, write_dag_config
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
        with Ledger.create(task.ledger_path, dataset.units, task=config.task.name) as ledger:
            unit_ids = np.arange(dataset.n_units, dtype=np.int64)
            jobs = probe_jobs(task, "probe", dataset.units, unit_ids)
            ledger.plan_stage("probe", 0, [j.ledger_entry() for j in jobs], info={"next": "processing"})
        write_top_dag(task, jobs)
    except BaseException:
        # Leave no half-made task behind: it could not be resumed anyway.
        import shutil

        shutil.rmtree(task.root, ignore_errors=True)
        raise
    return task


def write_top_dag(task: TaskDir, probes) -> Path:
    dag: DagFile = stage_dag(task, "probe", probes, next_stage="processing", dag_name="task")
    dag.config_file = write_dag_config(task, "task")
    dag.final = finalize_node(task)
    return dag.write(task.top_dag)
