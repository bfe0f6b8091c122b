"""The pool simulator's core: job semantics (soft stop, hard kill with grace, crash, poison), the ledger,
determinism, the lower bound."""

from __future__ import annotations

import math
from dataclasses import replace
from statistics import NormalDist

import numpy as np
import polars as pl
import pytest

from autosplit import Dataset
from autosplit.sim import (
    AutosplitPolicy,
    Drift,
    Pool,
    SimJob,
    Simulation,
    SimulationError,
    SiteSlots,
    Truth,
    hard_limit,
    lower_bound,
    stage_windows,
    truth_from_workload,
)
from autosplit.sim.synthetic import SyntheticWorkload, synthetic_dataset
from autosplit.splitting.limits import default_probe_seconds


def tiny_dataset(n: int) -> Dataset:
    table = pl.DataFrame(
        {
            "run": [1] * n,
            "lumi": list(range(1, n + 1)),
            "events": [100] * n,
            "file": [f"/store/f{i // 4}.root" for i in range(n)],
        }
    )
    return Dataset.from_units(table)


def quiet_pool(slots: int = 1, **kwargs) -> Pool:
    """No overhead, no jitter: attempt times are exactly the units' seconds."""
    return Pool.uniform(slots, overhead_seconds=0.0, overhead_sigma=0.0, node_sigma=0.0, **kwargs)


class OneShot:
    """Submit the given jobs, wait for them, then quarantine whatever is left."""

    name = "one-shot"

    def __init__(self, jobs: list[SimJob]) -> None:
        self.jobs = jobs

    def run(self, sim: Simulation):
        yield sim.wait_all(sim.submit_many(self.jobs))
        sim.quarantine(sim.pending_rows(), "left over")


def run_jobs(seconds: list[float], jobs: list[SimJob], pool: Pool | None = None, poison=None, drift=None):
    sim = Simulation(
        tiny_dataset(len(seconds)),
        Truth(np.array(seconds, float), poison=poison, drift=drift),
        pool or quiet_pool(),
    )
    result = sim.run(OneShot(jobs))
    return sim, result


# ---------------------------------------------------------------------- job semantics
def test_soft_limit_stops_at_the_next_unit_boundary():
    job = SimJob([0, 1, 2, 3], soft_limit=150.0)
    sim, result = run_jobs([100, 100, 100, 100], [job])
    a = job.result
    # Unit 1 starts at 100 s (< 150 s) so it completes; unit 2 would start at 200 s: left.
    assert (a.outcome, a.n_kept, a.payload) == ("soft", 2, 200.0)
    assert sim.done_count.tolist() == [1, 1, 0, 0]
    assert result.units["quarantined"] == 2 and result.frac_soft_limit == 1.0
    assert a.thrown == 0.0 and a.useful == 200.0


def test_hard_limit_sigkill_keeps_journaled_units_or_loses_all():
    kept = SimJob([0, 1], hard_limit=300.0, keep_on_kill=True)
    sim, _ = run_jobs([100, 500], [kept], pool=quiet_pool(grace_seconds=60.0))
    a = kept.result
    # SIGTERM at 300 s, unit 1 would end at 600 s > 360 s: SIGKILL; unit 0 was journaled.
    assert (a.outcome, a.n_kept, a.payload, a.in_progress) == ("killed", 1, 360.0, 1)
    assert a.useful == 100.0 and a.thrown == 260.0
    lost = SimJob([0, 1], hard_limit=300.0, keep_on_kill=False)
    sim, _ = run_jobs([100, 500], [lost], pool=quiet_pool(grace_seconds=60.0))
    assert (lost.result.n_kept, lost.result.thrown) == (0, 360.0)
    assert sim.done_count.sum() == 0


def test_unit_in_progress_may_finish_within_the_grace_period():
    job = SimJob([0, 1, 2], hard_limit=550.0)
    _, _ = run_jobs([100, 500, 100], [job], pool=quiet_pool(grace_seconds=60.0))
    a = job.result
    # Unit 1 ends at 600 s <= 550 + 60: it finishes after SIGTERM, unit 2 never starts.
    assert (a.outcome, a.n_kept, a.payload, a.in_progress) == ("killed", 2, 600.0, -1)


