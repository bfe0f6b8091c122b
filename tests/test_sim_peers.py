"""Every peer policy on a small workload of the benchmark suite: it runs, accounts for every unit, behaves
like the system it models, and never beats the lower bound."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autosplit.sim import Pool, Simulation, SiteSlots, lower_bound
from benchmarks import workloads as wl
from benchmarks.peers import POLICIES, bound_row
from benchmarks.peers.coffea import CoffeaPolicy, linear_fit
from benchmarks.peers.crab3 import Crab3Policy
from benchmarks.peers.panda import PandaPolicy

SLOTS = (SiteSlots("T2_A", 15, 0.9), SiteSlots("T2_B", 15, 1.2))


def small(name: str, **pool_changes) -> wl.Workload:
    base = wl.by_name(name)
    pool = replace(Pool(sites=SLOTS, overhead_seconds=300.0), **pool_changes)
    return replace(base, n_units=2500, pool=pool, target_runtime=4 * 3600.0)


@pytest.fixture(scope="module")
def pileup():
    workload = small("pileup")
    dataset, truth = workload.build(0)
    return workload, dataset, truth


@pytest.fixture(scope="module")
def results(pileup):
    workload, dataset, truth = pileup
    out = {}
    for name, make in POLICIES.items():
        sim = Simulation(dataset, truth, workload.pool, seed=2)
        policy = make(workload)
        out[name] = (sim, sim.run(policy), policy)
    return out


@pytest.mark.parametrize("name", list(POLICIES))
def test_peer_accounts_for_every_unit_and_respects_the_bound(name, results, pileup):
    workload, dataset, truth = pileup
    sim, result, _ = results[name]
    counts = result.units
    assert counts["pending"] == counts["assigned"] == 0
    assert counts["done"] + counts["quarantined"] + counts["lost"] == dataset.n_units
    assert sim.done_count.max() <= 1
    assert result.makespan >= lower_bound(truth, workload.pool)
    assert 0 < result.cpu_waste_fraction < 1
    assert result.n_jobs > 0 and result.row()["policy"] == name


def test_bound_row(pileup):
    workload, _, truth = pileup
    row = bound_row(truth, workload.pool)
    assert row["policy"] == "bound" and row["makespan_s"] == lower_bound(truth, workload.pool)


def test_crab3_probes_are_discarded_and_tails_have_no_soft_limit(results):
    sim, result, policy = results["crab3"]
    probes = [j for j in sim.jobs if j.stage == "probe"]
    assert len(probes) == 5 and all(not j.keep_results and j.soft_limit == 900.0 for j in probes)
    # The probes' work is thrown away: every probe attempt's payload is waste.
    assert all(a.useful == 0.0 and a.thrown == a.payload for j in probes for a in j.attempts)
    processing = [j for j in sim.jobs if j.stage == "processing"]
    assert all(
        j.retries == 0 and j.soft_limit == 4 * 3600.0 and j.hard_limit == 1250 * 60.0 for j in processing
    )
    # The whole dataset is split again, probe units included.
    assert sum(j.n_units for j in processing) == sim.dataset.n_units
    rate = float(np.mean(policy.probe_rates_))
    assert policy.events_per_job_ == int(0.75 * 240 * rate * 60)
    tails = [j for j in sim.jobs if j.stage.startswith("tail")]
    assert all(j.soft_limit is None and j.retries == 3 and j.retry_delay == 900.0 for j in tails)
    # Tail PreDAGs start with the processing DAG and re-check every 300 s (DEFER), so tails are planned on
    # that grid, from a status cache at most 300 s old.
    start = min(j.submitted for j in processing)
    offsets = [(j.submitted - start) % 300.0 for j in tails]
    assert tails and all(min(r, 300.0 - r) < 1e-6 for r in offsets)


def test_crab3_tail_triggers_follow_the_processing_job_count():
    policy = Crab3Policy()
    assert policy.tail_counts(250) == [125, 200, 250]
    assert policy.tail_counts(100) == [100] and policy.tail_counts(7) == [7]


def test_panda_scouts_then_per_site_jobs_filled_to_the_walltime(results, pileup):
    workload, dataset, _ = pileup
    sim, result, policy = results["panda"]
    scouts = [j for j in sim.jobs if j.stage == "scout"]
    files = dataset.units["file_id"].to_numpy()
    assert len(scouts) == 10
    assert [int(np.unique(files[j.rows])[0]) for j in scouts] == sorted(np.unique(files))[:10]
    assert all(np.unique(files[j.rows]).size == 1 for j in scouts)
    assert np.isfinite(policy.cputime_) and result.stages[:2] == ["scout", "jobs"]
    events = dataset.units["events"].to_numpy()
    speed = 1.0 / workload.pool.time_factors
    for job in sim.jobs:
        if job.stage.startswith("jobs") and len(job.meta["files"]) > 1 and job.meta["attempt"] == 1:
            # Filled to W on the site it ran at: adding its last file crossed the budget, so without it it fits.
            site = job.attempts[0].site
            budget = policy.target_runtime * speed[site] / policy.cputime_
            assert events[job.rows].sum() > 0 and len(job.meta["files"]) <= policy.max_files_per_job
            last = job.meta["files"][-1]
            assert events[job.rows].sum() - events[files == last].sum() <= budget


def test_panda_cputime_is_the_95th_percentile_times_1_5():
    policy = PandaPolicy()
    policy._finished = [(float(s), 10.0) for s in range(1, 101)]
    policy._rng = np.random.default_rng(0)
    policy._set_cputime(None)
    assert policy.cputime_ == pytest.approx(np.percentile(np.arange(1, 101) / 10.0, 95) * 1.5)


def test_coffea_chunksize_fit_drops_slow_tasks_and_floors_to_a_power_of_two():
    policy = CoffeaPolicy(target_runtime=1000.0)
    seconds = np.array([100.0, 200.0, 300.0, 400.0, 100.0])
    events = np.array([1000.0, 2000.0, 3000.0, 4000.0, 10.0])  # the last task is slow: dropped
    policy._events_done, policy._seconds_done = list(events), list(seconds)
    policy._update()
    assert policy._size == 8192  # 10 events/s x 1000 s = 10,000 -> 2**13
    slope, intercept = linear_fit(seconds[:4], events[:4])
    assert (slope, intercept) == pytest.approx((10.0, 0.0))


def test_coffea_chunks_stay_within_files_and_shrink_when_learned(results, pileup):
    _, dataset, _ = pileup
    sim, _, policy = results["coffea"]
    files = dataset.units["file_id"].to_numpy()
    assert all(np.unique(files[j.rows]).size == 1 for j in sim.jobs)
    assert policy.chunksizes_ and all(s & (s - 1) == 0 for s in policy.chunksizes_)


def test_manual_guess_and_fixed_lumis_per_job(results):
    sim, _, policy = results["manual"]
    sizes = {j.n_units for j in sim.jobs}
    assert max(sizes) == policy.lumis_per_job_ and policy.lumis_per_job_ >= 1
    assert all(j.soft_limit is None and j.hard_limit == 1250 * 60.0 for j in sim.jobs)


def test_oracle_packs_true_costs_to_the_target(results, pileup):
    workload, _, truth = pileup
    sim, result, _ = results["oracle"]
    expected = np.array([truth.seconds[j.rows].sum() for j in sim.jobs]) * workload.pool.mean_time_factor
    full = expected[:-1] + workload.pool.overhead_seconds
    assert (full <= workload.target_runtime + 1e-6).all() and np.median(full) > 0.9 * workload.target_runtime
    assert result.frac_soft_limit == 0.0 and result.frac_hard_killed == 0.0


def test_autosplit_peer_uses_the_pool_for_probes(results, pileup):
    workload, _, _ = pileup
    sim, result, policy = results["autosplit"]
    assert policy.slots == workload.pool.n_slots and policy.probes is None, (
        "pipeline defaults, slots = the pool's"
    )
    assert sum(1 for j in sim.jobs if j.stage == "probe") == workload.pool.n_slots, "one probe per slot"
    assert result.stages[0] == "probe" and "processing" in result.stages
    assert policy.model_ is not None and policy.reports_


def test_failures_workload_poison_and_crashes():
    workload = small("failures", failure_rate=1.0 / (6 * 3600.0))
    dataset, truth = workload.build(1)
    assert int(truth.poison.sum()) == 3
    for name in ("autosplit", "crab3"):
        sim = Simulation(dataset, truth, workload.pool, seed=0)
        result = sim.run(POLICIES[name](workload))
        assert result.n_failed_attempts > 0
        assert result.units["done"] + result.units["quarantined"] + result.units["lost"] == dataset.n_units
        assert not sim.done_count[truth.poison].any()
