"""Dry-run predictions: predict_makespan from a fitted model, and makespan versus target runtime."""

from __future__ import annotations

import numpy as np
import pytest

from autosplit.estimators import UnitCostModel
from autosplit.sim import gamma_draw, makespan_vs_target, predict_makespan, truth_from_model
from autosplit.sim.calibration import simulate_probing
from autosplit.sim.synthetic import SyntheticWorkload, synthetic_dataset
from autosplit.splitting import ConstantRateModel

TARGET = 4 * 3600.0


@pytest.fixture(scope="module")
def dataset():
    return synthetic_dataset(6000, seed=8)


@pytest.fixture(scope="module")
def model():
    return ConstantRateModel(seconds_per_event=0.3, cv=0.3, overhead_seconds=300.0, shared_cv=0.15)


def test_more_slots_shorter_makespan_and_a_sensible_interval(dataset, model):
    few = predict_makespan(dataset, model, target_runtime=TARGET, n_slots=20, n_runs=8)
    many = predict_makespan(dataset, model, target_runtime=TARGET, n_slots=80, n_runs=8)
    assert many["median"] < few["median"]
    for r in (few, many):
        assert r["low"] <= r["median"] <= r["high"]
        assert r["median"] >= r["lower_bound"]
        assert len(r["runs"]) == 8 and r["n_jobs"] > 0
        assert 0.0 <= r["frac_soft_limit"] <= 0.2
    # Work is the same whatever the slots: the bound scales with 1 / slots.
    assert few["lower_bound"] == pytest.approx(4 * many["lower_bound"], rel=0.05)


def test_deterministic_for_a_seed(dataset, model):
    a = predict_makespan(dataset, model, target_runtime=TARGET, n_slots=30, n_runs=4, seed=5)
    b = predict_makespan(dataset, model, target_runtime=TARGET, n_slots=30, n_runs=4, seed=5)
    c = predict_makespan(dataset, model, target_runtime=TARGET, n_slots=30, n_runs=4, seed=6)
    assert a == b and a["runs"] != c["runs"]


def test_jobs_follow_the_plan_and_soft_limits_match_alpha(dataset, model):
    # About 19 h of work per slot on 10 slots: most jobs are sized by the 4 h target, not by the share of
    # the work left (factoring and the spread margin, which the scheduler applies over the concurrency it
    # observes whatever ``slots`` says), so alpha decides the soft stops.
    strict = predict_makespan(
        dataset, model, target_runtime=TARGET, n_slots=10, n_runs=6, alpha=0.01, slots=1
    )
    loose = predict_makespan(dataset, model, target_runtime=TARGET, n_slots=10, n_runs=6, alpha=0.3, slots=1)
    # The truth is drawn from the model itself, so the planner's alpha is what the runs see.
    assert strict["frac_soft_limit"] < loose["frac_soft_limit"]
    assert loose["n_jobs"] < strict["n_jobs"]
    assert strict["frac_soft_limit"] <= 0.05


def test_makespan_vs_target(dataset, model):
    curve = makespan_vs_target(dataset, model, [3600.0, 4 * 3600.0], n_slots=40, n_runs=3)
    assert [c["target_runtime"] for c in curve] == [3600.0, 4 * 3600.0]
    assert curve[0]["n_jobs"] > curve[1]["n_jobs"]


def test_with_a_fitted_unit_cost_model(dataset):
    workload = SyntheticWorkload(seconds_per_event=0.3)
    campaign = simulate_probing(workload, dataset, UnitCostModel(), rng=np.random.default_rng(0))
    result = predict_makespan(dataset, campaign.model, target_runtime=TARGET, n_slots=40, n_runs=5)
    mean = campaign.model.predict_unit_seconds(dataset.units)[0].sum()
    assert result["lower_bound"] == pytest.approx(mean / 40, rel=0.25)
    assert result["median"] > result["lower_bound"] and result["high"] > result["low"]


def test_truth_draws_follow_the_model(dataset, model):
    mean, std = model.predict_unit_seconds(dataset.units)
    draws = truth_from_model(model, dataset, np.random.default_rng(1)).seconds
    assert draws.sum() == pytest.approx(mean.sum(), rel=0.02)
    exact = gamma_draw(np.array([5.0, 0.0]), np.array([0.0, 0.0]), np.random.default_rng(0))
    assert exact.tolist() == [5.0, 0.0]
