"""autosplit itself: :class:`autosplit.Scheduler` driven by :class:`autosplit.sim.SchedulerPolicy`.

The scheduler gets only what the pipeline has: the target runtime, ``alpha``, ``max_tails`` and the
SIGTERM grace, all at their configuration defaults, and **no slot count** (``slots=None``: it observes the
concurrency from the driver's calls). Its reports are what a job can measure:

* ``autosplit``: the autosplit worker's reports, per-unit seconds included, each carrying a multiplicative
  lognormal measurement error of log-sd :data:`TIMING_NOISE` (7 %); the job's wall, loop and set-up times
  are exact;
* ``autosplit-fjr``: job-level timing only (no per-unit seconds), what a CMSSW framework job report gives.

Every decision (probes, model, job sizes, limits, quarantines) is the scheduler's.
"""

from __future__ import annotations

from typing import Any

from autosplit.sim.scheduler_policy import SchedulerPolicy

TIMING_NOISE = 0.07  #: log-sd of the per-unit timing measurement error


def options(workload: Any, **extra: Any) -> dict[str, Any]:
    """The scheduler's arguments: what the pipeline passes (target, alpha, max_tails; no slots)."""
    return {"target_runtime": workload.target_runtime, "alpha": 0.05, "slots": None, "max_tails": 3, **extra}


def make(workload: Any, **extra: Any) -> SchedulerPolicy:
    """autosplit with the worker's per-unit timings (with measurement noise)."""
    return SchedulerPolicy(
        options=options(workload, **extra),
        name="autosplit",
        report_workload=workload.cost,
        per_unit_timing=True,
        timing_noise=TIMING_NOISE,
    )


def make_fjr(workload: Any, **extra: Any) -> SchedulerPolicy:
    """autosplit fed job-level timings only (CMSSW framework job reports)."""
    return SchedulerPolicy(
        options=options(workload, **extra),
        name="autosplit-fjr",
        report_workload=workload.cost,
        per_unit_timing=False,
    )