def test_crash_loses_the_attempt_and_is_retried_after_the_delay():
    pool = quiet_pool(failure_rate=1.0 / 50.0)
    job = SimJob([0, 1], retries=2, retry_delay=1000.0)
    sim, result = run_jobs([300, 300], [job], pool=pool)
    outcomes = [a.outcome for a in job.attempts]
    assert len(outcomes) == 3 and set(outcomes) <= {"crash", "ok"}
    for before, after in zip(job.attempts, job.attempts[1:], strict=False):
        assert after.dispatched >= before.end + 1000.0  # the cool-off
    crashed = [a for a in job.attempts if a.outcome == "crash"]
    assert all(a.n_kept == 0 and a.useful == 0.0 for a in crashed)
    assert result.n_failed_attempts == len(crashed)


def test_poison_unit_fails_the_job_and_names_the_unit():
    poison = np.array([False, False, True, False])
    job = SimJob([0, 1, 2, 3])
    sim, result = run_jobs([100, 100, 100, 100], [job], poison=poison)
    a = job.result
    assert (a.outcome, a.failed_unit, a.n_kept) == ("unit", 2, 0)
    assert a.payload == pytest.approx(250.0)  # half-way through the poison unit
    assert result.units["quarantined"] == 4 and sim.done_count.sum() == 0


def test_discarded_work_counts_as_thrown_away():
    job = SimJob([0, 1], keep_results=False)
    sim, result = run_jobs([100, 100], [job])
    assert job.result.n_run == 2 and job.result.n_kept == 0
    assert result.thrown_cpu == 200.0 and result.useful_cpu == 0.0
    assert sim.state.tolist() == [3, 3]  # back to pending, then quarantined by the policy


def test_site_factor_and_drift_scale_unit_times():
    pool = Pool(sites=(SiteSlots("SLOW", 1, 2.0),), overhead_seconds=0.0, overhead_sigma=0.0, node_sigma=0.0)
    first, second = SimJob([0], priority=1.0), SimJob([1])
    run_jobs([100, 100], [first, second], pool=pool, drift=Drift(0.5, 400.0))
    assert first.result.factor == pytest.approx(2.0) and first.result.payload == pytest.approx(200.0)
    # The second job starts at 200 s, half-way up the ramp: site 2.0 x drift 1.25.
    assert second.result.factor == pytest.approx(2.5) and second.result.payload == pytest.approx(250.0)


def test_overhead_holds_the_slot_before_the_payload():
    pool = Pool.uniform(1, overhead_seconds=50.0, overhead_sigma=0.0, node_sigma=0.0)
    first, second = SimJob([0], priority=1.0), SimJob([1])
    _, result = run_jobs([100, 100], [first, second], pool=pool)
    assert first.result.end == 150.0 and second.result.dispatched == 150.0 and second.result.end == 300.0
    assert result.overhead_cpu == 100.0 and result.makespan == 300.0


def test_priority_orders_queued_jobs():
    jobs = [SimJob([i], priority=float(p)) for i, p in enumerate([1, 3, 2])]
    run_jobs([10, 10, 10], jobs)
    order = sorted(range(3), key=lambda i: jobs[i].result.dispatched)
    assert order == [1, 2, 0]


def test_units_must_be_pending_and_appear_once():
    sim = Simulation(tiny_dataset(3), Truth(np.ones(3)), quiet_pool())
    sim.submit(SimJob([0, 1]))
    with pytest.raises(SimulationError, match="not pending"):
        sim.submit(SimJob([1, 2]))
    with pytest.raises(SimulationError, match="twice"):
        sim.submit(SimJob([2, 2]))
    with pytest.raises(SimulationError, match="outside"):
        sim.submit(SimJob([7]))


def test_wait_count_fires_after_k_jobs():
    sim = Simulation(tiny_dataset(3), Truth(np.array([10.0, 20.0, 30.0])), quiet_pool(3))
    times = []

    class Policy:
        name = "k"

        def run(self, sim):
            events = sim.submit_many([SimJob([i]) for i in range(3)])
            yield sim.wait_count(events, 2)
            times.append(sim.now)
            yield sim.wait_all(events)
            times.append(sim.now)

    sim.run(Policy())
    assert times == [20.0, 30.0]


# ---------------------------------------------------------------------- whole tasks
@pytest.fixture(scope="module")
def small_task():
    dataset = synthetic_dataset(3000, seed=4)
    truth = truth_from_workload(SyntheticWorkload(seconds_per_event=0.3), dataset, np.random.default_rng(1))
    pool = Pool(sites=(SiteSlots("A", 20, 0.8), SiteSlots("B", 20, 1.3)), overhead_seconds=120.0)
    return dataset, truth, pool


