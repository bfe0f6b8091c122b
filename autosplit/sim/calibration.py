"""Probe campaigns and estimator evaluations on synthetic workloads: for calibration tests and benchmarks.

:func:`simulate_probing` runs the probe stage the way the pipeline does (stratified probes, fit, stop when
the total is known well enough) on a :class:`~autosplit.sim.synthetic.SyntheticWorkload`;
:func:`evaluate_estimators` probes once, fits several estimators on the same reports, runs the remaining
units in jobs packed by each estimator (:func:`pack_contiguous`) and scores them (:class:`Evaluation`).
:func:`probe_with_limits` runs one round of probes with a soft and a hard limit and gives what a fit sees
at a chosen moment: the reports of the probes that ended (a probe killed in the middle of a unit names it
``in_progress``) and the probes still running as censored groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from autosplit.datasets import Dataset
from autosplit.estimators.jobs import job_runtime_distribution, job_runtime_quantile
from autosplit.estimators.probes import choose_probes, enough_probes
from autosplit.estimators.unitcost import UnitCostModel
from autosplit.jobreport import JobReport
from autosplit.sim.synthetic import SyntheticJobs, SyntheticWorkload


def pack_contiguous(seconds: np.ndarray, target: float) -> np.ndarray:
    """Job index per unit cutting the row order into consecutive jobs of about ``target`` seconds.

    A simple stand-in for the planner in experiments: a unit joins job ``floor(start / target)`` where
    ``start`` is the predicted seconds before it.
    """
    seconds = np.asarray(seconds, dtype=np.float64)
    start = np.cumsum(seconds) - seconds
    job = np.floor(start / target).astype(np.int64)
    # Renumber so that job numbers are dense (a huge unit may skip numbers).
    _, dense = np.unique(job, return_inverse=True)
    return dense.astype(np.int64)


@dataclass
class ProbeCampaign:
    """Result of :func:`simulate_probing`."""

    model: Any
    reports: list[JobReport]
    probed: np.ndarray  #: bool per unit of the dataset: assigned to a probe
    done: np.ndarray  #: bool per unit: finished by a probe
    rounds: int
    event_fraction: float  #: events assigned to probes / dataset events
    enough: bool  #: the stopping rule was met (else the budget ran out)


def simulate_probing(
    workload: SyntheticWorkload,
    dataset: Dataset,
    estimator: Any,
    *,
    rng: np.random.Generator,
    first_probes: int = 60,
    more_probes: int = 30,
    max_rounds: int = 6,
    seconds_per_probe: float = 900.0,
    seconds_per_event_guess: float | None = None,
    rel_precision: float = 0.10,
    max_event_fraction: float = 0.01,
    first_fraction: float = 0.6,
    per_unit: bool = True,
    unit_details: bool = True,
) -> ProbeCampaign:
    """The probe stage as the pipeline runs it, on a synthetic workload.

    Round 1 sends ``first_probes`` stratified probes (sized from ``seconds_per_event_guess`` when given,
    else by events); each later round fits ``estimator`` on every report so far and, unless
    :func:`~autosplit.estimators.enough_probes` says the total is known to ``rel_precision``, sends
    ``more_probes`` more, sized with the fitted model, until ``max_rounds`` or ``max_event_fraction`` of
    the events is spent (round 1 may use ``first_fraction`` of that budget). Probes have a soft deadline
    of ``seconds_per_probe``. The defaults favour many short probes: when sites and nodes differ in
    speed, the precision of the estimate grows with the number of probe jobs, not with their length.
    """
    units = dataset.units
    budget = max_event_fraction * dataset.n_events
    probed = np.zeros(units.height, dtype=bool)
    done = np.zeros(units.height, dtype=bool)
    reports: list[JobReport] = []
    model = None
    enough = False
    rounds = 0
    spent = 0.0
    for rounds in range(1, max_rounds + 1):
        n = first_probes if rounds == 1 else more_probes
        remaining = budget * (first_fraction if rounds == 1 else 1.0) - spent
        if remaining <= 0.5 * budget / max(first_probes, 1):
            break
        picks = choose_probes(
            dataset,
            n,
            seconds_per_probe,
            model=model,
            seconds_per_event=seconds_per_event_guess if model is None else None,
            max_events=remaining,
            exclude=probed,
            seed=int(rng.integers(2**31)),
        )
        if picks.height == 0:
            break
        rows = picks["row"].to_numpy()
        job_index = np.full(units.height, -1, dtype=np.int64)
        # Units run in the probe's order (file order), which is the row order of the dataset.
        job_index[rows] = picks["probe"].to_numpy()
        jobs = workload.run_jobs(units, job_index, rng, deadline=seconds_per_probe)
        new = workload.reports(
            units,
            jobs,
            rng,
            stage="probe",
            per_unit=per_unit,
            unit_details=unit_details,
            job_prefix=f"probe-r{rounds}",
        )
        reports.extend(new)
        probed[rows] = True
        done |= jobs.finished
        spent += float(picks["events"].sum())
        model = estimator.fit(reports, units)
        remaining_units = units.filter(pl.Series(~done))
        if enough_probes(model, remaining_units, rel_precision=rel_precision):
            enough = True
            break
    return ProbeCampaign(
        model=model,
        reports=reports,
        probed=probed,
        done=done,
        rounds=rounds,
        event_fraction=spent / max(dataset.n_events, 1),
        enough=enough,
    )


@dataclass
class Evaluation:
    """How one fitted estimator did on the units the probes left, in :func:`evaluate_estimators`."""

    predicted_total: float  #: sum of predicted mean seconds of the remaining units
    expected_total: float  #: true expected seconds of those units (site mix by share)
    realized_total: float  #: seconds they actually took in the simulated processing jobs
    interval: tuple[float, float, float]  #: the model's confidence interval of the total
    job_coverage: float  #: fraction of processing jobs whose runtime <= the model's job quantile
    job_bound_over_runtime: float  #: median of (job quantile / actual runtime): sharpness
    unit_coverage: float  #: fraction of units whose seconds <= the model's per-unit quantile
    n_jobs: int
    model: Any = None

    @property
    def ratio(self) -> float:
        """Predicted / expected true total seconds."""
        return self.predicted_total / self.expected_total

    @property
    def interval_covers(self) -> bool:
        return self.interval[0] <= self.expected_total <= self.interval[2]


def evaluate_estimators(
    workload: SyntheticWorkload,
    dataset: Dataset,
    estimators: dict[str, Any],
    *,
    seed: int,
    target_seconds: float = 4 * 3600.0,
    q: float = 0.95,
    driver: Any = None,
    **probe_options: Any,
) -> tuple[ProbeCampaign, dict[str, Evaluation]]:
    """One experiment: probe ``dataset`` (driven by ``driver``, default a fresh ``UnitCostModel``), fit every
    estimator on the same probe reports, then run the remaining units in jobs of about ``target_seconds``
    predicted seconds (packed in file order with each estimator's own predictions) and score it.

    A job's bound is the planner's ``q``-quantile (:func:`~autosplit.estimators.job_runtime_quantile`),
    except for estimators with a fixed ``margin`` (CRAB3's :class:`MeanRateEstimator`), whose bound is
    ``predicted mean / margin``. ``probe_options`` go to :func:`simulate_probing`.
    """
    rng = np.random.default_rng(seed)
    campaign = simulate_probing(workload, dataset, driver or UnitCostModel(), rng=rng, **probe_options)
    rest = dataset.units.filter(pl.Series(~campaign.done))
    expected = float(workload.expected_unit_seconds(rest).sum())
    results: dict[str, Evaluation] = {}
    for k, (name, estimator) in enumerate(estimators.items()):
        model = estimator.fit(campaign.reports, dataset.units)
        mean, _ = model.predict_unit_seconds(rest)
        job_index = pack_contiguous(mean, target_seconds)
        jobs = workload.run_jobs(rest, job_index, np.random.default_rng([seed, k, 1]))
        if hasattr(model, "margin"):
            bound = job_runtime_distribution(model, rest, job_index)[0] / model.margin
        else:
            bound = job_runtime_quantile(model, rest, job_index, q)
        unit_bound = model.predict_quantile(rest, q)
        results[name] = Evaluation(
            predicted_total=float(mean.sum()),
            expected_total=expected,
            realized_total=float(jobs.unit_seconds.sum()),
            interval=model.total_seconds_interval(rest),
            job_coverage=float(np.mean(jobs.wall <= bound)),
            job_bound_over_runtime=float(np.median(bound / jobs.wall)),
            unit_coverage=float(np.mean(jobs.unit_seconds <= unit_bound)),
            n_jobs=jobs.n_jobs,
            model=model,
        )
    return campaign, results


@dataclass
class LimitedProbes:
    """Result of :func:`probe_with_limits`."""

    reports: list[JobReport]  #: reports of the probes that had ended when the fit happens
    censored: pl.DataFrame | None  #: the probes still running then, as censored groups (``fit(censored=)``)
    jobs: SyntheticJobs  #: what every probe did (the truth, including the probes still running)
    fit_time: float  #: seconds after the probes started when the fit happens
    event_fraction: float  #: events assigned to probes / dataset events


def probe_with_limits(
    workload: SyntheticWorkload,
    dataset: Dataset,
    *,
    rng: np.random.Generator,
    soft_limit: float,
    hard_limit: float,
    max_event_fraction: float = 0.02,
    n_probes: int | None = None,
    seconds_per_event: float | None = None,
    reported_fraction: float = 1.0,
) -> LimitedProbes:
    """One round of probes with limits, all started at once, as a fit sees it when ``reported_fraction``
    of them have ended.

    The probes take a stratified sample (:func:`~autosplit.estimators.choose_probes`) of at most
    ``max_event_fraction`` of the events, sized to ``soft_limit`` seconds each with ``seconds_per_event``
    (default: the workload's true mean, so probes are sized right on average); ``n_probes`` defaults to
    as many as the budget fills. Each probe stops at the first unit boundary after ``soft_limit`` (from
    its start, set-up included) and is killed at ``hard_limit``: a unit not finished by then is the
    report's ``in_progress`` unit. With ``reported_fraction < 1`` the fit happens when that fraction of the
    probes has ended: the others are still running, and each becomes a censored group of all its units
    whose total is at least its payload's time so far (``seconds_at_least``; its ``site`` known).
    """
    units = dataset.units
    if seconds_per_event is None:
        seconds_per_event = float(workload.expected_unit_seconds(units).sum()) / max(dataset.n_events, 1)
    budget = max_event_fraction * dataset.n_events
    if n_probes is None:
        n_probes = max(int(budget * seconds_per_event / soft_limit), 1)
    picks = choose_probes(
        dataset,
        n_probes,
        soft_limit,
        seconds_per_event=seconds_per_event,
        max_events=budget,
        seed=int(rng.integers(2**31)),
    )
    job_index = np.full(units.height, -1, dtype=np.int64)
    job_index[picks["row"].to_numpy()] = picks["probe"].to_numpy()
    jobs = workload.run_jobs(units, job_index, rng, deadline=soft_limit, hard_limit=hard_limit)
    reports = workload.reports(units, jobs, rng, stage="probe")
    fit_time = float(jobs.wall.max())
    censored = None
    if reported_fraction < 1.0:
        fit_time = float(np.quantile(jobs.wall, reported_fraction))
        ended = jobs.wall <= fit_time
        elapsed = fit_time - jobs.overhead
        running = np.flatnonzero(~ended & (elapsed > 0))
        rows = np.flatnonzero(job_index >= 0)
        rows = rows[np.isin(job_index[rows], running)]
        probe = job_index[rows]
        censored = pl.DataFrame(
            {
                "group": probe,
                "run": units["run"].to_numpy()[rows],
                "lumi": units["lumi"].to_numpy()[rows],
                "seconds_at_least": elapsed[probe],
                "site": jobs.site[probe],
            }
        )
        reports = [report for report, done in zip(reports, ended, strict=True) if done]
    return LimitedProbes(
        reports=reports,
        censored=censored,
        jobs=jobs,
        fit_time=fit_time,
        event_fraction=float(picks["events"].sum()) / max(dataset.n_events, 1),
    )
