"""Hard time limits of planned jobs (seconds): the one rule the pipeline and the simulator both apply.

:mod:`autosplit.pipeline.predag` writes these limits into the job specs; :mod:`autosplit.sim.autosplit_policy`
gives its simulated jobs the same ones by calling these functions.

* A **probe** stops at its soft limit and is killed at ``max(4 soft, soft + 60) + grace`` (CRAB3 gives its
  probes a factor of 4 as a buffer).
* A **processing or tail job** with a soft limit is killed at ``soft + max(0.25 soft, 3 q99, 60) + grace``:
  room for the unit in progress at the soft limit to finish (``q99``: the largest per-unit 99 % quantile
  of the job), plus the grace period between SIGTERM and SIGKILL.
* A job **without a soft limit** (the last tail) must fit whole: ``3 target + grace``.
* A unit **run alone** gets ``max(3 target, 2 q99) + grace``.

Every limit but the probe's is capped at ``max_job`` (the batch system's longest job) plus the grace period.
"""

from __future__ import annotations

import math


def default_probe_seconds(target_seconds: float, configured: float | None = None) -> float:
    """Soft limit of a probe job (seconds): ``configured`` when given, else a sixteenth of the target, at
    least 5 and at most 30 minutes, and never more than half the target. Shorter probes end inside a unit
    more often; that unit then only bounds its cost from below."""
    if configured is not None:
        return float(configured)
    return float(min(max(target_seconds / 16.0, 300.0), 1800.0, target_seconds / 2.0))


def probe_hard_limit(soft: float, grace: float) -> float:
    """Hard limit of a probe with soft limit ``soft`` and SIGTERM grace ``grace`` (seconds)."""
    return max(4.0 * soft, soft + 60.0) + grace


def job_hard_limit(
    soft: float | None, unit_q99: float, target: float, grace: float, max_job: float = math.inf
) -> float:
    """Hard limit of a processing or tail job (see the module docstring); ``soft=None``: no soft limit."""
    if soft is None:  # no soft stop, so the whole job must fit
        limit = 3.0 * target
    else:
        limit = soft + max(0.25 * soft, 3.0 * unit_q99, 60.0)
    return min(limit, max_job) + grace


def alone_hard_limit(unit_q99: float, target: float, grace: float, max_job: float = math.inf) -> float:
    """Hard limit of a job running one unit by itself (seconds)."""
    return min(max(3.0 * target, 2.0 * unit_q99), max_job) + grace
