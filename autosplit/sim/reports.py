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


class ReportBuilder:
    """One attempt's report at a time, fast: the units' fields are read from the dataset once.

    The report has the content :func:`attempt_reports` gives the same attempt (the same random draws of
    ``sim.report_rng`` for memory and output size, in the same order), built without a polars call per
    job. What the driver chooses on top: the job id, per-unit seconds or none (job-level timing, like a
    CMSSW framework job report), a multiplicative measurement error on the per-unit seconds (``noise``:
    one factor per unit, mean 1), and the unit ``in_progress`` at a kill.
    """

    FEATURES = ("pileup", "bytes")

    def __init__(self, sim: object, workload: SyntheticWorkload | None = None) -> None:
        self.sim = sim
        self.workload = workload or _DEFAULT_WORKLOAD
        units = sim.dataset.units  # type: ignore[attr-defined]
        keep = [c for c in ("run", "lumi", "events", *self.FEATURES) if c in units.columns]
        self._rows = units.select(keep).to_dicts()
        self._events = units["events"].to_numpy().astype(np.float64)
        self._sites = list(sim.pool.site_names)  # type: ignore[attr-defined]

    def unit_key(self, row: int) -> tuple[int, int]:
        """(run, lumi) of a unit row."""
        unit = self._rows[row]
        return int(unit["run"]), int(unit["lumi"])

    def report(
        self,
        attempt: Attempt,
        *,
        job_id: str,
        per_unit: bool = True,
        noise: np.ndarray | None = None,
        in_progress: dict | None = None,
    ) -> JobReport:
        """The report of ``attempt`` (one that left a report: ``ok``, ``soft`` or ``killed``)."""
        from autosplit.jobreport import OutputFile

        sim, w = self.sim, self.workload
        job = attempt.job
        rows = job.rows
        kept = rows[: attempt.n_kept]
        seconds = sim.truth.seconds[kept] * attempt.factor  # type: ignore[attr-defined]
        if noise is not None:
            seconds = seconds * noise
        events = float(self._events[kept].sum())
        rng = sim.report_rng  # type: ignore[attr-defined]
        rss = (w.rss_base_bytes + w.rss_bytes_per_event * events) * rng.lognormal(0.0, w.rss_sigma, 1)[0]
        out = w.output_bytes_per_event * events * rng.lognormal(0.0, w.output_sigma, 1)[0] + 2.0e5
        done = []
        for row, s in zip(kept.tolist(), seconds.tolist(), strict=True):
            unit = dict(self._rows[row])
            if per_unit:
                unit["seconds"] = s
            done.append(unit)
        todo = [
            {"run": self._rows[r]["run"], "lumi": self._rows[r]["lumi"]}
            for r in rows[attempt.n_kept :].tolist()
        ]
        return JobReport(
            job_id=job_id,
            stage=job.stage,
            site=self._sites[attempt.site],
            wall_seconds=float(attempt.overhead + attempt.payload),
            cpu_seconds=float(attempt.payload * 0.97 + attempt.overhead * 0.5),
            init_seconds=float(attempt.overhead),
            loop_seconds=float(attempt.payload),
            peak_rss_bytes=int(rss),
            units=done,
            unfinished=todo,
            in_progress=in_progress,
            outputs=[OutputFile(name=f"{job_id}.root", bytes=int(out))],
            soft_stopped=attempt.outcome == "soft",
            hard_killed=attempt.outcome == "killed",
            exit_code=0,
        )
