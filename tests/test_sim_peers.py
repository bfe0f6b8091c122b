"""Every peer policy on a small workload of the benchmark suite: it runs, accounts for every unit, behaves
like the system it models, and never beats the lower bound."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from autosplit.sim import Simulation, lower_bound
from autosplit.sim.scheduler_policy import SchedulerPolicy
from benchmarks import workloads as wl
from benchmarks.peers import POLICIES, bound_row
from benchmarks.peers.autosplit import TIMING_NOISE
from benchmarks.peers.clairvoyant import ClairvoyantPolicy
from benchmarks.peers.coffea import CoffeaPolicy, linear_fit, linear_fit_scipy
from benchmarks.peers.crab3 import Crab3Policy
from benchmarks.peers.panda import PandaPolicy

SMALL = replace(wl.PROFILES["today"].scaled(2500, 30), target_runtime=4 * 3600.0)


def small(name: str) -> wl.Workload:
    return wl.by_name(name, SMALL)


@pytest.fixture(scope="module")
def pileup():
    workload = small("pileup")
    dataset, truth, pool = workload.build(0, failures=False)
    return workload, dataset, truth, pool


@pytest.fixture(scope="module")
def results(pileup):
    workload, dataset, truth, pool = pileup
    out = {}
    for name, make in POLICIES.items():
        sim = Simulation(dataset, truth, pool, seed=2)
        policy = make(workload)
        out[name] = (sim, sim.run(policy), policy)
    return out


@pytest.mark.parametrize("name", list(POLICIES))
def test_peer_accounts_for_every_unit_and_respects_the_bound(name, results, pileup):
    workload, dataset, truth, pool = pileup
    sim, result, _ = results[name]
    counts = result.units
    assert counts["pending"] == counts["assigned"] == 0
    assert counts["done"] + counts["quarantined"] + counts["lost"] == dataset.n_units
    assert sim.done_count.max() <= 1
    assert result.makespan >= lower_bound(truth, pool)
    assert 0 < result.cpu_waste_fraction < 1
    assert result.n_jobs > 0 and result.row()["policy"] == name


def test_bound_row(pileup):
    _, _, truth, pool = pileup
    row = bound_row(truth, pool)
    assert row["policy"] == "bound" and row["makespan_s"] == lower_bound(truth, pool)
    assert row["makespan_s"] == max(row["work_over_speed_s"], row["makespan_s"])


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
    assert policy.event_size_ > 0 and 5e9 / policy.event_size_ > policy.events_per_job_
    assert policy.events_per_job_ == int(0.75 * 240 * rate * 60)
    tails = [j for j in sim.jobs if j.stage.startswith("tail")]
    assert all(j.soft_limit is None and j.retries == 3 and j.retry_delay == 900.0 for j in tails)
    # Tail PreDAGs start with the processing DAG and re-check every 300 s (DEFER), so tails are planned on
    # that grid, from a status cache at most 300 s old; jobs of both wait the same submission latency.
    start = min(j.submitted for j in processing)
    offsets = [(j.submitted - start) % 300.0 for j in tails]
    assert tails and all(min(r, 300.0 - r) < 1e-6 for r in offsets)
    first_probe_end = min(j.result.end for j in probes)
    assert start >= first_probe_end + sim.pool.stage_delay_seconds


def test_crab3_splits_on_file_average_events_per_lumi(pileup):
    _, dataset, _, _ = pileup
    view = Crab3Policy.wmcore_view(dataset)
    units, seen = dataset.units, view.units
    assert seen.height == units.height and seen["run"].to_list() == units["run"].to_list()
    files = units["file_id"].to_numpy()
    events = units["events"].to_numpy()
    for f in np.unique(files)[:50]:
        expected = round(events[files == f].mean())
        assert set(seen["events"].to_numpy()[files == f].tolist()) == {expected}


def test_crab3_tail_triggers_follow_the_processing_job_count():
    policy = Crab3Policy()
    assert policy.tail_counts(250) == [125, 200, 250]
    assert policy.tail_counts(100) == [100] and policy.tail_counts(7) == [7]


def test_panda_scouts_then_per_site_jobs_filled_to_the_walltime(results, pileup):
    workload, dataset, _, pool = pileup
    sim, result, policy = results["panda"]
    scouts = [j for j in sim.jobs if j.stage == "scout"]
    files = dataset.units["file_id"].to_numpy()
    assert len(scouts) == 10
    assert [int(np.unique(files[j.rows])[0]) for j in scouts] == sorted(np.unique(files))[:10]
    assert all(np.unique(files[j.rows]).size == 1 for j in scouts)
    assert np.isfinite(policy.cputime_) and result.stages[:2] == ["scout", "jobs"]
    events = dataset.units["events"].to_numpy()
    speed = 1.0 / pool.time_factors
    for job in sim.jobs:
        if job.stage.startswith("jobs") and len(job.meta["files"]) > 1 and job.meta["attempt"] == 1:
            # Filled to W on the site it ran at: adding its last file crossed the budget, so without it it fits.
            site = job.attempts[0].site
            budget = policy.target_runtime * speed[site] / job.meta["cputime"]  # cpuTime when it was made
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
    policy._done_buffer, policy._n_done = np.empty((2, 1)), 0
    for e, s in zip(events, seconds, strict=True):
        policy._record(e, s)
    policy._update()
    assert policy._size == 8192  # 10 events/s x 1000 s = 10,000 -> 2**13
    slope, intercept = linear_fit(seconds[:4], events[:4])
    assert (slope, intercept) == pytest.approx((10.0, 0.0))
    rng = np.random.default_rng(3)
    x, y = rng.random(50) * 100, rng.random(50) * 1000
    assert linear_fit(x, y) == pytest.approx(linear_fit_scipy(x, y))


def test_coffea_chunks_stay_within_files_and_shrink_when_learned(results, pileup):
    _, dataset, _, _ = pileup
    sim, _, policy = results["coffea"]
    files = dataset.units["file_id"].to_numpy()
    assert all(np.unique(files[j.rows]).size == 1 for j in sim.jobs)
    assert policy.chunksizes_ and all(s & (s - 1) == 0 for s in policy.chunksizes_)


def test_manual_guess_and_fixed_lumis_per_job(results):
    sim, _, policy = results["manual"]
    sizes = {j.n_units for j in sim.jobs}
    assert max(sizes) == policy.lumis_per_job_ and policy.lumis_per_job_ >= 1
    assert all(j.soft_limit is None and j.hard_limit == 1250 * 60.0 for j in sim.jobs)


def test_clairvoyant_binds_longest_first_with_decreasing_sizes(results, pileup):
    workload, _, truth, pool = pileup
    sim, result, policy = results["clairvoyant"]
    jobs = sorted(sim.jobs, key=lambda j: j.submitted)
    costs = truth.seconds
    # Longest processing time first: each job's units are no longer than any unit bound before them.
    smallest_so_far = np.inf
    for job in jobs:
        assert costs[job.rows].max() <= smallest_so_far + 1e-9
        smallest_so_far = min(smallest_so_far, costs[job.rows].min())
    # Decreasing sizes: the last jobs are much shorter than the first; none over the target (except a
    # unit alone).
    walls = np.array([costs[j.rows].sum() * a.factor for j in jobs for a in j.attempts[:1]])
    assert walls[-10:].mean() < 0.5 * walls[:10].mean()
    multi = [costs[j.rows].sum() * pool.time_factors.max() for j in jobs if j.n_units > 1]
    assert max(multi) <= workload.target_runtime * 1.001 * pool.time_factors.max() / pool.time_factors.min()
    assert result.frac_soft_limit == 0.0 and result.frac_hard_killed == 0.0
    assert result.makespan < 1.15 * lower_bound(truth, pool)


def test_blind_clairvoyant_sizes_jobs_for_the_mean_slot_not_the_one_it_lands_on():
    workload = small("sites")
    dataset, truth, pool = workload.build(0, failures=False)
    payload_per_site = {}
    for sees in (True, False):
        policy = ClairvoyantPolicy(target_runtime=workload.target_runtime, sees_slot=sees)
        sim = Simulation(dataset, truth, pool, seed=1)
        sim.run(policy)
        assert (sim.state == 2).all()  # every unit done
        # The first job on each slot, bound while the work left still caps sizes at the target.
        first = {}
        for attempt in sorted(sim.attempts, key=lambda a: a.dispatched):
            first.setdefault(attempt.slot, attempt)
        per_site = {}
        for attempt in first.values():
            per_site.setdefault(attempt.site, []).append(truth.seconds[attempt.job.rows].sum())
        payload_per_site[sees] = {site: np.mean(v) for site, v in per_site.items()}
    fast, slow = int(np.argmin(pool.time_factors)), int(np.argmax(pool.time_factors))
    seeing, blind = payload_per_site[True], payload_per_site[False]
    # Seeing the slot: a slow slot's job holds less work, in the ratio of the site speeds (1.8 / 0.7).
    assert seeing[fast] / seeing[slow] > 2.0
    # Blind: the same work whatever the slot.
    assert blind[fast] / blind[slow] == pytest.approx(1.0, abs=0.1)


def test_a_scheduler_told_the_site_sizes_jobs_for_its_speed():
    from benchmarks.peers import autosplit as peer

    workload = small("sites")
    dataset, truth, pool = workload.build(0, failures=False)
    policy = peer.make_pull(workload)
    sim = Simulation(dataset, truth, pool, seed=1)
    result = sim.run(policy)
    assert result.units["pending"] == result.units["assigned"] == 0
    sched = policy.scheduler_
    factors = sched.model_.site_factors_
    fast, slow = min(factors, key=factors.get), max(factors, key=factors.get)
    assert factors[slow] / factors[fast] > 1.8  # learned from the reports: 1.8 / 0.7 in truth
    mean = sched._predictions.mean
    work = {fast: [], slow: []}
    for request in policy.requests_:
        site = request.meta.get("site")
        if site in work and request.stage == "processing" and request.meta.get("tail_level") == 0:
            work[site].append(mean[request.rows].sum())
    assert len(work[fast]) > 5 and len(work[slow]) > 5
    # A slow site's job holds less work than a fast site's.
    assert np.median(work[fast]) > 1.5 * np.median(work[slow])


def test_clairvoyant_shortens_jobs_under_failures():
    policy = ClairvoyantPolicy(target_runtime=8 * 3600.0)
    pool = wl.by_name("constant", "grid").pool(failures=True)
    assert policy.cap(pool) == pytest.approx((2 * 600.0 * 48 * 3600.0) ** 0.5)
    assert policy.cap(wl.by_name("constant", "grid").pool(failures=False)) == 8 * 3600.0


def test_autosplit_peer_gets_only_what_the_pipeline_has(results, pileup):
    workload, dataset, truth, pool = pileup
    sim, result, policy = results["autosplit"]
    assert isinstance(policy, SchedulerPolicy)
    assert policy.options["slots"] is None, "no slot count: the scheduler observes the concurrency"
    assert policy.timing_noise == TIMING_NOISE and policy.per_unit_timing
    assert policy.scheduler_.slots is None and policy.scheduler_.finished
    assert (
        result.stages[0] == "probe" and result.units["done"] + result.units["quarantined"] == dataset.n_units
    )
    _, _, fjr = results["autosplit-fjr"]
    assert not fjr.per_unit_timing


def test_reported_unit_seconds_carry_measurement_noise_and_jobs_exact_walls(pileup):
    workload, dataset, truth, pool = pileup
    seen = []

    class Spy(SchedulerPolicy):
        def _report(self, attempt):
            report = super()._report(attempt)
            seen.append((attempt, report))
            return report

    Simulation(dataset, truth, pool, seed=1).run(
        Spy(options={"target_runtime": 4 * 3600.0}, timing_noise=0.07)
    )
    ratios = []
    for attempt, report in seen:
        if attempt.outcome in ("ok", "soft") and report.units:
            assert report.wall_seconds == pytest.approx(attempt.overhead + attempt.payload)
            true = truth.seconds[attempt.job.rows[: attempt.n_kept]] * attempt.factor
            ratios += list(np.array([u["seconds"] for u in report.units]) / true)
    ratios = np.log(ratios)
    assert len(ratios) > 500 and 0.05 < ratios.std() < 0.09 and abs(ratios.mean() + 0.07**2 / 2) < 0.01


def test_failures_workload_poison_and_crashes():
    workload = small("failures")
    dataset, truth, pool = workload.build(1, failures=True)
    pool = replace(pool, failure_rate=1.0 / (6 * 3600.0))
    assert int(truth.poison.sum()) == 3
    for name in ("autosplit", "crab3", "clairvoyant"):
        sim = Simulation(dataset, truth, pool, seed=0)
        result = sim.run(POLICIES[name](workload))
        assert result.n_failed_attempts > 0
        assert result.units["done"] + result.units["quarantined"] + result.units["lost"] == dataset.n_units
        assert not sim.done_count[truth.poison].any()
