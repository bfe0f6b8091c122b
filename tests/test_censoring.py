"""Censoring-aware cost estimation, calibrated on synthetic workloads with known true unit costs.

A probe killed at its hard limit in the middle of a long lumi never finishes that lumi, and a fit made
while slow probes still run sees the fast ones first: fitted only on finished units, the model is biased
low exactly where unit costs have heavy tails. Here probes take a stratified sample of at most 2 % of the
events, with a soft limit and a hard limit twice as long, on four workloads whose unit costs no feature
explains: constant (5 % noise), bimodal (10 % of the lumis 8x slower), lognormal (log-sd 1) and
Pareto-tailed (20 % stragglers with a Lomax tail of index 2.5). Two moments are checked:

* **kill**: every probe has ended; the ones killed in the middle of a unit report it ``in_progress``;
* **early**: half of the (longer) probes have ended, the rest are still running and are given to the fit
  as censored groups (their units took at least as long as they have been running).

The predicted total must be within 10 % of the truth in at least 90 % of the seeds with the censored
information, and the same fits without it (reports stripped of ``in_progress``, no groups) must fail that
criterion on the bimodal workload (and on the heavy tails early), so these tests would break without the
feature. Fixed seeds; a unit takes about 100 s, one site, 60 s of set-up per job.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import msgspec
import numpy as np
import polars as pl
import pytest

from autosplit.estimators import EstimatorError, JobReport, UnitCostModel
from autosplit.sim.calibration import probe_with_limits
from autosplit.sim.synthetic import Site, SyntheticWorkload, read_brilcalc_csv, synthetic_dataset
from tests.conftest import DATA

COMMON = {
    "sites": (Site("T2_ONLY", 1.0, 1.0),),
    "seconds_per_event": 0.2,
    "overhead_seconds": 60.0,
}
WORKLOADS = {
    "constant": SyntheticWorkload(unit_sigma=0.05, tail_fraction=0.0, **COMMON),
    "bimodal": SyntheticWorkload(
        unit_sigma=0.1, tail_fraction=0.0, slow_fraction=0.1, slow_factor=8.0, **COMMON
    ),
    "lognormal": SyntheticWorkload(unit_sigma=1.0, tail_fraction=0.0, **COMMON),
    "pareto": SyntheticWorkload(unit_sigma=0.1, tail_fraction=0.2, tail_shape=2.5, tail_scale=3.0, **COMMON),
}
#: kill: short probes (a few lumis each); early: longer probes, fitted when half of them have ended
SCENARIOS = {
    "kill": {"n_units": 60_000, "soft_limit": 600.0, "hard_limit": 1200.0, "reported_fraction": 1.0},
    "early": {"n_units": 100_000, "soft_limit": 2400.0, "hard_limit": 4800.0, "reported_fraction": 0.5},
}
SEEDS = {"kill": range(30), "early": range(30)}


@functools.cache
def profile() -> pl.DataFrame:
    return read_brilcalc_csv(DATA / "brilcalc" / "lumi_small.csv")


def without_censoring(reports: list[JobReport]) -> list[JobReport]:
    return [msgspec.structs.replace(report, in_progress=None) for report in reports]


@dataclass
class Outcome:
    """Per seed: predicted / true total seconds with and without the censored information, the fitted
    unit spreads, and how many censored measurements there were."""

    ratio: np.ndarray
    ratio_ignoring: np.ndarray
    unit_cv: np.ndarray
    unit_cv_ignoring: np.ndarray
    halfwidth: np.ndarray
    halfwidth_ignoring: np.ndarray
    n_censored: np.ndarray
    event_fraction: np.ndarray

    @staticmethod
    def within(ratios: np.ndarray) -> float:
        return float(np.mean(np.abs(ratios - 1.0) <= 0.10))


@functools.cache
def outcome(scenario: str, workload_name: str) -> Outcome:
    options = dict(SCENARIOS[scenario])
    n_units = options.pop("n_units")
    workload = WORKLOADS[workload_name]
    rows = []
    for seed in SEEDS[scenario]:
        dataset = synthetic_dataset(n_units, profile=profile(), seed=seed)
        probes = probe_with_limits(workload, dataset, rng=np.random.default_rng([seed, 7]), **options)
        truth = float(workload.expected_unit_seconds(dataset.units).sum())
        model = UnitCostModel().fit(probes.reports, dataset, censored=probes.censored)
        ignoring = UnitCostModel().fit(without_censoring(probes.reports), dataset)
        low, estimate, high = model.total_seconds_interval(dataset.units)
        low_i, estimate_i, high_i = ignoring.total_seconds_interval(dataset.units)
        rows.append(
            (
                estimate / truth,
                estimate_i / truth,
                model.unit_cv_,
                ignoring.unit_cv_,
                (high - low) / 2 / estimate,
                (high_i - low_i) / 2 / estimate_i,
                model.n_censored_units_ + model.n_censored_groups_,
                probes.event_fraction,
            )
        )
    return Outcome(*map(np.array, zip(*rows, strict=True)))


#: where fitting on finished units only misses the criterion (the test would break without the feature)
FAILS_WITHOUT = {
    ("kill", "bimodal"),
    ("kill", "pareto"),
    ("early", "bimodal"),
    ("early", "lognormal"),
    ("early", "pareto"),
}
#: the constant workload's fitted unit spread stays below this; heavy tails' is several times larger
CONSTANT_SPREAD = 0.15


@pytest.mark.parametrize("workload", list(WORKLOADS))
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_censored_fit_total_and_spread(scenario: str, workload: str) -> None:
    """One test per case, so that each case is simulated once (the seeds take a few seconds)."""
    result = outcome(scenario, workload)
    assert np.all(result.event_fraction <= 0.02)
    if workload != "constant":
        assert np.mean(result.n_censored > 0) >= 0.75, "the limits cut long units (or probes still run)"

    # 1. With the censored measurements: total within 10 % of the truth in at least 90 % of the seeds.
    assert Outcome.within(result.ratio) >= 0.90, np.round(result.ratio, 3)
    assert abs(np.median(result.ratio) - 1.0) < 0.05, np.round(result.ratio, 3)

    # 2. Without them (finished units only), the same probes miss the criterion, biased low.
    if (scenario, workload) in FAILS_WITHOUT:
        assert Outcome.within(result.ratio_ignoring) < 0.90, np.round(result.ratio_ignoring, 3)
        assert np.median(result.ratio_ignoring) < 0.95

    # 3. The confidence interval of the total widens with the censored tail.
    if workload != "constant":
        assert np.median(result.halfwidth) > np.median(result.halfwidth_ignoring)

    # 4. Heavy tails show in the fitted unit spread, several times the constant workload's, and the
    # censored tail widens what the finished units alone show, towards the true spread.
    if workload == "constant":
        assert np.median(result.unit_cv) < CONSTANT_SPREAD
    else:
        assert np.median(result.unit_cv) > 4 * CONSTANT_SPREAD
        assert np.all(result.unit_cv >= result.unit_cv_ignoring - 1e-12)
        true_cv = noise_cv(WORKLOADS[workload])
        error, error_ignoring = np.abs(result.unit_cv - true_cv), np.abs(result.unit_cv_ignoring - true_cv)
        assert np.median(error) < 0.9 * np.median(error_ignoring), (true_cv, np.round(result.unit_cv, 2))


def noise_cv(workload: SyntheticWorkload) -> float:
    """Coefficient of variation of a workload's unit noise (what no feature explains), from 2 million draws."""
    noise = workload.unit_noise(2_000_000, np.random.default_rng(0))
    return float(noise.std() / noise.mean())


