"""Automatic planner and regroup: quantile limit, monotonicity in alpha, caps, oversized units, factoring."""

from __future__ import annotations

import heapq
import math
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autosplit import Dataset
from autosplit.errors import OversizedUnitsWarning, SplittingError
from autosplit.splitting import ConstantRateModel, JobPlan, plan, regroup
from tests.conftest import DBS_JSON
from tests.strategies import datasets

COSMICS_HI = "/Cosmics/ComissioningHI-PromptReco-v1/RECO"

models = st.builds(
    ConstantRateModel,
    seconds_per_event=st.floats(0.001, 0.2),
    cv=st.floats(0.0, 1.0),
    overhead_seconds=st.floats(0.0, 60.0),
    seconds_per_unit=st.floats(0.0, 5.0),
    shared_cv=st.floats(0.0, 0.3),
)


def runtime_quantile(model: ConstantRateModel, mean: np.ndarray, std: np.ndarray, alpha: float) -> float:
    """A job's (1 - alpha) runtime quantile straight from the model: the overhead plus the quantile of the
    lognormal with the payload's mean and variance, at least the normal one."""
    z = NormalDist().inv_cdf(1 - alpha)
    m = float(mean.sum())
    if m <= 0:
        return model.overhead_seconds
    sd = math.sqrt((std**2).sum() + (model.shared_cv * m) ** 2)
    s2 = math.log1p((sd / m) ** 2)
    return model.overhead_seconds + max(m * math.exp(z * math.sqrt(s2) - s2 / 2), m + z * sd)


def job_quantiles(ds: Dataset, p: JobPlan, model: ConstantRateModel, alpha: float) -> np.ndarray:
    """Recompute each job's (1 - alpha) runtime quantile straight from the model."""
    return np.array(
        [
            runtime_quantile(model, *model.predict_unit_seconds(p.job_units(job)), alpha)
            for job in range(p.n_jobs)
        ]
    )


def covered_once(ds: Dataset, p: JobPlan) -> None:
    planned = p.assignment >= 0
    assert planned.sum() + p.oversized.height == ds.n_units, "every unit is in one job or reported oversized"
    assert sum(p.job_mask(j).n_lumis for j in range(p.n_jobs)) == int(planned.sum())


@settings(max_examples=60)
@given(datasets(), models, st.floats(200, 20_000), st.sampled_from([0.01, 0.05, 0.2]))
def test_no_job_quantile_exceeds_target(ds: Dataset, model, target: float, alpha: float) -> None:
    with pytest.warns(OversizedUnitsWarning) if _any_oversized(ds, model, target, alpha) else _no_warning():
        p = plan(ds, model, target, alpha=alpha)
    covered_once(ds, p)
    q = job_quantiles(ds, p, model, alpha)
    assert (q <= target * (1 + 1e-9)).all()
    assert np.allclose(q, p.jobs["predicted_quantile"].to_numpy()) if p.n_jobs else True
    # Greedy: adding the next unit of the same location segment would break the target.
    for job in range(p.n_jobs - 1):
        this, nxt = p.job_rows(job), p.job_rows(job + 1)
        merged = ds.units[np.concatenate((this, nxt[:1]))]
        same_site = ds.files.filter(pl.col("file_id").is_in(merged["file_id"].implode()))["locations"]
        if len({tuple(sorted(x)) for x in same_site.to_list()}) == 1:
            quantile = runtime_quantile(model, *model.predict_unit_seconds(merged), alpha)
            assert quantile > target * (1 - 1e-9)


def _any_oversized(ds, model, target, alpha) -> bool:
    mean, std = model.predict_unit_seconds(ds.units)
    alone = [runtime_quantile(model, mean[i : i + 1], std[i : i + 1], alpha) for i in range(mean.size)]
    return bool((np.array(alone) > target).any())


class _no_warning:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", OversizedUnitsWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


