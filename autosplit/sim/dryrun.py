"""Dry-run predictions: the makespan of a plan on N slots, with an interval, from an already fitted model.

:func:`predict_makespan` runs the task as autosplit's scheduler would (:class:`autosplit.Scheduler` with the
fitted model: no probes, no refit) in the pool simulator, many times. In every run the true unit times are drawn from the model's own predictive distribution: each unit
gamma distributed with the model's per-unit mean and standard deviation; each job multiplied by a lognormal
speed factor with the model's ``shared_cv`` (mean 1); and, when the model reports its parameter uncertainty
(``param_cv_``), one task-wide lognormal factor per run with that spread (an error in the estimated rate
shifts every job at once, so it widens the makespan interval instead of averaging out over jobs). The pool
is ``n_slots`` identical slots paying the model's per-job overhead (lognormal, log-sd ``overhead_sigma``).

:func:`makespan_vs_target` repeats that for a list of target runtimes (a "makespan vs target" curve).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from autosplit.datasets import Dataset
from autosplit.sim.engine import Simulation
from autosplit.sim.pool import Pool
from autosplit.sim.scheduler_policy import SchedulerPolicy
from autosplit.sim.truth import Truth, gamma_draw, lognormal_sigma
from autosplit.splitting.model import shared_cv


def _spreads(model: Any, task_uncertainty: bool) -> tuple[float, float]:
    """(per-job cv, task-wide cv) of the model's shared speed factor."""
    job_cv = shared_cv(model)
    task_cv = float(getattr(model, "param_cv_", 0.0) or 0.0) if task_uncertainty else 0.0
    task_cv = min(task_cv, job_cv)
    return math.sqrt(max(job_cv**2 - task_cv**2, 0.0)), task_cv


def predict_makespan(
    dataset: Dataset,
    model: Any,
    *,
    target_runtime: float,
    alpha: float = 0.05,
    n_slots: int,
    max_tails: int = 3,
    overhead_seconds: float | None = None,
    n_runs: int = 20,
    seed: int = 0,
    interval: float = 0.9,
    slots: int | None = None,
    overhead_sigma: float = 0.3,
    stage_delay_seconds: float = 60.0,
    task_uncertainty: bool = True,
) -> dict[str, Any]:
    """Predicted makespan (seconds) of running ``dataset`` as autosplit would, with a fitted ``model``.

    Parameters
    ----------
    dataset:
        The units still to process.
    model:
        A fitted cost model (the planner's protocol; :class:`~autosplit.estimators.UnitCostModel` adds its
        99 % unit quantiles for the hard limits and its parameter uncertainty).
    target_runtime, alpha, max_tails:
        As in the task configuration (seconds; accepted soft-limit probability; tail stages).
    n_slots:
        Slots running the task at once.
    overhead_seconds:
        Mean per-job overhead (seconds); default the model's ``overhead_seconds``.
    n_runs, seed:
        Simulated runs and the seed of their draws (deterministic for a seed).
    interval:
        Central probability of the reported ``[low, high]`` interval.
    slots:
        Slots the decreasing job sizes of processing and tails aim at (default ``n_slots``).
    overhead_sigma, stage_delay_seconds:
        Spread of the overhead (log-sd) and latency between stages (seconds).
    task_uncertainty:
        Draw the model's parameter uncertainty once per run (see the module docstring).

    Returns
    -------
    dict with ``median``, ``low``, ``high`` (makespan seconds), ``interval``, ``n_jobs`` and ``n_tail_jobs``
    (medians over runs), ``frac_soft_limit`` and ``frac_hard_killed`` (means over runs),
    ``cpu_seconds`` (median total payload seconds), ``lower_bound`` (median work / n_slots),
    ``quarantined_units`` (units given up on in the first run), ``runs`` (every run's makespan), and the
    inputs ``target_runtime``, ``alpha``, ``n_slots``, ``n_runs``.
    """
    if n_slots < 1 or n_runs < 1:
        raise ValueError("n_slots and n_runs must be >= 1")
    if not 0 < interval < 1:
        raise ValueError("interval must be in (0, 1)")
    overhead = float(model.overhead_seconds if overhead_seconds is None else overhead_seconds)
    job_cv, task_cv = _spreads(model, task_uncertainty)
    pool = Pool.uniform(
        n_slots,
        overhead_seconds=overhead,
        overhead_sigma=overhead_sigma,
        node_sigma=lognormal_sigma(job_cv),
        stage_delay_seconds=stage_delay_seconds,
    )
    mean, std = model.predict_unit_seconds(dataset.units)
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    policy = SchedulerPolicy(
        options={
            "target_runtime": float(target_runtime),
            "alpha": alpha,
            "max_tails": max_tails,
            "slots": slots,
            "model": model,
            "refit": False,
        },
        name="autosplit-dryrun",
    )
    makespans, tails, soft, killed, cpu, bounds, stages, jobs = [], [], [], [], [], [], [], []
    quarantined = 0
    for run in range(n_runs):
        rng = np.random.default_rng([seed, run])
        seconds = gamma_draw(mean, std, rng)
        if task_cv > 0:
            s = lognormal_sigma(task_cv)
            seconds *= rng.lognormal(-0.5 * s * s, s)
        truth = Truth(seconds)
        sim = Simulation(dataset, truth, pool, seed=int(rng.integers(2**31)))
        result = sim.run(policy)
        makespans.append(result.makespan)
        tails.append(result.n_tail_jobs)
        soft.append(result.frac_soft_limit)
        killed.append(result.frac_hard_killed)
        cpu.append(result.useful_cpu + result.thrown_cpu)
        bounds.append(truth.total_seconds() / n_slots)
        stages.append(result.n_stages)
        jobs.append(result.n_jobs)
        if run == 0:
            quarantined = int(result.units["quarantined"])
    runs = np.array(makespans)
    tail = (1.0 - interval) / 2.0
    return {
        "median": float(np.median(runs)),
        "low": float(np.quantile(runs, tail)),
        "high": float(np.quantile(runs, 1.0 - tail)),
        "interval": interval,
        "n_jobs": int(np.median(jobs)),
        "n_tail_jobs": float(np.median(tails)),
        "n_stages": float(np.median(stages)),
        "frac_soft_limit": float(np.mean(soft)),
        "frac_hard_killed": float(np.mean(killed)),
        "cpu_seconds": float(np.median(cpu)),
        "lower_bound": float(np.median(bounds)),
        "quarantined_units": int(quarantined),
        "runs": runs.tolist(),
        "target_runtime": float(target_runtime),
        "alpha": alpha,
        "n_slots": n_slots,
        "n_runs": n_runs,
    }


def makespan_vs_target(
    dataset: Dataset, model: Any, targets: Sequence[float], **kwargs: Any
) -> list[dict[str, Any]]:
    """:func:`predict_makespan` for each target runtime in ``targets`` (seconds); same keyword arguments."""
    return [predict_makespan(dataset, model, target_runtime=float(t), **kwargs) for t in targets]