# ---------------------------------------------------------------------- the API on small cases
def small_case(seed: int = 3, workload: str = "bimodal", **options):
    """Probes of a 20,000-lumi dataset fitted when half of them have ended."""
    dataset = synthetic_dataset(20_000, profile=profile(), seed=seed)
    settings = {"soft_limit": 1200.0, "hard_limit": 1800.0, "reported_fraction": 0.5, **options}
    probes = probe_with_limits(WORKLOADS[workload], dataset, rng=np.random.default_rng(seed), **settings)
    return dataset, probes


def test_without_censored_information_the_fit_is_unchanged() -> None:
    dataset, probes = small_case()
    plain = without_censoring(probes.reports)
    reference = UnitCostModel().fit(plain, dataset)
    empty = probes.censored.head(0)
    for model in (
        UnitCostModel().fit(plain, dataset, censored=None),
        UnitCostModel().fit(plain, dataset, empty),
    ):
        np.testing.assert_array_equal(model.coef_, reference.coef_)
        np.testing.assert_array_equal(model.coef_folds_, reference.coef_folds_)
        np.testing.assert_array_equal(model.scores_, reference.scores_)
        assert model.unit_cv_ == reference.unit_cv_ and model.censoring_factor_ == 1.0
        assert model.n_censored_units_ == model.n_censored_groups_ == 0 and model.censoring_cv_ == 0.0