@settings(max_examples=60)
@given(datasets(locations=False), models, st.floats(500, 20_000))
def test_smaller_alpha_never_gives_fewer_jobs(ds: Dataset, model, target: float) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OversizedUnitsWarning)
        counts = [plan(ds, model, target, alpha=a) for a in (0.3, 0.1, 0.05, 0.01, 0.001)]
    planned = [int((p.assignment >= 0).sum()) for p in counts]
    jobs = [p.n_jobs for p in counts]
    # Smaller alpha may push more units out as oversized; among the units still planned it needs more jobs.
    for (j1, u1), (j2, u2) in zip(
        zip(jobs, planned, strict=True), zip(jobs[1:], planned[1:], strict=True), strict=False
    ):
        assert u2 <= u1
        if u2 == u1:
            assert j2 >= j1


def test_oversized_units_are_reported_not_planned() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    model = ConstantRateModel(0.05, cv=0.3, overhead_seconds=60)
    with pytest.warns(OversizedUnitsWarning, match=r"2 unit\(s\).*run 181175 lumi 166 with 212213 events"):
        p = plan(ds, model, 3600)
    assert sorted(p.oversized["lumi"].to_list()) == [166, 167]
    assert (p.assignment[p.dataset.units["events"].to_numpy() > 100_000] == -1).all()
    covered_once(ds, p)
    assert p.summary()["unassigned_lumis"] == 2


@settings(max_examples=40)
@given(datasets(), st.integers(1, 3), st.integers(100, 5000), st.floats(1e3, 2e5))
def test_caps_hold(ds: Dataset, max_files: int, max_events: int, max_output: float) -> None:
    import warnings

    model = ConstantRateModel(0.01, cv=0.2, overhead_seconds=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OversizedUnitsWarning)
        p = plan(
            ds,
            model,
            10_000,
            max_files_per_job=max_files,
            max_events_per_job=max_events,
            max_output_bytes=max_output,
            output_bytes_per_event=50.0,
        )
    covered_once(ds, p)
    for job in range(p.n_jobs):
        units = p.job_units(job)
        assert len(p.job_files(job)) <= max_files
        assert units["events"].sum() <= max_events
        assert units["events"].sum() * 50.0 <= max_output
    over = p.oversized
    if over.height:
        too_big = (
            (over["events"] > max_events)
            | (over["events"] * 50.0 > max_output)
            | (over["file_ids"].list.len() > max_files)
        )
        assert too_big.all(), "only units that break a cap alone are left out"


def list_schedule(durations: np.ndarray, n_slots: int) -> np.ndarray:
    """Finish time of each slot when jobs start in order on the first free slot."""
    slots = [0.0] * n_slots
    heapq.heapify(slots)
    for d in durations:
        heapq.heappush(slots, heapq.heappop(slots) + d)
    return np.array(sorted(slots))


def test_regroup_factoring_ends_together() -> None:
    rng = np.random.default_rng(3)
    n = 4600  # the flat plan's 37 jobs leave a ragged last wave on 16 slots
    df = pl.DataFrame(
        {
            "run": np.full(n, 1),
            "lumi": np.arange(1, n + 1),
            "events": rng.integers(50, 400, n),
            "file": [f"f{i // 40:03d}" for i in range(n)],
        }
    )
    ds = Dataset.from_units(df)
    model = ConstantRateModel(0.5, cv=0.2, overhead_seconds=30)
    target, slots = 4 * 3600.0, 16
    flat = regroup(ds, model, target)
    assert (flat.assignment == plan(ds, model, target).assignment).all(), "no n_slots: same as plan"
    tapered = regroup(ds, model, target, n_slots=slots)
    covered_once(ds, tapered)
    sizes = tapered.jobs["predicted_seconds"].to_numpy()
    batches = [sizes[i : i + slots].mean() for i in range(0, sizes.size, slots)]
    assert all(b2 <= b1 * 1.02 for b1, b2 in zip(batches, batches[1:], strict=False)), "sizes decrease"
    assert sizes[-slots:].mean() < 0.5 * sizes[:slots].mean()
    flat_finish = list_schedule(flat.jobs["predicted_seconds"].to_numpy(), slots)
    tapered_finish = list_schedule(sizes, slots)
    assert tapered_finish[-1] < flat_finish[-1], "a shorter makespan on the same slots"
    assert np.ptp(tapered_finish) < 0.5 * np.ptp(flat_finish), "slots finish closer together"
    bound = (model.seconds_per_event * ds.n_events + model.overhead_seconds * tapered.n_jobs) / slots
    assert tapered_finish[-1] < 1.05 * bound


