"""Benchmark: speed of the pool simulator and of the dry-run predictor.

* ``fixed_100k``: 100,000 jobs (200,000 units, 2 lumis per job, LumiBased) submitted at once to 1,000
  slots in two sites, with soft and hard limits, lognormal overheads and a failure hazard (retries);
* ``feeder_100k``: the same 100,000 jobs handed out one by one by a feeder (the path dynamic policies use);
* ``predict_makespan``: :func:`autosplit.sim.predict_makespan` of 100,000 units on 300 slots, 20 runs.

Times are wall seconds of the whole simulation (event loop, outcomes, metrics), median of 3 runs.

Run: .venv/bin/python benchmarks/bench_sim.py   (writes benchmarks/results/sim.json)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_seconds, write_results  # noqa: E402

from autosplit.sim import Pool, SimJob, Simulation, SiteSlots, predict_makespan, truth_from_workload  # noqa: E402
from autosplit.sim.synthetic import SyntheticWorkload, synthetic_dataset  # noqa: E402
from autosplit.splitting import ConstantRateModel, split  # noqa: E402

N_UNITS = 200_000
POOL = Pool(
    sites=(SiteSlots("T2_A", 600, 0.9), SiteSlots("T2_B", 400, 1.2)),
    overhead_seconds=120.0,
    failure_rate=1.0 / (48 * 3600.0),
)


class FixedPolicy:
    """Submit every job of a plan at once and wait."""

    name = "fixed"

    def __init__(self, groups: list[np.ndarray]) -> None:
        self.groups = groups

    def run(self, sim: Simulation):
        jobs = [SimJob(g, soft_limit=1800.0, hard_limit=3600.0, retries=2) for g in self.groups]
        yield sim.wait_all(sim.submit_many(jobs))


class FeederPolicy:
    """Hand the same jobs out one at a time as slots free up."""

    name = "feeder"

    def __init__(self, groups: list[np.ndarray]) -> None:
        self.groups = groups

    def run(self, sim: Simulation):
        queue = iter(self.groups)
        done = sim.env.event()
        left = len(self.groups)

        def finished(_attempt) -> None:
            nonlocal left
            left -= 1
            if left == 0:
                done.succeed()

        def feed(_sim: Simulation, _site: int) -> SimJob | None:
            rows = next(queue, None)
            return (
                None if rows is None else SimJob(rows, soft_limit=1800.0, hard_limit=3600.0, on_done=finished)
            )

        sim.set_feeder(feed)
        yield done


def main() -> None:
    dataset = synthetic_dataset(N_UNITS, seed=5)
    truth = truth_from_workload(SyntheticWorkload(seconds_per_event=0.02), dataset, np.random.default_rng(0))
    job_plan = split(dataset, "LumiBased", lumis_per_job=2)
    groups = [job_plan.job_rows(j) for j in range(job_plan.n_jobs)]
    results = {"n_jobs": len(groups), "n_units": N_UNITS, "n_slots": POOL.n_slots}
    for label, policy in (("fixed_100k", FixedPolicy), ("feeder_100k", FeederPolicy)):
        last = {}

        def run(policy=policy, last=last) -> None:
            last["result"] = Simulation(dataset, truth, POOL, seed=1).run(policy(groups))

        seconds, times = median_seconds(run, repeat=3, warmup=0)
        result = last["result"]
        results[label] = {
            "seconds": seconds,
            "times": times,
            "attempts": result.n_attempts,
            "jobs_per_second": result.n_jobs / seconds,
        }
        print(f"{label}: {result.n_jobs} jobs ({result.n_attempts} attempts) in {seconds:.2f} s")

    small = synthetic_dataset(100_000, seed=6)
    model = ConstantRateModel(seconds_per_event=0.5, cv=0.3, overhead_seconds=300.0, shared_cv=0.15)

    def dryrun() -> None:
        predict_makespan(small, model, target_runtime=8 * 3600.0, n_slots=300, n_runs=20)

    seconds, times = median_seconds(dryrun, repeat=3, warmup=0)
    results["predict_makespan_100k_units_20_runs"] = {"seconds": seconds, "times": times}
    print(f"predict_makespan (100,000 units, 20 runs): {seconds:.2f} s")
    write_results("sim", results)


if __name__ == "__main__":
    main()
