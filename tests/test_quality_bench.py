"""The splitting-quality benchmark's harness on a tiny configuration, and the validity of its lower bound."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from autosplit.sim import Drift, Pool, SimJob, Simulation, SiteSlots, Truth, lower_bound
from benchmarks import run_quality as rq
from benchmarks import workloads as wl
from benchmarks.peers import POLICIES

TINY = replace(wl.PROFILES["today"].scaled(400, 8), target_runtime=2 * 3600.0)
ROW_KEYS = {
    "workload",
    "profile",
    "split",
    "policy",
    "seed",
    "failures",
    "makespan_s",
    "bound_s",
    "makespan_over_bound",
    "cpu_waste_fraction",
    "soft_limit_fraction",
    "n_hard_killed",
    "units_lost",
    "units_quarantined",
    "makespan_vs_crab3",
    "waste_vs_crab3",
    "error",
    "stuck",
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    tasks = rq.build_tasks(
        [TINY], ["drift", "huge-lumis"], [0], [False, True], ("clairvoyant", "autosplit", "crab3"), 120.0
    )
    rows, timings = rq.run(tasks, workers=1, progress=False)
    out = tmp_path_factory.mktemp("quality")
    meta = {"command": "test", "seconds": 1.0, "workers": 1, "seeds": [0], "quick": True, "profiles": {}}
    meta["machine"] = {"cpus": 1, "platform": "test", "python": "3", "date": "today"}
    summary = rq.write(rows, timings, meta, out)
    return rows, summary, out


def test_rows_have_the_schema_and_mark_split_and_failures(tiny_run):
    rows, _, out = tiny_run
    assert json.loads((out / "quality.json").read_text()) == json.loads(
        json.dumps(rows, default=rq.json_default)
    )
    policies = [r for r in rows if r["policy"] != "bound"]
    assert len(policies) == 2 * 2 * 3  # workloads x failure settings x policies, one seed
    for row in policies:
        assert ROW_KEYS <= row.keys(), ROW_KEYS - row.keys()
        assert row["split"] == {"drift": "train", "huge-lumis": "test"}[row["workload"]]
        assert isinstance(row["failures"], bool) and row["profile"] == "today" and row["seed"] == 0
        assert row["error"] is None and not row["stuck"]
        assert row["units_lost"] + row["units_quarantined"] + row["units_done"] == row["units_total"] == 400
        assert 0.0 <= row["soft_limit_fraction"] <= 1.0
    autosplit = [r for r in policies if r["policy"] == "autosplit"]
    assert all(r["probe_predicted_cpu_s"] and r["probe_prediction_ratio"] > 0 for r in autosplit)
    assert all(0 < r["probe_event_fraction"] <= 1 for r in autosplit)
    crab = [r for r in policies if r["policy"] == "crab3"]
    assert all(r["makespan_vs_crab3"] == 1.0 for r in crab)
    assert {r["failures"] for r in policies} == {False, True}


def test_bound_is_below_every_simulated_makespan(tiny_run):
    rows, _, _ = tiny_run
    for row in rows:
        if row["policy"] != "bound":
            assert row["makespan_s"] >= row["bound_s"] > 0, row["policy"]


def test_summary_and_markdown_report_targets_train_and_test(tiny_run):
    _, summary, out = tiny_run
    text = (out / "quality.md").read_text()
    for heading in ("## Headline", "## Targets", "### autosplit on today, train workloads", "## Every cell"):
        assert heading in text
    assert "### today, with node failures, test" in text and "clairvoyant" in text
    entries = summary["targets"]["autosplit"]
    assert {e["workload"] for e in entries} == {"drift", "huge-lumis"}
    for e in entries:
        assert {
            "makespan_vs_bound_met",
            "makespan_vs_crab3_met",
            "waste_vs_crab3_met",
            "units_lost_met",
        } <= e.keys()
    probe = summary["probe_targets"]["autosplit"]
    assert {(p["split"], p["subset"]) for p in probe} >= {("train", "all"), ("test", "all"), ("all", "all")}


def test_cli_quick_arguments_parse(monkeypatch, tmp_path):
    seen = {}

    def fake_run(tasks, workers, progress=True, deadline=None):
        seen["tasks"], seen["workers"], seen["deadline"] = tasks, workers, deadline
        return [], {}

    monkeypatch.setattr(rq, "run", fake_run)
    monkeypatch.setattr(rq, "write", lambda rows, timings, meta, out: {"problems": []})
    rq.main(["--quick", "--profiles", "grid", "--split", "test", "--workers", "1", "--out", str(tmp_path)])
    tasks = seen["tasks"]
    assert {t.workload for t in tasks} == {"huge-lumis"}
    assert {t.profile.n_slots for t in tasks} == {34} and {t.seed for t in tasks} == {0}
    assert {t.failures for t in tasks} == {False, True} and "crab3" in tasks[0].policies


# ---------------------------------------------------------------------- the bound under drift and sites
class OneJobPerSlot:
    """Adversary of a rising drift: every slot gets one job at t = 0 holding its share of the work (for
    a pool of one site: the engine hands jobs to slots in its own order)."""

    name = "one-job-per-slot"

    def run(self, sim):
        pool, cost = sim.pool, sim.truth.seconds
        factors = pool.time_factors[pool.slot_site]
        load = np.zeros(pool.n_slots)
        groups: list[list[int]] = [[] for _ in range(pool.n_slots)]
        for row in np.argsort(-cost, kind="stable").tolist():  # LPT over the slots' wall time
            k = int(np.argmin((load + cost[row]) * factors))
            load[k] += cost[row]
            groups[k].append(row)
        jobs = [SimJob(np.array(g), priority=float(load[k])) for k, g in enumerate(groups) if g]
        yield sim.wait_all(sim.submit_many(jobs))


class ManySmallJobs:
    """Adversary of a falling drift: tiny jobs, so every unit takes the factor of the moment it starts."""

    name = "many-small-jobs"

    def run(self, sim):
        yield sim.wait_all(sim.submit_many([SimJob(np.array([r])) for r in range(sim.truth.n_units)]))


def old_instantaneous_bound(truth: Truth, pool: Pool) -> float:
    """The bound used before: the drift factor taken at each instant (not valid when it rises)."""
    work = truth.total_seconds() / pool.speed_sum
    a, r = truth.drift.amplitude, truth.drift.ramp_seconds
    during = r / a * math.log1p(a)
    return r / a * math.expm1(a * work / r) if work <= during else r + (work - during) * (1.0 + a)


def quiet(sites: tuple[SiteSlots, ...], **kwargs) -> Pool:
    return Pool(sites=sites, overhead_seconds=0.0, overhead_sigma=0.0, node_sigma=0.0, **kwargs)


def test_a_rising_drift_cannot_push_the_bound_above_one_job_per_slot():
    rng = np.random.default_rng(5)
    truth = Truth(rng.gamma(4.0, 100.0, 2000), drift=Drift(0.5, 3600.0))
    pool = quiet((SiteSlots("A", 10, 1.0),))
    dataset = _dataset(truth.n_units)
    result = Simulation(dataset, truth, pool, seed=0).run(OneJobPerSlot())
    assert result.units["done"] == truth.n_units
    # Every job starts at t = 0 with factor 1: the makespan is about work / slots ...
    assert result.makespan < 1.02 * truth.total_seconds() / pool.speed_sum
    # ... below the instantaneous-factor bound used before, and never below the valid bound.
    assert result.makespan < old_instantaneous_bound(truth, pool)
    assert result.makespan >= lower_bound(truth, pool)


def test_a_falling_drift_bound_is_approached_by_small_jobs():
    rng = np.random.default_rng(6)
    truth = Truth(rng.gamma(4.0, 10.0, 4000), drift=Drift(-0.5, 3600.0))
    pool = quiet((SiteSlots("A", 5, 0.8), SiteSlots("B", 5, 1.6)))
    result = Simulation(_dataset(truth.n_units), truth, pool, seed=0).run(ManySmallJobs())
    bound = lower_bound(truth, pool)
    assert bound < truth.total_seconds() / pool.speed_sum  # a falling cost lowers it
    assert bound <= result.makespan < 1.05 * bound


@pytest.mark.parametrize("drift", [Drift(0.5, 4 * 3600.0), Drift(-0.4, 4 * 3600.0), None])
@pytest.mark.parametrize("name", ["clairvoyant", "informed", "crab3", "coffea", "autosplit"])
def test_no_policy_beats_the_bound_with_drift_and_heterogeneous_sites(name, drift):
    workload = replace(wl.by_name("sites", TINY), drift=drift)
    dataset, truth, pool = workload.build(3, failures=False)
    assert len(pool.sites) == 3 and pool.node_sigma > 0
    pools = [pool] if name == "autosplit" else [pool, replace(pool, node_sigma=0.0, overhead_sigma=0.0)]
    for p in pools:
        result = Simulation(dataset, truth, p, seed=1).run(POLICIES[name](workload))
        assert result.units["done"] + result.units["quarantined"] + result.units["lost"] == dataset.n_units
        assert result.makespan >= lower_bound(truth, p)


def test_informed_plans_with_each_units_expected_cost_not_this_runs_draw():
    """``informed`` sees what the dataset shows (events, pile-up) and nothing of the per-lumi noise: its
    planning costs keep the level and the feature-driven shape of the truth but not the 8x lumis."""
    from benchmarks.peers.clairvoyant import expected_seconds

    workload = wl.by_name("slow-lumis", TINY)
    dataset, truth, pool = workload.build(0, failures=False)
    expected = expected_seconds(workload)
    assert expected.sum() == pytest.approx(truth.seconds.sum(), rel=0.05)
    ratio = truth.seconds / expected
    assert (ratio > 3).mean() == pytest.approx(0.10, abs=0.04), "the 8x lumis are not in the expectation"
    assert np.corrcoef(expected, dataset.units["events"].to_numpy())[0, 1] > 0.5, "the features are"
    policy = POLICIES["informed"](workload)
    assert policy.name == "informed" and np.array_equal(policy.planning_seconds, expected)
    result = Simulation(dataset, truth, pool, seed=0).run(policy)
    assert result.units["done"] == dataset.n_units


def test_the_longest_unit_bounds_a_task_of_one_huge_lumi():
    seconds = np.full(50, 10.0)
    seconds[7] = 5000.0
    truth = Truth(seconds)
    pool = quiet((SiteSlots("A", 4, 0.5), SiteSlots("B", 4, 2.0)))
    bound = lower_bound(truth, pool)
    assert bound == pytest.approx(5000.0 * 0.5)  # far above work / speed = 5490 / 10
    result = Simulation(_dataset(50), truth, pool, seed=0).run(
        POLICIES["clairvoyant"](wl.by_name("constant", TINY))
    )
    assert result.makespan >= bound


def _dataset(n: int):
    import polars as pl

    from autosplit import Dataset

    table = pl.DataFrame(
        {
            "run": [1] * n,
            "lumi": list(range(1, n + 1)),
            "events": [100] * n,
            "file": [f"/f{i // 8}" for i in range(n)],
        }
    )
    return Dataset.from_units(table)


def test_a_deadline_keeps_whole_seeds_only():
    tasks = rq.build_tasks([TINY], ["drift"], [0, 1], [False, True], ("crab3",), 60.0)
    assert [t.seed for t in tasks] == [0, 0, 1, 1], "seed by seed"
    rows = [
        {"profile": TINY.name, "workload": "drift", "seed": 0, "failures": False, "policy": "crab3"},
        {"profile": TINY.name, "workload": "drift", "seed": 0, "failures": True, "policy": "crab3"},
        {"profile": TINY.name, "workload": "drift", "seed": 1, "failures": False, "policy": "crab3"},
    ]
    kept, seeds = rq.complete_seeds(rows, tasks)
    assert seeds == [0] and [r["seed"] for r in kept] == [0, 0]
    rows, _ = rq.run(tasks, workers=1, progress=False, deadline=0.0)
    assert rows == [], "no task starts after the deadline"
    note = rq._reduced_note({"seeds": [0], "requested_seeds": [0, 1, 2], "deadline_minutes": 60})
    assert note and "Reduced run" in note[0]
    assert rq._reduced_note({"seeds": [0, 1, 2], "requested_seeds": [0, 1, 2]}) == []


def test_the_probe_truth_is_the_cpu_a_failure_free_run_consumes_on_uneven_sites():
    """A slow site takes fewer units, so the task consumes less CPU than 'every unit on an average slot'."""
    workload = wl.by_name("sites", TINY)
    dataset, truth, pool = workload.build(0, failures=False)
    sim = Simulation(dataset, truth, pool, seed=0)
    sim.run(POLICIES["clairvoyant"](workload))
    useful = sum(a.useful for a in sim.attempts)
    consumed, mean_slot = rq.true_cpu_consumed(truth, pool), rq.true_cpu_at_mean_speed(truth, pool)
    assert abs(useful / consumed - 1.0) < 0.03
    assert mean_slot > 1.08 * consumed  # the earlier reference overstated it


def test_the_simulated_autosplit_gets_the_pipelines_scheduler_options():
    from benchmarks.peers import autosplit as peer

    workload = wl.by_name("constant", TINY)
    passed = peer.options(workload)
    assert passed["slots"] is None and "grace_seconds" not in passed
    assert passed["target_runtime"] == workload.target_runtime
    # The pipeline's defaults reach the simulated scheduler, the probes' soft limit included (the pipeline
    # passed 15 min while the benchmark's scheduler used its own default of a sixteenth of the target).
    assert passed["probe_seconds"] == 2 * 3600.0 / 16.0  # a sixteenth of TINY's 2 h target
    assert passed["probe_fraction"] == 0.02 and passed["alpha"] == 0.05 and passed["max_tails"] == 3


def test_site_blind_table_averages_seeds_and_takes_failure_free_reference_rows(tmp_path):
    from benchmarks import bench_site_blind as sb

    base = {"profile": "grid", "workload": "sites", "split": "train", "n_jobs": 10, "error": None}
    quality = [
        {**base, "policy": "autosplit", "seed": 0, "failures": False, "makespan_over_bound": 1.1},
        {**base, "policy": "autosplit", "seed": 1, "failures": False, "makespan_over_bound": 1.3},
        {**base, "policy": "autosplit", "seed": 0, "failures": True, "makespan_over_bound": 9.0},
        {**base, "policy": "crab3", "seed": 0, "failures": False, "makespan_over_bound": 9.0},
    ]
    path = tmp_path / "quality.json"
    path.write_text(json.dumps(quality))
    rows = sb.quality_rows(path)
    assert [r["policy"] for r in rows] == ["autosplit", "autosplit"]
    rows.append({**base, "policy": "clairvoyant-blind", "seed": 0, "makespan_over_bound": 1.2})
    (entry,) = sb.table(rows, ["clairvoyant", "clairvoyant-blind", "autosplit"])
    assert entry["autosplit"] == pytest.approx(1.2)
    assert entry["clairvoyant-blind"] == pytest.approx(1.2) and entry["clairvoyant"] is None
    assert sb.quality_rows(tmp_path / "missing.json") == []
