"""The cost model stays finite on odd but valid reports (regression: ``math domain error`` in the benchmark).

With job-level timings only (CMSSW framework job reports) the fit may put no weight on the per-unit term:
a job of zero-event lumis is then predicted at 0 s, yet it measured a few seconds. Its ratio observed /
predicted was 1e300, the node spread became infinite, and ``shared_factor_quantile`` took the log of 0
(exp of -10 sigma underflowed): every ``autosplit-fjr`` run on pile-up-like workloads died mid-run.
"""

from __future__ import annotations

import math

import numpy as np

from autosplit.estimators import JobReport, UnitCostModel
from autosplit.sim.synthetic import read_brilcalc_csv, synthetic_dataset
from tests.conftest import DATA


def _fjr_reports(n_jobs: int = 700, empty_seconds: float = 1.0):
    dataset = synthetic_dataset(5000, profile=read_brilcalc_csv(DATA / "brilcalc" / "lumi_small.csv"), seed=1)
    units = dataset.units
    events, pileup = units["events"].to_numpy(), units["pileup"].to_numpy()
    run, lumi = units["run"].to_numpy(), units["lumi"].to_numpy()
    cost = 1e-3 * events * pileup**2  # no per-lumi constant: the fit leaves the per-unit term near 0
    rng = np.random.default_rng(0)
    full, zero = np.flatnonzero(events > 0), np.flatnonzero(events == 0)
    assert zero.size >= 6

    def report(job_id: str, rows: np.ndarray, seconds: float) -> JobReport:
        return JobReport(
            job_id=job_id,
            stage="processing",
            site="T2_A",
            wall_seconds=seconds + 60.0,
            init_seconds=60.0,
            loop_seconds=seconds,
            events_read=int(events[rows].sum()),
            units=[{"run": int(run[r]), "lumi": int(lumi[r])} for r in rows],
        )

    reports = []
    for j in range(n_jobs):
        rows = rng.choice(full, 8, replace=False)
        reports.append(report(f"job-{j}", rows, float(cost[rows].sum() * rng.lognormal(0.0, 0.1))))
    for j in range(2):  # jobs of zero-event lumis that still took a second
        reports.append(report(f"empty-{j}", zero[3 * j : 3 * j + 3], empty_seconds))
    return dataset, reports


def test_a_job_predicted_at_zero_seconds_does_not_make_the_spread_infinite() -> None:
    dataset, reports = _fjr_reports()
    model = UnitCostModel(match_quantile=0.95).fit(reports, dataset)  # raised ValueError before the fix
    assert model.mode_ == "job"
    assert math.isfinite(model.node_cv_) and 0.05 < model.node_cv_ < 0.2  # the true job spread is 0.1
    assert math.isfinite(model.shared_cv)
    q = model.shared_factor_quantile(0.95)
    assert 1.0 < q < 1.5
    mean, std = model.predict_unit_seconds(dataset.units)
    assert np.isfinite(mean).all() and np.isfinite(std).all()


def test_the_factor_quantile_of_an_extreme_spread_stays_finite() -> None:
    dataset, reports = _fjr_reports(n_jobs=200)
    model = UnitCostModel(match_quantile=0.95).fit(reports, dataset)
    for node_cv in (50.0, 1e6, math.inf):
        model.node_cv_ = node_cv
        for q in (0.01, 0.5, 0.95, 0.999):
            value = model.shared_factor_quantile(q)
            assert math.isfinite(value) and value > 0