def autosplit(**kwargs) -> AutosplitPolicy:
    return AutosplitPolicy(target_runtime=2 * 3600.0, probes=20, probe_fraction=0.03, **kwargs)


def test_same_seed_same_result_other_seed_differs(small_task):
    dataset, truth, pool = small_task
    first = Simulation(dataset, truth, pool, seed=3).run(autosplit()).row()
    again = Simulation(dataset, truth, pool, seed=3).run(autosplit()).row()
    other = Simulation(dataset, truth, pool, seed=4).run(autosplit()).row()
    assert first == again
    assert first["makespan_s"] != other["makespan_s"]


def test_autosplit_policy_conserves_units_and_follows_the_pipeline_stages(small_task):
    dataset, truth, pool = small_task
    poison = np.zeros(dataset.n_units, bool)
    poison[[10, 2000]] = True
    failing = Truth(truth.seconds, poison=poison)
    flaky = Pool(sites=pool.sites, overhead_seconds=120.0, failure_rate=1.0 / (12 * 3600.0))
    sim = Simulation(dataset, failing, flaky, seed=1)
    policy = autosplit()
    result = sim.run(policy)
    counts = result.units
    assert counts["pending"] == counts["assigned"] == 0 and counts["lost"] == 0
    assert counts["done"] + counts["quarantined"] == dataset.n_units
    assert sim.done_count.max() == 1 and result.units_done_twice == 0
    assert counts["done"] == int((sim.done_count == 1).sum())
    # The poison lumis are quarantined after failing twice (blamed, then alone); nothing else is.
    assert set(np.flatnonzero(sim.state == 3).tolist()) == {10, 2000}
    assert result.stages[0] == "probe" and "processing" in result.stages and "tail-1" in result.stages
    assert result.n_failed_attempts > 0
    processing = [j for j in sim.jobs if j.stage == "processing"]
    assert all(j.soft_limit == 2 * 3600.0 for j in processing)
    assert all(
        j.hard_limit >= hard_limit(2 * 3600.0, 0.0, 2 * 3600.0, pool.grace_seconds) for j in processing
    )


def test_lower_bound_is_below_every_makespan_and_follows_a_falling_drift(small_task):
    dataset, truth, pool = small_task
    bound = lower_bound(truth, pool)
    assert bound == pytest.approx(truth.total_seconds() / pool.speed_sum)  # the work term binds here
    for kwargs in ({}, {"max_tails": 0}, {"slots": 10}):
        result = Simulation(dataset, truth, pool, seed=0).run(autosplit(**kwargs))
        assert result.makespan >= bound
    # A rising cost does not raise the bound: a job's factor is fixed when its payload starts, so one
    # job per slot started at once runs everything at the initial cost.
    rising = Truth(truth.seconds, drift=Drift(0.5, 3600.0))
    assert lower_bound(rising, pool) == pytest.approx(bound)
    # A falling cost does: at t the pool does at most speed_sum / drift(t) reference seconds per second.
    falling = Truth(truth.seconds, drift=Drift(-0.5, 3600.0))
    falling_bound = lower_bound(falling, pool)
    t = np.linspace(0.0, 3 * bound, 300_001)
    done = np.cumsum(pool.speed_sum / np.array([falling.drift.factor(x) for x in t]) * (t[1] - t[0]))
    assert falling_bound == pytest.approx(t[np.searchsorted(done, truth.total_seconds())], rel=1e-3)
    assert falling_bound < bound


def test_stage_windows_cover_the_stages_in_order(small_task):
    dataset, truth, pool = small_task
    sim = Simulation(dataset, truth, pool, seed=0)
    result = sim.run(autosplit())
    windows = stage_windows(sim)
    assert [w["stage"] for w in windows] == result.stages
    assert all(a["end"] <= b["start"] for a, b in zip(windows, windows[1:], strict=False))
    assert max(w["end"] for w in windows) == pytest.approx(result.makespan)


