"""The oracle: knows every unit's true cost and packs jobs to exactly the target runtime.

It plans with :func:`autosplit.plan` and a cost model that returns the true reference seconds of each unit
times the pool's mean time factor, no spread, and the pool's mean overhead, so every job's expected runtime
on an average slot is the target. Jobs have no soft limit and no hard limit (nothing is stopped), poison
units are known and set aside before anything runs, crashes are retried (3 times). Units longer than the
target alone run as jobs of their own. It does not know which slot a job will land on, so it is a
*fixed-size* oracle: slow sites and the last wave still make its makespan exceed the lower bound.
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from autosplit.errors import OversizedUnitsWarning
from autosplit.sim import SimJob
from autosplit.splitting import plan


@dataclass(frozen=True)
class TrueCostModel:
    """The planner's cost-model protocol answered with the truth (seconds per unit row of the dataset)."""

    seconds: np.ndarray
    overhead_seconds: float
    shared_cv: float = 0.0

    def predict_unit_seconds(self, units: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        mean = self.seconds[units["_row"].to_numpy()]
        return mean, np.zeros_like(mean)


@dataclass
class OraclePolicy:
    """Fixed-size jobs of exactly ``target_runtime`` expected seconds from the true costs."""

    target_runtime: float = 8 * 3600.0
    retries: int = 3
    name: str = "oracle"

    def run(self, sim: Any) -> Generator[Any, Any, None]:
        truth, pool = sim.truth, sim.pool
        bad = np.flatnonzero(~truth.workable())
        sim.quarantine(bad, "known to crash the user code")
        rows = sim.pending_rows()
        model = TrueCostModel(truth.seconds * pool.mean_time_factor, pool.overhead_seconds)
        subset = sim.dataset.take(rows)
        subset = subset.with_features(
            subset.units.select("run", "lumi").with_columns(pl.Series("_row", rows))
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OversizedUnitsWarning)
            job_plan = plan(subset, model, self.target_runtime, alpha=0.05)
        groups = [rows[job_plan.job_rows(k)] for k in range(job_plan.n_jobs)]
        groups += [np.array([r]) for r in rows[job_plan.assignment < 0]]  # longer than the target alone
        jobs = [
            SimJob(g, stage="processing", retries=self.retries, priority=float(len(groups) - k))
            for k, g in enumerate(groups)
        ]
        yield sim.wait_all(sim.submit_many(jobs))
        for job in jobs:
            sim.lose(job.result.left_rows, "crashed every retry")


def make(workload: Any, **params: Any) -> OraclePolicy:
    """The oracle for a benchmark workload."""
    return OraclePolicy(target_runtime=workload.target_runtime, **params)
