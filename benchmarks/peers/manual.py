"""Fixed splitting by a physicist: CRAB ``LumiBased`` with a ``lumis_per_job`` guessed from a short local test.

The guess follows what ``crab submit --dryrun`` recommends (crab3.md §5.4): run the code locally on the
first events of the first file (``test_events`` events, on a machine ``local_time_factor`` times the
reference speed), take the average seconds per event, and choose ``lumis_per_job`` so an average lumi
(dataset mean events per lumi) gives ``target_runtime``: ``floor(target / (seconds_per_event *
mean_events_per_lumi))``, at least 1. The local test sees only the start of the first run, where pile-up
is highest, and none of the sites' speed differences.

Jobs (crab3.md §2.1, §1.6): exactly ``lumis_per_job`` lumis in file order, no rampdown (only Automatic
splitting sets ``maxSecondsUntilRampdown``), removed at ``maxJobRuntimeMin`` = 1250 min (the default) with
the work lost and no retry (50664 is FATAL, §3.3); crashes and CMSSW exceptions are retried up to
``numAutomJobRetries`` = 3 times after 900 s (§3.3). Lumis of jobs that fail for good stay unprocessed until
the user resubmits (not modelled: they are reported as lost).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autosplit.sim import SimJob
from autosplit.splitting import split


@dataclass
class ManualPolicy:
    """Fixed LumiBased splitting from a local-test guess; see the module docstring. Times in seconds."""

    target_runtime: float = 8 * 3600.0
    test_events: int = 1000
    local_time_factor: float = 1.0
    max_wall: float = 1250 * 60.0
    retries: int = 3
    name: str = "manual"
    lumis_per_job_: int = field(default=0, init=False, repr=False)

    def guess_lumis_per_job(self, sim: Any) -> int:
        """The physicist's ``lumis_per_job`` from a local test on the first events of the first file."""
        units = sim.dataset.units
        events = units["events"].to_numpy().astype(np.float64)
        first = np.argsort(units["file_id"].to_numpy(), kind="stable")
        used = first[: int(np.searchsorted(np.cumsum(events[first]), self.test_events)) + 1]
        seconds_per_event = (
            float(sim.truth.seconds[used].sum()) * self.local_time_factor / max(events[used].sum(), 1.0)
        )
        per_lumi = seconds_per_event * float(events.mean())
        return (
            max(int(math.floor(self.target_runtime / per_lumi)), 1) if per_lumi > 0 else sim.dataset.n_units
        )

    def run(self, sim: Any) -> Generator[Any, Any, None]:
        self.lumis_per_job_ = self.guess_lumis_per_job(sim)
        plan = split(sim.dataset, "LumiBased", lumis_per_job=self.lumis_per_job_)
        jobs = [
            SimJob(
                plan.job_rows(k),
                stage="processing",
                hard_limit=self.max_wall,
                retries=self.retries,
                retry_on=("crash", "unit"),
                retry_delay=900.0,
                keep_on_kill=False,
                priority=float(plan.n_jobs - k),
            )
            for k in range(plan.n_jobs)
        ]
        yield sim.wait_all(sim.submit_many(jobs))
        for job in jobs:
            if job.result.n_kept < job.n_units:
                sim.lose(job.result.left_rows, "failed every retry (needs a manual resubmission)")


def make(workload: Any, **params: Any) -> ManualPolicy:
    """The manual policy for a benchmark workload."""
    return ManualPolicy(target_runtime=workload.target_runtime, **params)