def test_planner_errors() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    model = ConstantRateModel(0.01)
    with pytest.raises(SplittingError, match="target_runtime must be a positive"):
        plan(ds, model, -5)
    with pytest.raises(SplittingError, match="alpha must be in"):
        plan(ds, model, 100, alpha=0.7)
    with pytest.raises(SplittingError, match="max_output_bytes needs output_bytes_per_event"):
        plan(ds, model, 100, max_output_bytes=10)
    with pytest.raises(SplittingError, match="not a cost model"):
        plan(ds, object(), 100)

    class Broken:
        overhead_seconds = 0.0

        def predict_unit_seconds(self, units):
            return np.full(units.height, np.nan), np.zeros(units.height)

    with pytest.raises(SplittingError, match="NaN"):
        plan(ds, Broken(), 100)
    with pytest.raises(SplittingError, match="n_slots must be a positive"):
        regroup(ds, model, 100, n_slots=0)
    with pytest.raises(SplittingError, match="does not take max_jobs"):
        regroup(ds, model, 100, max_jobs=3)


def test_model_features_are_passed_through() -> None:
    """A model sees extra unit columns (here pileup) and the planner follows its per-unit costs."""
    n = 200
    df = pl.DataFrame(
        {
            "run": np.ones(n, int),
            "lumi": np.arange(1, n + 1),
            "events": np.full(n, 100),
            "file": ["f"] * n,
            "pileup": np.where(np.arange(n) < 100, 20.0, 60.0),
        }
    )
    ds = Dataset.from_units(df)

    class PileupModel:
        overhead_seconds = 0.0

        def predict_unit_seconds(self, units):
            mean = units["events"].to_numpy() * 0.01 * units["pileup"].to_numpy()
            return mean, np.zeros_like(mean)

    p = plan(ds, PileupModel(), 400.0)
    low = p.assignment[:100]
    high = p.assignment[100:]
    assert np.bincount(low).max() == 20 and np.bincount(high - high.min()).max() == 6


def test_planner_refuses_a_model_with_non_finite_spread() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)

    class NanSpread:  # what a 0/0 inside a fit would give
        overhead_seconds = 0.0
        shared_cv = float("nan")

        def predict_unit_seconds(self, units):
            mean = units["events"].to_numpy() * 0.01
            return mean, 0.1 * mean

    with pytest.raises(SplittingError, match="shared_cv"):
        plan(ds, NanSpread(), 3600)


def test_regroup_spreads_a_small_tail_over_the_free_slots() -> None:
    n = 200
    df = pl.DataFrame(
        {
            "run": np.ones(n, int),
            "lumi": np.arange(1, n + 1),
            "events": np.full(n, 600),
            "file": [f"f{i // 20}" for i in range(n)],
        }
    )
    ds = Dataset.from_units(df)
    model = ConstantRateModel(0.1, overhead_seconds=30.0)  # 60 s per unit, 12,000 s in all
    fixed = regroup(ds, model, 3600.0, n_slots=50, min_job_seconds=300.0)
    adaptive = regroup(ds, model, 3600.0, n_slots=50)
    assert fixed.n_jobs == 40, "a 300 s floor makes 40 jobs: 10 of the 50 slots stay idle"
    assert adaptive.n_jobs >= 50, "the floor drops to the work per slot"
    work = adaptive.jobs["predicted_seconds"].to_numpy() - model.overhead_seconds
    assert work.min() >= 2 * model.overhead_seconds - 1e-9