def test_policy_defaults_match_the_pipeline():
    from autosplit.estimators.probes import MAX_PROBE_ROUNDS
    from autosplit.pipeline.config import LimitsSection, SplittingSection

    splitting, limits = SplittingSection(), LimitsSection()
    policy = AutosplitPolicy()
    assert policy.target_runtime == 8 * 3600.0 and splitting.target_runtime == "8h"
    assert (policy.alpha, policy.max_tails, policy.probes) == (
        splitting.alpha,
        splitting.max_tails,
        splitting.probes,
    )
    assert policy.probe_seconds is None and splitting.probe_seconds is None
    assert policy._probe_seconds() == default_probe_seconds(policy.target_runtime) == 1800.0
    assert (policy.probe_fraction, policy.rel_precision) == (
        splitting.probe_fraction,
        splitting.rel_precision,
    )
    assert (policy.retries, policy.max_unit_failures) == (limits.retries, limits.max_unit_failures)
    assert policy.max_probe_rounds == MAX_PROBE_ROUNDS
    assert Pool.uniform(1).grace_seconds == float(limits.grace_seconds)
    # One rule for the pipeline and the simulator (autosplit.splitting.limits); its values:
    for soft, q99, expected in (
        (28800.0, 100.0, 28800.0 + 7200.0 + 60.0),  # a quarter of the soft limit
        (28800.0, 5000.0, 28800.0 + 15000.0 + 60.0),  # three times the slowest unit's 99 % quantile
        (900.0, 1.0, 900.0 + 225.0 + 60.0),
        (100.0, 1.0, 100.0 + 60.0 + 60.0),  # at least a minute
        (None, 10.0, 3 * 28800.0 + 60.0),  # no soft limit: the whole job must fit
    ):
        assert hard_limit(soft, q99, 28800.0, 60.0) == expected


def test_pool_validation_and_helpers():
    with pytest.raises(ValueError):
        Pool(sites=(SiteSlots("A", 0),))
    with pytest.raises(ValueError):
        Pool.uniform(2, overhead_seconds=-1.0)
    pool = Pool(sites=(SiteSlots("A", 3, 0.5), SiteSlots("B", 1, 2.0)))
    assert pool.n_slots == 4 and pool.speed_sum == pytest.approx(6.5)
    assert pool.mean_time_factor == pytest.approx(0.875)
    # Work term 13 / 6.5 = 2 s, but one unit is never split: it takes 13 x 0.5 on the fastest site, at the
    # node jitter's 0.1 % quantile.
    jitter = math.exp(-0.005 + 0.1 * NormalDist().inv_cdf(1e-3))
    assert math.isclose(lower_bound(Truth(np.array([13.0])), pool), 13.0 * 0.5 * jitter)
    assert math.isclose(lower_bound(Truth(np.array([13.0])), replace(pool, node_sigma=0.0)), 6.5)
    assert math.isclose(lower_bound(Truth(np.array([1.0] * 13)), replace(pool, node_sigma=0.0)), 2.0)


def test_cut_off_units_are_rescued_at_once_and_processing_sizes_decrease():
    from autosplit.splitting import ConstantRateModel

    seconds = np.full(8, 100.0)
    seconds[3] = 9000.0  # a straggler the model cannot see: its job is killed at the hard limit
    dataset = tiny_dataset(8)
    model = ConstantRateModel(seconds_per_event=1.0)  # 100 s per unit
    pool = Pool.uniform(2, overhead_seconds=0.0, overhead_sigma=0.0, node_sigma=0.0)

    def run(**params):
        policy = AutosplitPolicy(target_runtime=3600.0, model=model, refit=False, max_tails=1, **params)
        sim = Simulation(dataset, Truth(seconds), pool, seed=0)
        return sim, sim.run(policy), policy

    sim, plain, _ = run(rescue_overruns=False)
    killed = [a for a in sim.attempts if a.outcome == "killed"]
    assert len(killed) == 1 and killed[0].in_progress == 3
    assert killed[0].n_kept == 0, "a job killed mid-unit counts none of its journaled units"
    assert plain.stages == ["processing", "tail-1"] and plain.units["done"] == 8
    sim, rescued, policy = run()
    alone = [j for j in sim.jobs if j.rows.tolist() == [3] and j.stage == "processing"]
    assert len(alone) == 1 and alone[0].soft_limit is None
    assert alone[0].hard_limit == hard_limit(None, 0.0, 3600.0, pool.grace_seconds)
    assert alone[0].submitted == killed[0].end  # at once, not after the stage
    assert rescued.units["done"] == 8
    assert alone[0].result.outcome == "ok" and alone[0].result.end < min(
        j.submitted for j in sim.jobs if j.stage == "tail-1"
    )
    assert policy.plan_.algorithm == "Regroup" and policy.plan_.params["n_slots"] == pool.n_slots
    _, _, one_slot = run(slots=1)
    assert one_slot.plan_.params["n_slots"] == 1
