"""Helpers for pipeline tests: a tiny task built from a parquet dataset, and fake job reports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import polars as pl

from autosplit import Dataset
from autosplit.jobreport import JobReport
from autosplit.pipeline.config import load_config
from autosplit.pipeline.submit import create_task_from_config
from autosplit.pipeline.taskdir import TaskDir


def write_dataset(
    path: Path, n_units: int = 40, lumis_per_file: int = 10, events: int = 50, seed: int = 0
) -> Path:
    rng = np.random.default_rng(seed)
    df = pl.DataFrame(
        {
            "run": np.full(n_units, 297050),
            "lumi": np.arange(1, n_units + 1),
            "events": rng.integers(events // 2, events * 3 // 2, n_units),
            "file": [f"/store/test/file{i // lumis_per_file:03d}.root" for i in range(n_units)],
            "bytes": np.full(n_units, 10_000),
        }
    )
    Dataset.from_units(df).to_parquet(path)
    return path


def write_config(
    tmp_path: Path,
    *,
    code: str = "payload:run",
    extra: str = "",
    name: str = "t1",
    n_units: int = 40,
    target: str = "4s",
    probe: str = "1s",
    tails: int = 2,
    alpha: float = 0.05,
    max_jobs: int = 2,
    retries: int = 1,
    probes: int = 2,
    probe_fraction: float = 0.05,
) -> Path:
    write_dataset(tmp_path / "ds.parquet", n_units=n_units)
    text = (
        textwrap.dedent(
            f"""
        [task]
        name = "{name}"
        workdir = "tasks"
        [dataset]
        source = "ds.parquet"
        [code]
        callable = "{code}"
        [splitting]
        target_runtime = "{target}"
        probe_seconds = "{probe}"
        probes = {probes}
        probe_fraction = {probe_fraction}
        max_tails = {tails}
        alpha = {alpha}
        [limits]
        retries = {retries}
        grace_seconds = "3s"
        [backend]
        max_jobs = {max_jobs}
        """
        )
        + extra
    )
    path = tmp_path / "task.toml"
    path.write_text(text)
    return path


def make_task(tmp_path: Path, **kwargs) -> TaskDir:
    path = write_config(tmp_path, **kwargs)
    return create_task_from_config(load_config(path), path)


def fake_report(
    task: TaskDir,
    node: str,
    *,
    done: int | None = None,
    seconds_per_event: float = 0.01,
    exit_code: int = 0,
    soft_stopped: bool = False,
    hard_killed: bool = False,
    attempt: int = 0,
    failed_lumi: int | None = None,
    site: str = "local",
) -> JobReport:
    """Write the report a job would leave: the first ``done`` units processed (all by default)."""
    with task.ledger() as ledger:
        pairs = ledger.job_assignment(node)
    events = dict(
        zip(task.dataset.units["lumi"].to_list(), task.dataset.units["events"].to_list(), strict=True)
    )
    done = len(pairs) if done is None else done
    units = [
        {"run": r, "lumi": lu, "events": events[lu], "seconds": events[lu] * seconds_per_event}
        for r, lu in pairs[:done]
    ]
    meta = {"failed_unit": [297050, failed_lumi]} if failed_lumi is not None else {}
    report = JobReport(
        job_id=node,
        attempt=attempt,
        site=site,
        exit_code=exit_code,
        exit_message="" if exit_code == 0 else "ValueError: broken",
        wall_seconds=sum(u["seconds"] for u in units) + 1.0,
        cpu_seconds=sum(u["seconds"] for u in units),
        init_seconds=1.0,
        loop_seconds=sum(u["seconds"] for u in units),
        peak_rss_bytes=100_000_000,
        units=units,
        unfinished=[{"run": r, "lumi": lu} for r, lu in pairs[done:]],
        soft_stopped=soft_stopped,
        hard_killed=hard_killed,
        meta=meta,
    )
    report.to_json(task.report_path(node))
    return report
