"""What a simulated task cost: makespan, CPU waste, job counts, limit hits, and the lower bound.

CPU waste (the benchmark's definition) is ``(overhead + thrown) / useful``: ``overhead`` is the slot time
of every attempt before its payload (queue share, setup, stage-in/out), ``thrown`` the payload CPU whose
result was discarded (lost by a crash, a kill or a poison unit, a partial unit at SIGKILL, CRAB3's probes,
units done twice), and ``useful`` the payload CPU of every unit's one kept completion. All in seconds.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np

from autosplit.sim.pool import Pool
from autosplit.sim.truth import Truth


@dataclass
class SimResult:
    """Metrics of one simulated task (times in seconds)."""

    policy: str
    makespan: float
    useful_cpu: float
    overhead_cpu: float
    thrown_cpu: float
    n_jobs: int
    n_attempts: int
    n_failed_attempts: int
    frac_soft_limit: float
    frac_hard_killed: float
    n_hard_killed: int
    n_tail_jobs: int
    n_stages: int
    stages: list[str]
    units: dict[str, int]
    units_done_twice: int
    reasons: list[tuple[str, str, int]] = field(default_factory=list)

    @property
    def cpu_waste_fraction(self) -> float:
        """(overhead + thrown-away CPU) / useful CPU."""
        return (self.overhead_cpu + self.thrown_cpu) / self.useful_cpu if self.useful_cpu > 0 else math.inf

    def row(self) -> dict[str, Any]:
        """The benchmark's row: makespan_s, cpu_waste_fraction, n_jobs, frac_soft_limit, ... (JSON-ready)."""
        return {
            "policy": self.policy,
            "makespan_s": self.makespan,
            "cpu_waste_fraction": self.cpu_waste_fraction,
            "n_jobs": self.n_jobs,
            "frac_soft_limit": self.frac_soft_limit,
            "n_tail_jobs": self.n_tail_jobs,
            "n_stages": self.n_stages,
            "n_attempts": self.n_attempts,
            "n_failed_attempts": self.n_failed_attempts,
            "frac_hard_killed": self.frac_hard_killed,
            "n_hard_killed": self.n_hard_killed,
            "units_done": self.units["done"],
            "units_quarantined": self.units["quarantined"],
            "units_lost": self.units["lost"],
            "units_unfinished": self.units["pending"] + self.units["assigned"],
            "useful_cpu_s": self.useful_cpu,
            "overhead_cpu_s": self.overhead_cpu,
            "thrown_cpu_s": self.thrown_cpu,
        }

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "cpu_waste_fraction": self.cpu_waste_fraction}


def summarize(sim: Any, policy: str) -> SimResult:
    """Metrics of a finished :class:`~autosplit.sim.Simulation`."""
    attempts = sim.attempts
    ends = [a.end for a in attempts]
    stages: list[str] = []
    for job in sim.jobs:
        if job.stage not in stages:
            stages.append(job.stage)
    limited = [a for a in attempts if not a.job.stage.startswith(("probe", "scout"))]
    n_limited = max(len(limited), 1)
    return SimResult(
        policy=policy,
        makespan=max(ends) if ends else 0.0,
        useful_cpu=float(sum(a.useful for a in attempts)),
        overhead_cpu=float(sum(a.overhead for a in attempts)),
        thrown_cpu=float(sum(a.thrown for a in attempts)),
        n_jobs=len(sim.jobs),
        n_attempts=len(attempts),
        n_failed_attempts=sum(1 for a in attempts if a.failed),
        frac_soft_limit=sum(1 for a in limited if a.outcome == "soft") / n_limited,
        frac_hard_killed=sum(1 for a in limited if a.outcome == "killed") / n_limited,
        n_hard_killed=sum(1 for a in attempts if a.outcome == "killed"),
        n_tail_jobs=sum(1 for job in sim.jobs if job.stage.startswith("tail")),
        n_stages=len(stages),
        stages=stages,
        units=sim.counts(),
        units_done_twice=int((sim.done_count > 1).sum()),
        reasons=list(sim.reasons),
    )