def test_censored_groups_raise_the_level_and_widen_the_interval() -> None:
    dataset, probes = small_case()
    assert probes.censored is not None and probes.censored["group"].n_unique() >= 5
    ignoring = UnitCostModel().fit(without_censoring(probes.reports), dataset)
    model = UnitCostModel().fit(probes.reports, dataset, censored=probes.censored)
    assert model.n_censored_groups_ == probes.censored["group"].n_unique()
    assert model.censoring_factor_ > 1.1 and model.censoring_cv_ > 0
    np.testing.assert_allclose(model.coef_, ignoring.coef_ * model.censoring_factor_)
    # Every group is a job of the jackknife (one per refit while there are at most max_folds jobs).
    each = UnitCostModel(max_folds=100).fit(probes.reports, dataset, censored=probes.censored)
    assert each.coef_folds_.shape[0] == len(probes.reports) + model.n_censored_groups_
    assert model.coef_folds_.shape[0] == model.max_folds
    low, estimate, high = model.total_seconds_interval(dataset.units)
    low_i, estimate_i, high_i = ignoring.total_seconds_interval(dataset.units)
    assert estimate > estimate_i and (high - low) / estimate > (high_i - low_i) / estimate_i
    # The censored units take part in the unit quantiles: the 95 % quantile of a unit rises.
    ratio = model.predict_quantile(dataset.units, 0.95) / model.predict_unit_seconds(dataset.units)[0]
    ratio_i = ignoring.predict_quantile(dataset.units, 0.95) / ignoring.predict_unit_seconds(dataset.units)[0]
    assert ratio[0] > ratio_i[0]
    assert model.summary()["censoring"] == {
        "factor": model.censoring_factor_,
        "cv": model.censoring_cv_,
        "units": model.n_censored_units_,
        "groups": model.n_censored_groups_,
    }


def test_a_probe_killed_in_its_first_unit_still_counts() -> None:
    dataset, probes = small_case(reported_fraction=1.0)
    reports = without_censoring(probes.reports)
    units = dataset.units
    # A probe that never finished a unit: 50 times the typical unit, and still running when killed.
    row = units.row(7, named=True)
    typical = float(np.median([u["seconds"] for r in reports for u in r.units]))
    stuck = JobReport(
        job_id="probe-stuck",
        stage="probe",
        site="T2_ONLY",
        hard_killed=True,
        in_progress={"run": row["run"], "lumi": row["lumi"], "seconds": 50 * typical},
    )
    base = UnitCostModel().fit(reports, dataset)
    model = UnitCostModel().fit([*reports, stuck], dataset)
    assert model.n_censored_units_ == 1 and model.censoring_factor_ > 1.0
    assert model.predict_unit_seconds(units)[0].sum() > base.predict_unit_seconds(units)[0].sum()
    assert model.scores_.max() > base.scores_.max(), "its tail is among the unit scores"


def test_units_in_progress_need_the_units_table() -> None:
    dataset, probes = small_case(soft_limit=600.0, hard_limit=700.0, reported_fraction=1.0)
    assert any(r.in_progress is not None for r in probes.reports)
    with pytest.warns(UserWarning, match="unit in progress, which is left out"):
        model = UnitCostModel().fit(probes.reports)
    plain = UnitCostModel().fit(without_censoring(probes.reports))
    np.testing.assert_array_equal(model.coef_, plain.coef_)
    assert model.n_censored_units_ == 0


def test_job_level_timing_keeps_working_with_censoring() -> None:
    """CMSSW-like reports (job-level seconds, run and lumi only) with the running probes as groups."""
    dataset, probes = small_case()
    fjr = [
        msgspec.structs.replace(
            report,
            units=[{"run": u["run"], "lumi": u["lumi"]} for u in report.units],
            events_read=sum(u["events"] for u in report.units),
        )
        for report in probes.reports
    ]
    truth = float(WORKLOADS["bimodal"].expected_unit_seconds(dataset.units).sum())
    model = UnitCostModel().fit(fjr, dataset, censored=probes.censored)
    ignoring = UnitCostModel().fit(without_censoring(fjr), dataset)
    assert model.mode_ == "job" and model.n_censored_groups_ > 0
    total = model.predict_unit_seconds(dataset.units)[0].sum()
    assert abs(total / truth - 1) < abs(ignoring.predict_unit_seconds(dataset.units)[0].sum() / truth - 1)
    assert model.node_cv_ > ignoring.node_cv_, "job-level spread takes the censored tail"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop("seconds_at_least"), "missing column.*seconds_at_least"),
        (lambda f: f.with_columns(pl.lit(-1.0).alias("seconds_at_least")), "finite and >= 0"),
        (lambda f: f.with_columns(pl.lit(float("nan")).alias("seconds_at_least")), "finite and >= 0"),
        (
            lambda f: f.with_columns(pl.Series("seconds_at_least", np.arange(f.height, dtype=float))),
            "seconds_at_least differs between its rows",
        ),
        (
            lambda f: f.with_columns(
                pl.when(pl.int_range(pl.len()) == 0).then(999_999).otherwise("lumi").alias("lumi")
            ),
            "lumi 999999 is not in the units table",
        ),
        (lambda f: pl.concat([f, f.head(1)]), "listed twice in the same group"),
        (lambda f: f.to_dict(as_series=False), "must be a polars DataFrame"),
    ],
)
def test_censored_groups_are_checked(change, message) -> None:
    dataset, probes = small_case()
    with pytest.raises(EstimatorError, match=message):
        UnitCostModel().fit(probes.reports, dataset, censored=change(probes.censored))


def test_censored_groups_need_the_units_table() -> None:
    dataset, probes = small_case()
    with pytest.raises(EstimatorError, match="censored groups need the units table"):
        UnitCostModel().fit(without_censoring(probes.reports), censored=probes.censored)
