"""Job reports of simulated attempts, as the autosplit worker would write them.

Attempts that leave a report (``ok``, ``soft``, ``killed``: the wrapper rebuilds a killed job's report from
its progress journal) are turned into :class:`~autosplit.jobreport.JobReport` objects by
:meth:`SyntheticWorkload.reports <autosplit.sim.synthetic.SyntheticWorkload.reports>`, the same
builder the estimators' calibration tests use: per-unit seconds and features for the finished units, the
rest listed as unfinished, set-up time as ``init_seconds``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from autosplit.jobreport import JobReport
from autosplit.sim.jobs import Attempt
from autosplit.sim.synthetic import SyntheticJobs, SyntheticWorkload

REPORTING = ("ok", "soft", "killed")
_DEFAULT_WORKLOAD = SyntheticWorkload()


def attempt_reports(
    sim: object,
    attempts: Sequence[Attempt],
    *,
    prefix: str,
    workload: SyntheticWorkload | None = None,
) -> list[JobReport]:
    """Reports of the ``attempts`` that left one, grouped by stage, job ids ``<prefix>-<stage>-<k>``.

    ``sim`` is the :class:`~autosplit.sim.Simulation` they ran in; ``workload`` sets memory and output
    sizes (default :class:`SyntheticWorkload` values).
    """
    workload = workload or _DEFAULT_WORKLOAD
    usable = [a for a in attempts if a.outcome in REPORTING]
    reports: list[JobReport] = []
    for stage in dict.fromkeys(a.job.stage for a in usable):
        batch = [a for a in usable if a.job.stage == stage]
        reports += _stage_reports(sim, batch, stage, f"{prefix}-{stage}", workload)
    return reports


def _stage_reports(
    sim: object, batch: list[Attempt], stage: str, prefix: str, workload: SyntheticWorkload
) -> list[JobReport]:
    rows = np.concatenate([a.job.rows for a in batch])
    sizes = np.array([a.job.n_units for a in batch], dtype=np.int64)
    job_index = np.repeat(np.arange(len(batch)), sizes)
    factor = np.array([a.factor for a in batch])
    position = np.arange(rows.size) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    finished = position < np.repeat(np.array([a.n_kept for a in batch]), sizes)
    units = sim.dataset.units[rows]  # type: ignore[attr-defined]
    events = units["events"].to_numpy()
    overhead = np.array([a.overhead for a in batch])
    payload = np.array([a.payload for a in batch])
    jobs = SyntheticJobs(
        job_index=job_index,
        unit_seconds=sim.truth.seconds[rows] * factor[job_index],  # type: ignore[attr-defined]
        finished=finished,
        site=np.array(sim.pool.site_names)[[a.site for a in batch]],  # type: ignore[attr-defined]
        time_factor=factor,
        overhead=overhead,
        processing=payload,
        wall=overhead + payload,
        soft_stopped=np.array([a.outcome == "soft" for a in batch]),
        hard_killed=np.array([a.outcome == "killed" for a in batch]),
        events=np.bincount(job_index[finished], weights=events[finished], minlength=len(batch)).astype(
            np.int64
        ),
    )
    return workload.reports(units, jobs, sim.report_rng, stage=stage, job_prefix=prefix)  # type: ignore[attr-defined]