def lower_bound(truth: Truth, pool: Pool, *, jitter_quantile: float = 1e-3) -> float:
    """Makespan lower bound (seconds): no schedule of the completable units on ``pool`` ends earlier.

    It is ``max(work term, longest-unit term)``. Notation: ``W`` the reference seconds of the completable
    units (poison units left out), ``S = sum(slots / time_factor)`` the pool's reference seconds per
    wall-second, ``g_min`` the fastest site's time factor, ``f(t)`` the drift's cost factor at time ``t``.

    **Work term.** A unit of a job whose payload starts at ``s`` on a slot of factor ``g`` costs its
    reference seconds times ``g * X * f(s)`` (``X`` the attempt's node jitter): the factor is fixed at the
    payload's start, not taken at each instant. Take any schedule with makespan ``M`` and any moment ``t``
    at which a slot runs a payload: that payload started at some ``s <= t``, so its factor is at least
    ``m(t) = min(f(u) for 0 <= u <= t)`` (the running minimum of the drift). Per wall-second at ``t`` a
    slot therefore does at most ``1 / (g * X * m(t))`` reference seconds, and overheads and idle time only
    lower that. Summed over slots (``X`` at its mean, see below) and integrated, the work done by ``M`` is
    at most ``S * integral(0..M) dt / m(t)``; it must reach ``W``, so ``M >= Phi^-1(W / S)`` with
    ``Phi(T) = integral(0..T) dt / m(t)``. For :class:`~autosplit.sim.Drift` ``f(t) = 1 + a * min(t/r, 1)``:

    * ``a >= 0`` (rising cost): ``m(t) = f(0) = 1`` and the term is ``W / S``. A rising drift does not raise
      the bound: one job per slot started at once runs the whole task at factor 1. (The bound used before
      integrated the instantaneous factor ``f(t)``; that is larger, and such a schedule beats it.)
    * ``a < 0`` (falling cost): ``m = f``; ``Phi(T) = (r/a) ln(1 + a T/r)`` during the ramp and
      ``Phi(r) + (T - r)/(1 + a)`` after it, inverted in closed form.

    **Longest-unit term.** Units are never split, so the longest unit runs in one job on one slot: its
    payload lasts at least ``w_max * g_min * X * min_t f(t)``, and ``M`` is at least that.

    **Node jitter.** ``X`` is lognormal with mean 1 (log-sd ``pool.node_sigma``), drawn per attempt after
    the policy chose the job. The work term takes ``X`` at its mean: a slot's work per wall-second over
    its jobs is ``sum(w_i) / sum(w_i X_i)``, whose expectation for jitter independent of the job is 1, so
    the term holds up to fluctuations of order ``node_sigma / sqrt(jobs)``, far below the per-job
    overhead every schedule pays, and exactly when ``node_sigma = 0``. The longest-unit term depends on one
    draw, so it takes the jitter's ``jitter_quantile`` quantile (``X = 1`` when ``node_sigma = 0``).
    """
    work = truth.total_seconds() / pool.speed_sum
    drift = truth.drift
    if drift is not None and drift.amplitude < 0:
        a, r = drift.amplitude, drift.ramp_seconds
        during_ramp = r / a * math.log1p(a)  # Phi(r): reference work per unit rate done during the ramp
        if work <= during_ramp:
            work = r / a * math.expm1(a * work / r)
        else:
            work = r + (work - during_ramp) * (1.0 + a)
    workable = truth.workable()
    if not workable.any():
        return work
    min_drift = 1.0 if drift is None else min(1.0, 1.0 + drift.amplitude)
    s = pool.node_sigma
    jitter = 1.0 if s == 0 else math.exp(-0.5 * s * s + s * NormalDist().inv_cdf(jitter_quantile))
    longest = float(truth.seconds[workable].max()) * float(pool.time_factors.min()) * min_drift * jitter
    return max(work, longest)


def job_table(sim: Any) -> dict[str, np.ndarray]:
    """Per-attempt arrays (stage, outcome, dispatched, end, overhead, payload, useful, thrown, n_units)."""
    attempts = sim.attempts
    return {
        "stage": np.array([a.job.stage for a in attempts]),
        "outcome": np.array([a.outcome for a in attempts]),
        "dispatched": np.array([a.dispatched for a in attempts]),
        "end": np.array([a.end for a in attempts]),
        "overhead": np.array([a.overhead for a in attempts]),
        "payload": np.array([a.payload for a in attempts]),
        "useful": np.array([a.useful for a in attempts]),
        "thrown": np.array([a.thrown for a in attempts]),
        "n_units": np.array([a.job.n_units for a in attempts]),
    }


def stage_windows(sim: Any) -> list[dict[str, float]]:
    """Per stage (in first-dispatch order): ``start`` and ``end`` (seconds) and the slot-seconds its attempts
    held (``busy``). With ``n_slots * (end - start) - busy`` a policy whose stages do not overlap sees the
    slot time a stage left idle (its ramp-down while the next stage waits for its last job)."""
    windows: dict[str, dict[str, float]] = {}
    for a in sim.attempts:
        w = windows.setdefault(a.job.stage, {"start": a.dispatched, "end": a.end, "busy": 0.0})
        w["start"] = min(w["start"], a.dispatched)
        w["end"] = max(w["end"], a.end)
        w["busy"] += a.end - a.dispatched
    return [{"stage": name, **w} for name, w in sorted(windows.items(), key=lambda kv: kv[1]["start"])]
