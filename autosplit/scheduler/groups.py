"""Per-run cost factors learned from the reports (a :class:`Scheduler` part).

Conditions that no unit feature shows often change from run to run (detector conditions, calibration,
trigger menu): a whole run may cost several times what the cost model predicts from events and pile-up.
The reports show it: every measured unit (or job, with job-level timings only, apportioned over its
units by their predicted shares) adds its seconds to its run's observed total and its prediction to the
run's predicted total. A run's factor is the shrunk ratio ``(observed + tau) / (predicted + tau)``, where
``tau`` is the predicted seconds of ``prior_units`` typical units: runs with few measurements stay near 1.
Ratios of single units (or jobs) are capped at ``cap`` so one straggler does not re-price a whole run.
The observed seconds are first scaled so that, over all measured units, they sum to the predicted seconds:
the factors re-price runs against each other and leave the level to the cost model, which also counts
what the measured units leave out (units cut off while they ran, the tail beyond the cap). Without that,
a heavy-tailed workload's factors came out below 1 on every run and undid the model's censoring level
(the probes' prediction of the total was 0.80 of the truth on ``grid``/``heavy-tail``, the model's 0.96).

The job-wide spread (``shared_cv``) is scaled down by how much the factors tighten the measured jobs'
ratios (leave-one-job-out, so a job does not explain itself), never up.
"""

from __future__ import annotations

import numpy as np


class RunFactors:
    """Measurements for per-run factors, kept per unit row: its seconds (per-unit timing) or, with job-level
    timing only, its job's total (``job_total``, apportioned when the factors are computed)."""

    def __init__(self, run_index: np.ndarray, prior_units: float = 3.0, cap: float = 5.0) -> None:
        self.run_index = np.asarray(run_index, dtype=np.int32)  #: dense run number of every unit row
        self.n_runs = int(self.run_index.max()) + 1 if self.run_index.size else 0
        self.prior_units = float(prior_units)
        self.cap = float(cap)
        n = self.run_index.size
        self.seconds = np.full(n, np.nan, dtype=np.float32)  # per-unit measured seconds
        self.job = np.full(n, -1, dtype=np.int32)  # the job that measured the row
        self.job_total: dict[int, float] = {}  # job-level timing: the job's processing seconds
        self.n_jobs = 0

    def add(
        self, job: int, rows: np.ndarray, seconds: np.ndarray | None = None, total: float | None = None
    ) -> None:
        """Job ``job`` measured ``rows``: per-row ``seconds``, or only their ``total``."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        if seconds is not None:
            secs = np.asarray(seconds, dtype=np.float64)
            if secs.shape != rows.shape or not np.isfinite(secs).all() or (secs < 0).any():
                return
            self.seconds[rows] = secs
        elif total is not None and np.isfinite(total) and total >= 0:
            self.seconds[rows] = np.nan
            self.job_total[int(job)] = float(total)
        else:
            return
        self.job[rows] = job
        self.n_jobs += 1

    def factors(self, mean: np.ndarray) -> tuple[np.ndarray, float]:
        """Per-row factor (aligned with ``mean``) and the factor by which the job-wide spread shrinks."""
        ones = np.ones(mean.size)
        if self.n_jobs < 10 or self.n_runs < 2:
            return ones, 1.0
        rows = np.flatnonzero(self.job >= 0)
        job = self.job[rows].astype(np.int64)
        pred = mean[rows]
        obs = self.seconds[rows].astype(np.float64)
        level = np.isnan(obs)
        if level.any():  # job-level timing: the job's seconds apportioned by predicted share
            jl = job[level]
            uniq, inv = np.unique(jl, return_inverse=True)
            share_total = np.bincount(inv, weights=pred[level])
            totals = np.array([self.job_total.get(int(j), np.nan) for j in uniq])
            with np.errstate(invalid="ignore", divide="ignore"):
                obs[level] = totals[inv] * pred[level] / share_total[inv]
        ok = (pred > 0) & np.isfinite(obs)
        if ok.sum() < 10:
            return ones, 1.0
        rows, job, pred, obs = rows[ok], job[ok], pred[ok], obs[ok]
        obs = np.minimum(obs, self.cap * pred)
        # Relative to the model's level: the measured seconds leave out what the model's level holds (units
        # cut off while they ran, the capped tail), so without this the factors would undo it.
        obs = obs * (pred.sum() / obs.sum()) if obs.sum() > 0 else obs
        run = self.run_index[rows].astype(np.int64)
        tau = self.prior_units * float(np.median(pred))
        O_r = np.bincount(run, weights=obs, minlength=self.n_runs)
        P_r = np.bincount(run, weights=pred, minlength=self.n_runs)
        f_r = (O_r + tau) / (P_r + tau)
        # Per (job, run): the job's own share, for the leave-one-job-out factors.
        _, job_dense = np.unique(job, return_inverse=True)
        n_jobs = int(job_dense.max()) + 1
        key = job_dense * self.n_runs + run
        uniq, inv = np.unique(key, return_inverse=True)
        O_jr = np.bincount(inv, weights=obs)
        P_jr = np.bincount(inv, weights=pred)
        r_of = uniq % self.n_runs
        j_of = uniq // self.n_runs
        f_loo = (O_r[r_of] - O_jr + tau) / (P_r[r_of] - P_jr + tau)
        O_j = np.bincount(j_of, weights=O_jr, minlength=n_jobs)
        P_j = np.bincount(j_of, weights=P_jr, minlength=n_jobs)
        C_j = np.bincount(j_of, weights=P_jr * f_loo, minlength=n_jobs)
        use = (P_j > 0) & (C_j > 0) & (O_j > 0)
        shrink = 1.0
        if use.sum() >= 10:
            sd_b = _robust_sd(np.log(O_j[use] / P_j[use]))
            sd_a = _robust_sd(np.log(O_j[use] / C_j[use]))
            if sd_b > 0:
                shrink = float(min(max(sd_a / sd_b, 0.3), 1.0))
        return f_r[self.run_index], shrink


def _robust_sd(x: np.ndarray) -> float:
    """Spread of ``x`` from its interquartile range (a normal's sd)."""
    q75, q25 = np.percentile(x, [75, 25])
    return float(q75 - q25) / 1.349
