"""autosplit itself: :class:`autosplit.Scheduler` driven by :class:`autosplit.sim.SchedulerPolicy`.

The scheduler gets only what the pipeline has: the keyword arguments the pipeline passes
(:func:`autosplit.pipeline.scheduling.scheduler_options_for`) for a condor task whose configuration sets
only the target runtime, so every other value (``alpha``, ``max_tails``, the probes and their soft limit) is
the configuration's default, and **no slot count** (``slots=None``: it observes the concurrency from the
driver's calls). The SIGTERM grace is the simulated pool's. Its reports are what a job can measure:

* ``autosplit``: the autosplit worker's reports, per-unit seconds included, each carrying a multiplicative
  lognormal measurement error of log-sd :data:`TIMING_NOISE` (7 %); the job's wall, loop and set-up times
  are exact;
* ``autosplit-fjr``: job-level timing only (no per-unit seconds), what a CMSSW framework job report gives;
* ``autosplit-pull`` (not in :data:`~benchmarks.peers.POLICIES`, see ``bench_site_blind.py``): the
  ``autosplit`` reports, and each job asked for a named slot's site, as a pull-based workload manager that
  embeds the scheduler could (a pilot asks for work for its own slot); the condor pipeline cannot.

Every decision (probes, model, job sizes, limits, quarantines) is the scheduler's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from autosplit.pipeline.config import config_from_dict
from autosplit.pipeline.scheduling import scheduler_options_for
from autosplit.sim.scheduler_policy import SchedulerPolicy

TIMING_NOISE = 0.07  #: log-sd of the per-unit timing measurement error


def options(workload: Any, **extra: Any) -> dict[str, Any]:
    """The scheduler's arguments: what the pipeline passes for a condor task that sets only its target."""
    config = config_from_dict(
        {
            "task": {"name": "benchmark"},
            "dataset": {"source": "dataset.json"},
            "code": {"callable": "analysis:run"},
            "splitting": {"target_runtime": float(workload.target_runtime)},
            "backend": {"kind": "condor"},
        },
        base=Path("."),
        origin="benchmark configuration",
    )
    passed = scheduler_options_for(config)
    passed.pop("grace_seconds")  # the simulated pool's grace is the one its jobs get
    return {**passed, **extra}


def _driven(workload: Any, extra: dict[str, Any], **driver: Any) -> SchedulerPolicy:
    """The simulator's driver of a scheduler built with :func:`options` (``driver``: what it reports)."""
    return SchedulerPolicy(options=options(workload, **extra), report_workload=workload.cost, **driver)


def make(workload: Any, **extra: Any) -> SchedulerPolicy:
    """autosplit with the worker's per-unit timings (with measurement noise)."""
    return _driven(workload, extra, name="autosplit", per_unit_timing=True, timing_noise=TIMING_NOISE)


def make_fjr(workload: Any, **extra: Any) -> SchedulerPolicy:
    """autosplit fed job-level timings only (CMSSW framework job reports)."""
    return _driven(workload, extra, name="autosplit-fjr", per_unit_timing=False)


def make_pull(workload: Any, **extra: Any) -> SchedulerPolicy:
    """autosplit told the site of the slot each job will run on (a pull-based embedding)."""
    return _driven(
        workload,
        extra,
        name="autosplit-pull",
        per_unit_timing=True,
        timing_noise=TIMING_NOISE,
        tell_site=True,
    )
