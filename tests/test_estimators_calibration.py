"""Calibration on synthetic workloads with known true per-unit costs (issue 4, item 5).

Workload: 40,000 lumis whose pile-up and luminosity follow the real brilcalc profile in tests/data (events
per lumi proportional to recorded luminosity), per-event cost rising as pileup**1.5, lognormal unit noise
with a 1 % heavy (Lomax) tail of stragglers, node jitter, and two sites 0.8x and 1.3x as slow sharing the
jobs. Probes cover at most 1 % of the events: 60 short stratified probes (more, smaller probes beat fewer,
longer ones: job-to-job speed differences dominate the uncertainty), 30 more per round until the total is
known to 10 % (95 % confidence). The remaining units then run in jobs of about 4 hours. Fixed seeds; the benchmark (benchmarks/bench_estimators.py) runs
more seeds and more workloads.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from autosplit.estimators import MeanRateEstimator, RatioEstimator, UnitCostModel
from autosplit.sim.calibration import evaluate_estimators, simulate_probing
from autosplit.sim.synthetic import Site, SyntheticWorkload, read_brilcalc_csv, synthetic_dataset
from tests.conftest import DATA

PROBES = {"first_probes": 60, "more_probes": 30, "seconds_per_probe": 900.0, "max_event_fraction": 0.01}


@pytest.fixture(scope="module")
def profile():
    return read_brilcalc_csv(DATA / "brilcalc" / "lumi_small.csv")


def experiments(profile, seeds, **options):
    workload = SyntheticWorkload()
    out = []
    for seed in seeds:
        ds = synthetic_dataset(40_000, profile=profile, seed=seed)
        estimators = {"unit": UnitCostModel(), "ratio": RatioEstimator(), "crab": MeanRateEstimator()}
        out.append(evaluate_estimators(workload, ds, estimators, seed=seed, **PROBES, **options))
    return out


@pytest.fixture(scope="module")
def per_unit(profile):
    return experiments(profile, range(40))


@pytest.fixture(scope="module")
def job_level(profile):
    # CMSSW-like reports: job-level timing, run/lumi only; features come from the dataset.
    return experiments(profile, range(100, 130), per_unit=False, unit_details=False)


def test_brilcalc_profile_is_real(profile):
    assert profile.height == 998 and sorted(profile["run"].unique().to_list()) == [297050, 297056, 297057]
    assert 4 < profile["pileup"].min() < 6 and 46 < profile["pileup"].max() < 48


@pytest.mark.parametrize("results", ["per_unit", "job_level"])
def test_total_cpu_within_10_percent_in_90_percent_of_seeds(results, request):
    runs = request.getfixturevalue(results)
    assert all(campaign.event_fraction <= 0.01 for campaign, _ in runs)
    ratios = np.array([res["unit"].ratio for _, res in runs])
    assert np.mean(np.abs(ratios - 1.0) <= 0.10) >= 0.90, ratios
    assert abs(np.median(ratios) - 1.0) < 0.03


@pytest.mark.parametrize("results", ["per_unit", "job_level"])
def test_job_runtime_quantile_covers_93_percent(results, request):
    runs = request.getfixturevalue(results)
    jobs = np.array([res["unit"].n_jobs for _, res in runs])
    covered = np.array([res["unit"].job_coverage for _, res in runs]) * jobs
    assert covered.sum() / jobs.sum() >= 0.93
    # ... and not by being uselessly wide. With the truth known the 95 % bound for two sites 0.8x/1.3x
    # is about 1.45x the runtime; job-level reports cannot tell unit noise from node speed, so their
    # bound is wider.
    widest = 1.7 if results == "per_unit" else 2.0
    assert np.median([res["unit"].job_bound_over_runtime for _, res in runs]) < widest


def test_probing_stops_early_once_the_total_is_known(per_unit):
    stopped = [campaign.enough for campaign, _ in per_unit]
    assert np.mean(stopped) >= 0.5
    assert min(len(campaign.reports) for campaign, _ in per_unit) >= 60


def test_unit_quantile_and_total_interval_are_calibrated(per_unit):
    unit_coverage = np.mean([res["unit"].unit_coverage for _, res in per_unit])
    assert 0.92 <= unit_coverage <= 0.98
    assert np.mean([res["unit"].interval_covers for _, res in per_unit]) >= 0.85


def test_mean_rate_estimator_is_biased_on_the_same_probes(per_unit):
    crab = np.array([res["crab"].ratio for _, res in per_unit])
    ratio = np.array([res["ratio"].ratio for _, res in per_unit])
    assert np.median(crab) < 0.94 and abs(np.median(ratio) - 1.0) < 0.03
    assert np.mean(crab < ratio) >= 0.9
    # CRAB3's fixed 0.75 margin covers far fewer jobs than the calibrated quantile.
    assert np.mean([res["crab"].job_coverage for _, res in per_unit]) < 0.85


def test_mean_rate_bias_matches_theory():
    """Job speeds lognormal with log-sd s: the mean of rates overestimates the rate by exp(s**2)."""
    s = 0.4
    workload = SyntheticWorkload(
        node_sigma=s,
        sites=(Site("T2_ONLY", 1.0, 1.0),),
        unit_sigma=0.05,
        tail_fraction=0.0,
        pileup_power=0.0,
        seconds_per_unit=0.0,
    )
    ratios = []
    for seed in range(60):
        ds = synthetic_dataset(5_000, seed=seed)
        campaign = simulate_probing(
            workload,
            ds,
            RatioEstimator(),
            rng=np.random.default_rng(seed),
            first_probes=20,
            max_rounds=1,
            max_event_fraction=0.02,
            first_fraction=1.0,
        )
        truth = workload.expected_unit_seconds(ds.units).sum()
        ratios.append(
            [
                estimator.fit(campaign.reports).predict_unit_seconds(ds.units)[0].sum() / truth
                for estimator in (MeanRateEstimator(), RatioEstimator(), UnitCostModel())
            ]
        )
    crab, ratio, unit = np.array(ratios).T
    # On the same probes, CRAB3's total is short by the factor exp(-s**2) (0.85 here).
    assert np.mean(crab / ratio) == pytest.approx(math.exp(-(s**2)), abs=0.03)
    assert np.mean(crab < ratio) >= 0.9
    # The ratio estimator and the default model are unbiased: their mean is within 3 standard errors of 1.
    for values in (ratio, unit):
        se = values.std(ddof=1) / math.sqrt(values.size)
        assert se < 0.03 and abs(values.mean() - 1.0) < 3 * se
