"""Estimators: what each one learns from job reports, on small workloads with known truth."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from autosplit.estimators import (
    EstimatorError,
    JobReport,
    MeanRateEstimator,
    MemoryModel,
    OutputModel,
    RatioEstimator,
    UnitCostModel,
    job_runtime_distribution,
    job_runtime_quantile,
    read_fjr,
)
from autosplit.sim.synthetic import Site, SyntheticWorkload, synthetic_dataset
from autosplit.splitting.model import CostModel
from tests.conftest import DATA

EXACT = SyntheticWorkload(
    seconds_per_event=0.05,
    pileup_power=1.0,
    seconds_per_unit=2.0,
    unit_sigma=0.0,
    tail_fraction=0.0,
    node_sigma=0.0,
    sites=(Site("T2_ONLY", 1.0, 1.0),),
)


def run(workload, n_units=3000, n_jobs=20, units_per_job=15, seed=0, **report_kw):
    """Reports of ``n_jobs`` jobs over random units of a synthetic dataset, and the dataset."""
    rng = np.random.default_rng(seed)
    ds = synthetic_dataset(n_units, seed=seed)
    rows = np.sort(rng.choice(n_units, n_jobs * units_per_job, replace=False))
    job_index = np.full(n_units, -1)
    job_index[rows] = rng.permutation(np.arange(rows.size) % n_jobs)
    jobs = workload.run_jobs(ds.units, job_index, rng)
    return workload.reports(ds.units, jobs, rng, stage="probe", **report_kw), ds, jobs


def test_recovers_exact_coefficients():
    reports, ds, _ = run(EXACT)
    model = UnitCostModel(features=["pileup"], use_bytes=False).fit(reports)
    coef = dict(zip(model.terms_, model.coef_, strict=True))
    assert model.terms_ == ["unit", "events", "events*pileup", "events*pileup^2"]
    assert coef["unit"] == pytest.approx(2.0, rel=1e-6)
    assert coef["events"] == pytest.approx(0.0, abs=1e-6)  # seconds per event, vs 0.05 true total
    assert coef["events*pileup"] == pytest.approx(0.05 / 35.0, rel=1e-6)
    assert coef["events*pileup^2"] * 35.0**2 == pytest.approx(0.0, abs=1e-6)
    assert model.unit_cv_ == pytest.approx(0.0, abs=1e-6) and model.shared_cv == pytest.approx(0.0, abs=1e-6)
    mean, std = model.predict_unit_seconds(ds.units)
    np.testing.assert_allclose(mean, EXACT.expected_unit_seconds(ds.units), rtol=1e-6)
    assert np.all(std < 1e-6 * mean + 1e-9)
    assert model.overhead_seconds == pytest.approx(np.mean([r.init_seconds for r in reports]))


def test_auto_features_and_per_unit_cost_switches():
    reports, _, _ = run(EXACT)
    full = ["unit", "events", "events*pileup", "events*pileup^2", "bytes"]
    assert UnitCostModel().fit(reports).terms_ == full
    assert UnitCostModel(quadratic=False).fit(reports).terms_ == ["unit", "events", "events*pileup", "bytes"]
    assert UnitCostModel(features=[], per_unit_cost=False, use_bytes=False).fit(reports).terms_ == ["events"]


def test_level_is_the_ratio_estimator_despite_heavy_tails():
    workload = SyntheticWorkload(unit_sigma=0.6, tail_fraction=0.1, tail_shape=1.8)
    reports, ds, _ = run(workload, seed=3)
    units = pl.concat([r.units_table() for r in reports], how="diagonal")
    model = UnitCostModel().fit(reports)
    # The robust shape fit down-weights stragglers, the level puts the total back exactly.
    assert model.predict_unit_seconds(units)[0].sum() == pytest.approx(units["seconds"].sum(), rel=1e-9)
    events_only = UnitCostModel(features=[], per_unit_cost=False, use_bytes=False).fit(reports)
    assert events_only.coef_[0] == pytest.approx(RatioEstimator().fit(reports).seconds_per_event_, rel=1e-12)


def test_job_level_reports_need_the_units_table_for_features():
    workload = SyntheticWorkload(sites=(Site("T2_ONLY", 1.0, 1.0),))
    per_unit, ds, _ = run(workload, n_jobs=40, seed=5)
    fjr_like, _, _ = run(workload, n_jobs=40, seed=5, per_unit=False, unit_details=False)
    assert all(not r.has_unit_seconds and "events" not in r.units[0] for r in fjr_like)
    bare = UnitCostModel().fit(fjr_like)
    assert bare.mode_ == "job" and bare.terms_ == ["unit", "events"]
    with_features = UnitCostModel().fit(fjr_like, ds.units)
    assert with_features.terms_ == ["unit", "events", "events*pileup", "events*pileup^2", "bytes"]
    unit_model = UnitCostModel().fit(per_unit)
    truth = workload.expected_unit_seconds(ds.units).sum()
    for model in (bare, with_features, unit_model):
        assert model.predict_unit_seconds(ds.units)[0].sum() == pytest.approx(truth, rel=0.1)
    with pytest.raises(EstimatorError, match="pass the dataset's units table"):
        UnitCostModel(features=["pileup"]).fit(fjr_like)


def test_site_factors_are_learned_and_thin_sites_shrink():
    sites = (Site("T2_FAST", 0.7, 1.0), Site("T2_MID", 1.0, 1.0), Site("T2_SLOW", 1.5, 1.0))
    workload = SyntheticWorkload(sites=sites, node_sigma=0.05, unit_sigma=0.2, tail_fraction=0.0)
    reports, ds, jobs = run(workload, n_units=6000, n_jobs=90, units_per_job=10, seed=11)
    # One extra job at a site seen once, 40 % slower than the mix.
    lonely = reports[0]
    lonely_units = [dict(u, seconds=u["seconds"] / jobs.time_factor[0] * 1.4 * 1.07) for u in lonely.units]
    reports.append(JobReport(job_id="lonely", site="T2_RARE", units=lonely_units, init_seconds=300.0))
    model = UnitCostModel().fit(reports)
    mix = np.mean([s.time_factor for s in sites])
    for site in sites:
        assert model.site_factors_[site.name] == pytest.approx(site.time_factor / mix, rel=0.06)
    raw, shrunk = model.site_raw_factors_["T2_RARE"], model.site_factors_["T2_RARE"]
    assert raw > 1.2 and 1.0 <= shrunk < raw
    # The site spread is in shared_cv for an unknown destination, and out of it for a known one.
    assert model.site_cv_ > 0.2 and model.shared_cv > model.site_cv_
    slow = model.for_site("T2_SLOW")
    assert slow.shared_cv < 0.6 * model.shared_cv
    np.testing.assert_allclose(
        slow.predict_unit_seconds(ds.units)[0],
        model.predict_unit_seconds(ds.units)[0] * model.site_factors_["T2_SLOW"],
    )
    unknown = model.for_site("T2_NEVER_SEEN")
    np.testing.assert_allclose(
        unknown.predict_unit_seconds(ds.units)[0], model.predict_unit_seconds(ds.units)[0]
    )
    weighted = UnitCostModel(site_weights={"T2_SLOW": 1.0}).fit(reports)
    np.testing.assert_allclose(
        weighted.predict_unit_seconds(ds.units)[0], slow.predict_unit_seconds(ds.units)[0], rtol=1e-9
    )
    no_sites = UnitCostModel(site_factors=False).fit(reports)
    assert no_sites.site_factors_ == {} and no_sites.node_cv_ > model.node_cv_


def test_all_estimators_satisfy_the_planner_protocol():
    reports, ds, _ = run(SyntheticWorkload())
    for estimator in (UnitCostModel(), RatioEstimator(), MeanRateEstimator()):
        model = estimator.fit(reports, ds)
        assert isinstance(model, CostModel)
        mean, std = model.predict_unit_seconds(ds.units)
        assert mean.shape == std.shape == (ds.n_units,) and np.all(mean >= 0) and np.all(std >= 0)
        assert math.isfinite(model.overhead_seconds) and model.shared_cv >= 0


def test_job_runtime_matches_the_protocol_arithmetic():
    reports, ds, _ = run(SyntheticWorkload())
    model = UnitCostModel().fit(reports)
    units = ds.units.head(50)
    job_index = np.repeat([0, 1, -1], [20, 25, 5])
    mean, sd = job_runtime_distribution(model, units, job_index)
    m, s = model.predict_unit_seconds(units)
    for j, rows in enumerate((slice(0, 20), slice(20, 45))):
        total = m[rows].sum()
        assert mean[j] == pytest.approx(model.overhead_seconds + total)
        assert sd[j] == pytest.approx(math.sqrt((s[rows] ** 2).sum() + (model.shared_cv * total) ** 2))
    q = job_runtime_quantile(model, units, job_index, 0.95)
    # The overhead plus the 95 % quantile of the lognormal with the payload's mean and sd (at least the
    # normal one).
    z, payload = 1.6448536269514722, mean - model.overhead_seconds
    s2 = np.log1p((sd / payload) ** 2)
    lognormal = payload * np.exp(z * np.sqrt(s2) - s2 / 2)
    np.testing.assert_allclose(q, model.overhead_seconds + np.maximum(lognormal, payload + z * sd))


def test_errors_are_clear():
    with pytest.raises(EstimatorError, match="UnitCostModel is not fitted yet"):
        UnitCostModel().predict_unit_seconds(pl.DataFrame({"events": [1]}))
    with pytest.raises(EstimatorError, match="none of the 1 reports measured"):
        UnitCostModel().fit([JobReport(job_id="empty")])
    with pytest.raises(EstimatorError, match="all probe jobs failed"):
        MeanRateEstimator().fit([JobReport(job_id="x", exit_code=1, wall_seconds=5.0, events_read=3)])
    with pytest.raises(EstimatorError, match="not a JobReport"):
        RatioEstimator().fit([{"job_id": "x"}])
    reports, ds, _ = run(SyntheticWorkload())
    model = UnitCostModel().fit(reports)
    with pytest.raises(EstimatorError, match="no column 'pileup'"):
        model.predict_unit_seconds(ds.units.drop("pileup"))
    # Missing feature values take the training mean instead of failing.
    holes = ds.units.with_columns(
        pl.when(pl.col("lumi") % 2 == 0).then(None).otherwise(pl.col("pileup")).alias("pileup")
    )
    assert np.all(np.isfinite(model.predict_unit_seconds(holes)[0]))


def test_mean_rate_is_crab3():
    reports = [
        JobReport(job_id="a", units=[{"run": 1, "lumi": 1, "events": 100, "seconds": 100.0}]),
        JobReport(job_id="b", units=[{"run": 1, "lumi": 2, "events": 100, "seconds": 300.0}]),
    ]
    crab = MeanRateEstimator().fit(reports)
    assert crab.rate_ == pytest.approx((1.0 + 1.0 / 3.0) / 2.0)
    assert crab.events_per_job(3600) == int(0.75 * 3600 * crab.rate_)
    units = pl.DataFrame({"events": [10, 20]})
    np.testing.assert_allclose(crab.predict_unit_seconds(units)[0], [15.0, 30.0])
    np.testing.assert_allclose(crab.predict_quantile(units, 0.95), [20.0, 40.0])
    ratio = RatioEstimator().fit(reports)
    assert ratio.seconds_per_event_ == pytest.approx(2.0)  # 400 s / 200 events: slower than CRAB3 thinks
    # Jackknife over the two jobs: leave-one-out ratios 3.0 and 1.0.
    assert ratio.se_ == pytest.approx(math.sqrt(0.5 * ((3.0 - 2.0) ** 2 + (1.0 - 2.0) ** 2)))
    low, mid, high = ratio.total_seconds_interval(units, 0.9)
    assert mid == pytest.approx(60.0) and low < mid < high


def test_real_fjr_reports_fit_with_job_level_timing():
    reports = [
        read_fjr(DATA / "fjr" / name) for name in ("CMSSWJobReportXrdSiteStatistics.xml", "CMSSWPileup.xml")
    ]
    loops = np.array([78.9568, 813 / 0.0540636])
    events = np.array([3.0, 813.0])
    ratio = RatioEstimator().fit(reports)
    assert ratio.seconds_per_event_ == pytest.approx(loops.sum() / events.sum())
    crab = MeanRateEstimator().fit(reports)
    assert crab.rate_ == pytest.approx(np.mean(events / loops))
    merge = read_fjr(DATA / "fjr" / "CMSSWMergeReport2.xml")
    model = UnitCostModel().fit([*reports, merge])
    assert model.mode_ == "job" and model.terms_ == ["unit", "events"]
    units = pl.DataFrame({"run": [1, 1], "lumi": [7, 8], "events": [100, 0]})
    mean, std = model.predict_unit_seconds(units)
    assert mean[0] > mean[1] > 0 and np.all(std == 0)  # job-level data: all spread is job-wide


def test_memory_and_output_models_give_calibrated_upper_quantiles():
    workload = SyntheticWorkload(rss_bytes_per_event=2.0e5, rss_sigma=0.03, output_sigma=0.15)
    train, _, _ = run(workload, n_jobs=60, units_per_job=8, seed=21)
    test, _, test_jobs = run(workload, n_units=6000, n_jobs=300, units_per_job=8, seed=22)
    events = np.array([r.total_events for r in test], dtype=float)
    memory = MemoryModel().fit(train)
    assert memory.slope_ == pytest.approx(workload.rss_bytes_per_event, rel=0.3)
    rss = np.array([r.peak_rss_bytes for r in test], dtype=float)
    assert np.mean(rss <= memory.quantile(events, 0.95)) >= 0.9
    assert np.mean(rss <= memory.predict(events)) < 0.75
    limit = 2.5e9
    n_max = memory.max_events(limit, 0.95)
    assert (
        memory.quantile(n_max, 0.95) == pytest.approx(limit) and memory.quantile(n_max * 1.01, 0.95) > limit
    )
    output = OutputModel().fit(train)
    assert output.bytes_per_event_ == pytest.approx(workload.output_bytes_per_event, rel=0.15)
    out = np.array([r.output_bytes for r in test], dtype=float)
    assert np.mean(out <= output.quantile(events, 0.95)) >= 0.9
    assert output.predict_unit_bytes(pl.DataFrame({"events": [1000]}))[0] == pytest.approx(
        1000 * output.slope_
    )


def test_synthetic_workload_expectation_matches_its_samples():
    workload = SyntheticWorkload(tail_fraction=0.05, tail_shape=3.0)
    ds = synthetic_dataset(50_000, seed=2)
    jobs = workload.run_jobs(ds.units, np.arange(ds.n_units) // 50, np.random.default_rng(1))
    expected = workload.expected_unit_seconds(ds.units)
    assert jobs.unit_seconds.sum() / expected.sum() == pytest.approx(1.0, abs=0.02)
    assert workload.noise_mean == pytest.approx(1.0 + 0.05 * 3.0 / 2.0)
    # Per-event cost rises with pile-up as (pileup / 35) ** 1.5.
    base = workload.base_seconds(pl.DataFrame({"events": [1000, 1000], "pileup": [35.0, 70.0]}))
    assert (base[1] - 2.0) / (base[0] - 2.0) == pytest.approx(2**1.5)


def test_synthetic_jobs_follow_the_deadline_semantics():
    workload = SyntheticWorkload(overhead_sigma=0.0, overhead_seconds=100.0)
    ds = synthetic_dataset(400, seed=3)
    job_index = np.arange(ds.n_units) // 100  # 4 jobs of 100 units
    soft = workload.run_jobs(ds.units, job_index, np.random.default_rng(5), deadline=1000.0)
    for j in range(4):
        seconds = soft.unit_seconds[job_index == j]
        starts = 100.0 + np.cumsum(seconds) - seconds
        # A unit that starts before the deadline completes; later units are left unfinished.
        np.testing.assert_array_equal(soft.finished[job_index == j], starts < 1000.0)
        assert (
            soft.wall[j] == pytest.approx(100.0 + seconds[starts < 1000.0].sum()) and soft.wall[j] >= 1000.0
        )
    assert soft.soft_stopped.all() and not soft.hard_killed.any()
    hard = workload.run_jobs(
        ds.units, job_index, np.random.default_rng(5), deadline=1000.0, hard_limit=1001.0
    )
    assert hard.hard_killed.any() and np.all(hard.wall[hard.hard_killed] == 1001.0)
    assert np.all(hard.finished <= soft.finished)
    reports = workload.reports(ds.units, hard, np.random.default_rng(0))
    for j, report in enumerate(reports):
        assert len(report.units) == int(hard.finished[job_index == j].sum())
        assert len(report.units) + len(report.unfinished) == 100
        assert report.hard_killed == bool(hard.hard_killed[j])


def test_auto_features_tolerate_a_few_missing_values():
    reports, _, _ = run(SyntheticWorkload(), seed=8)

    def without_pileup(every: int) -> list[JobReport]:
        out, k = [], 0
        for report in reports:
            units = []
            for unit in report.units:
                k += 1
                units.append({**unit, "pileup": None} if k % every == 0 else unit)
            out.append(JobReport(job_id=report.job_id, site=report.site, units=units))
        return out

    assert "events*pileup" in UnitCostModel().fit(without_pileup(20)).terms_  # 5 % missing: mean-filled
    assert "events*pileup" not in UnitCostModel().fit(without_pileup(2)).terms_  # 50 % missing: dropped
    # Integer columns are bookkeeping unless named.
    ints = [JobReport(job_id=r.job_id, units=[{**u, "nhits": 7} for u in r.units]) for r in reports]
    assert "events*nhits" not in UnitCostModel().fit(ints).terms_
    assert "events*nhits" in UnitCostModel(features=["nhits"]).fit(ints).terms_


def test_unit_cost_model_stays_finite_when_a_job_measured_only_zero_event_lumis() -> None:
    from autosplit.estimators import UnitCostModel
    from autosplit.jobreport import JobReport

    rng = np.random.default_rng(5)
    reports = []
    for job in range(12):
        units = []
        for lumi in range(10):
            events = int(rng.integers(50, 150))
            units.append({"run": 1, "lumi": job * 100 + lumi, "events": events, "seconds": events * 0.02})
        reports.append(
            JobReport(job_id=f"job-{job}", site="A", units=units, wall_seconds=25.0, init_seconds=1.0)
        )
    zero = [{"run": 2, "lumi": lumi, "events": 0, "seconds": 0.0} for lumi in range(5)]
    reports.append(JobReport(job_id="empty", site="A", units=zero, wall_seconds=1.0, init_seconds=1.0))
    model = UnitCostModel(per_unit_cost=False).fit(reports)
    assert np.isfinite(model.shared_cv) and np.isfinite(model.node_cv_)


def test_estimators_follow_the_scikit_learn_contract():
    from sklearn.base import BaseEstimator, clone

    assert isinstance(clone(UnitCostModel()), UnitCostModel)
    reports, ds, _ = run(SyntheticWorkload(), n_jobs=12)
    custom = {
        UnitCostModel: {"features": ["pileup"], "quadratic": False, "site_weights": {"T2_SLOW": 2.0}},
        RatioEstimator: {"confidence": 0.9},
        MeanRateEstimator: {"margin": 0.8},
        MemoryModel: {},
        OutputModel: {},
    }
    for cls, params in custom.items():
        estimator = cls(**params)
        assert isinstance(estimator, BaseEstimator)
        # get_params round-trips: the constructor stores its arguments under their own names.
        assert {k: estimator.get_params()[k] for k in params} == params
        again = cls(**estimator.get_params())
        assert again.get_params() == estimator.get_params()
        assert cls().set_params(**params).get_params() == estimator.get_params()
        assert repr(estimator).startswith(cls.__name__ + "(")
        assert not [name for name in vars(estimator) if name.endswith("_")], "learned state before fit"
        fitted = estimator.fit(reports, ds)
        assert fitted is estimator and [name for name in vars(fitted) if name.endswith("_")]
        assert not [name for name in vars(fitted) if name.startswith("_")], "hidden state"
        # clone of a fitted model: unfitted, same parameters.
        fresh = clone(fitted)
        assert type(fresh) is cls and fresh.get_params() == fitted.get_params()
        assert not [name for name in vars(fresh) if name.endswith("_")]
    with pytest.raises(EstimatorError, match="not fitted"):
        clone(UnitCostModel().fit(reports)).predict_unit_seconds(ds.units)


def test_for_site_returns_a_fitted_copy_and_leaves_the_model_alone():
    from sklearn.base import clone

    reports, ds, _ = run(SyntheticWorkload(), n_jobs=12)
    model = UnitCostModel().fit(reports)
    before = model.predict_unit_seconds(ds.units)[0]
    slow = model.for_site("T2_SLOW")
    assert slow is not model and model.destination is None and slow.destination == "T2_SLOW"
    np.testing.assert_array_equal(model.predict_unit_seconds(ds.units)[0], before)
    np.testing.assert_allclose(
        UnitCostModel(destination="T2_SLOW").fit(reports).predict_unit_seconds(ds.units)[0],
        slow.predict_unit_seconds(ds.units)[0],
    )
    assert clone(slow).get_params()["destination"] == "T2_SLOW"


def _few_unit_jobs(workload, sizes, seed=0):
    """Reports of jobs holding ``sizes[j]`` random units each (one site), and the dataset."""
    rng = np.random.default_rng(seed)
    ds = synthetic_dataset(int(np.sum(sizes)) + 500, seed=seed)
    rows = rng.permutation(ds.units.height)[: int(np.sum(sizes))]
    job_index = np.full(ds.units.height, -1)
    job_index[rows] = np.repeat(np.arange(len(sizes)), sizes)
    jobs = workload.run_jobs(ds.units, job_index, rng)
    return workload.reports(ds.units, jobs, rng), ds


def test_unit_and_node_spread_are_told_apart_in_jobs_of_few_heavy_tailed_units():
    # Lognormal unit noise of log-sd 0.9 (coefficient of variation 1.12), node jitter of log-sd 0.1, and
    # jobs of 3 units: residuals scaled by each job's own ratio had the unit spread at 0.8-0.9 and left
    # the job-to-job spread at 0.4-0.5, which shrank jobs to a third of the target.
    workload = SyntheticWorkload(
        unit_sigma=0.9, tail_fraction=0.0, node_sigma=0.1, sites=(Site("T2_A", 1.0, 1.0),)
    )
    reports, _ = _few_unit_jobs(workload, [3] * 1500, seed=5)
    model = UnitCostModel().fit(reports)
    assert model.unit_cv_ == pytest.approx(math.sqrt(math.expm1(0.9**2)), rel=0.12)
    assert model.node_cv_ < 0.25
    # A real node spread is still found.
    workload = SyntheticWorkload(
        unit_sigma=0.3, tail_fraction=0.0, node_sigma=0.3, sites=(Site("T2_A", 1.0, 1.0),)
    )
    model = UnitCostModel().fit(_few_unit_jobs(workload, [4] * 600, seed=5)[0])
    assert model.node_cv_ == pytest.approx(math.sqrt(math.expm1(0.3**2)), rel=0.15)


def test_single_unit_jobs_with_stragglers_do_not_make_the_node_spread():
    # A job of one unit says almost nothing about its node's speed: its ratio is its unit's noise. With
    # 1 % stragglers of up to 30x, a few such jobs decided a plain average of the jobs' excess spreads.
    workload = SyntheticWorkload(
        unit_sigma=0.3, tail_fraction=0.01, tail_shape=2.5, node_sigma=0.1, sites=(Site("T2_A", 1.0, 1.0),)
    )
    reports, _ = _few_unit_jobs(workload, [6] * 800 + [1] * 800, seed=2)
    model = UnitCostModel().fit(reports)
    assert model.node_cv_ < 0.2


def test_jobs_of_one_unit_each_leave_the_whole_spread_to_the_job():
    # No job holds two timed units: nothing tells unit noise from node speed, so the job-wide spread takes
    # it all (a probe round of one heavy lumi each) rather than none.
    workload = SyntheticWorkload(
        unit_sigma=0.3, tail_fraction=0.0, node_sigma=0.3, sites=(Site("T2_A", 1.0, 1.0),)
    )
    model = UnitCostModel().fit(_few_unit_jobs(workload, [1] * 400, seed=3)[0])
    both = math.sqrt(math.expm1(2 * 0.3**2))
    assert model.unit_cv_ == 0.0 and model.node_cv_ == pytest.approx(both, rel=0.15)
