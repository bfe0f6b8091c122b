"""Probe planning: stratified probe units and the stopping rule."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from autosplit.datasets import Dataset, LumiMask
from autosplit.estimators import EstimatorError, RatioEstimator, UnitCostModel, choose_probes, enough_probes
from autosplit.sim.synthetic import SyntheticWorkload, synthetic_dataset
from tests.conftest import DBS_JSON


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return synthetic_dataset(20_000, seed=4)


def test_sample_is_stratified_over_sizes_files_and_runs(ds):
    picks = choose_probes(ds, 10, 3600.0, seed=1)
    units = ds.units
    events = units["events"].to_numpy()
    assert picks["events"].sum() <= 0.01 * ds.n_events
    assert picks.height > 100 and set(picks["probe"].unique().to_list()) == set(range(10))
    # Every events-per-lumi quartile gets its share (the sample is systematic within each quartile).
    edges = np.quantile(events, [0.25, 0.5, 0.75])
    share = np.bincount(np.searchsorted(edges, picks["events"].to_numpy(), side="right"), minlength=4)
    assert share.min() >= 0.2 * picks.height
    # Spread over the whole dataset, not the first files: files from every tenth of the file order.
    deciles = np.unique(picks["file_id"].to_numpy() * 10 // (int(units["file_id"].max()) + 1))
    assert deciles.tolist() == list(range(10))
    assert picks["run"].n_unique() >= 0.8 * units["run"].n_unique()
    # Every probe sees small and large lumis.
    for _, probe in picks.group_by("probe"):
        classes = np.searchsorted(edges, probe["events"].to_numpy(), side="right")
        assert set(classes.tolist()) == {0, 1, 2, 3}
    # Rows point back into the units table; within a probe, units are in file order.
    rows = picks["row"].to_numpy()
    assert units[rows].select("run", "lumi").equals(picks.select("run", "lumi"))
    first = picks.filter(pl.col("probe") == 0)
    assert first.equals(first.sort("file_id", "run", "lumi"))


def test_sample_is_reproducible_and_seed_dependent(ds):
    a = choose_probes(ds, 5, 600.0, seed=7)
    assert a.equals(choose_probes(ds, 5, 600.0, seed=7))
    assert not a["row"].equals(choose_probes(ds, 5, 600.0, seed=8)["row"])


def test_probe_size_follows_the_cost_guess_and_the_event_cap(ds):
    seconds_per_event = 0.05
    picks = choose_probes(ds, 8, 600.0, seconds_per_event=seconds_per_event, seed=2)
    per_probe = picks.group_by("probe").agg((pl.col("events").sum() * seconds_per_event).alias("s"))["s"]
    assert per_probe.mean() == pytest.approx(600.0, rel=0.25)
    capped = choose_probes(ds, 8, 600.0, seconds_per_event=seconds_per_event, max_events=5_000, seed=2)
    assert 0 < capped["events"].sum() <= 5_000 < picks["events"].sum()


def test_probe_size_from_a_fitted_model(ds):
    workload = SyntheticWorkload()
    rng = np.random.default_rng(0)
    first = choose_probes(ds, 10, 900.0, seed=3)
    job_index = np.full(ds.n_units, -1)
    job_index[first["row"].to_numpy()] = first["probe"].to_numpy()
    jobs = workload.run_jobs(ds.units, job_index, rng)
    model = UnitCostModel().fit(workload.reports(ds.units, jobs, rng))
    more = choose_probes(ds, 10, 900.0, model=model, exclude=jobs.finished, max_events=1e9, seed=4)
    assert not np.any(jobs.finished[more["row"].to_numpy()])
    predicted = model.predict_unit_seconds(more)[0]
    per_probe = np.bincount(more["probe"].to_numpy(), weights=predicted)
    assert per_probe.mean() == pytest.approx(900.0, rel=0.1)


def test_exclude_by_mask_and_errors(ds):
    first_run = int(ds.units["run"].min())
    mask = LumiMask({str(first_run): [[1, 10**6]]})
    picks = choose_probes(ds, 4, 600.0, exclude=mask, seed=0)
    assert first_run not in picks["run"].to_list()
    everything = choose_probes(ds, 4, 600.0, exclude=np.ones(ds.n_units, dtype=bool))
    assert everything.height == 0 and "probe" in everything.columns
    with pytest.raises(EstimatorError, match="n_jobs must be >= 1"):
        choose_probes(ds, 0, 600.0)
    with pytest.raises(EstimatorError, match="one boolean per unit"):
        choose_probes(ds, 2, 600.0, exclude=np.ones(3, dtype=bool))


def test_real_dbs_dataset_gets_probes_across_its_files_and_runs():
    real = Dataset.from_dbs_json(DBS_JSON, dataset="/Cosmics/ComissioningHI-PromptReco-v1/RECO")
    picks = choose_probes(real, 5, 900.0, seed=0)
    assert picks.height >= 5 and picks["events"].sum() <= 0.01 * real.n_events
    # 108 files, 58 runs: the 1 % sample reaches across them instead of taking the first files.
    assert picks["file_id"].n_unique() >= 30 and picks["run"].n_unique() >= 20
    assert int(picks["file_id"].max()) > 0.8 * real.n_files


def test_enough_probes_stops_when_the_interval_is_tight(ds):
    workload = SyntheticWorkload()
    rng = np.random.default_rng(9)

    def probe(n_jobs, seed):
        picks = choose_probes(ds, n_jobs, 900.0, max_events=1e9, seconds_per_event=0.06, seed=seed)
        job_index = np.full(ds.n_units, -1)
        job_index[picks["row"].to_numpy()] = picks["probe"].to_numpy()
        return workload.reports(ds.units, workload.run_jobs(ds.units, job_index, rng), rng)

    few = UnitCostModel().fit(probe(4, 1))
    many = UnitCostModel().fit(probe(150, 2))
    assert not enough_probes(few, ds, rel_precision=0.05)
    assert enough_probes(many, ds, rel_precision=0.05)
    low, mid, high = many.total_seconds_interval(ds.units)
    assert (high - low) / 2 <= 0.05 * mid < (few.total_seconds_interval(ds.units)[2] - mid)
    # Looser precision is reached sooner; a model without an interval is refused.
    assert enough_probes(few, ds, rel_precision=10.0)
    assert enough_probes(RatioEstimator().fit(probe(150, 3)), ds, rel_precision=0.05)
    with pytest.raises(EstimatorError, match="no confidence interval"):
        enough_probes(object(), ds)


def test_probe_round_rules_shared_by_the_pipeline_and_the_simulator():
    from autosplit.estimators.probes import probe_budget, probe_round_seed, probes_within_budget
    from autosplit.splitting.limits import probe_hard_limit

    events = np.array([10, 400, 30, 200, 5])
    # A fraction of the events, but at least the n_probes largest units (so no probe goes empty).
    assert probe_budget(events, 2, 0.99) == 0.99 * 645
    assert probe_budget(events, 2, 0.01) == 600.0
    assert probe_budget(events, 2, 0.5, total_events=2000) == 1000.0
    assert probe_budget(events, 10, 0.01) == 645.0
    # Probes a round may have: units of the mean size (129 events) within the budget, at least 1.
    assert probes_within_budget(events, 10, 0.5) == 2 and probes_within_budget(events, 1, 0.5) == 1
    assert probes_within_budget(events, 10, 0.001) == 1 and probes_within_budget(events, 10, 1.0) == 5
    # Every round samples with its own seed; round 1 keeps its old one.
    seeds = [probe_round_seed(r) for r in (1, 2, 3)]
    assert seeds[0] == len("probe") and len(set(seeds)) == 3
    # A probe's hard limit: four times its soft limit (at least a minute more), plus the grace period.
    assert probe_hard_limit(900.0, 60.0) == 3660.0 and probe_hard_limit(10.0, 5.0) == 75.0
