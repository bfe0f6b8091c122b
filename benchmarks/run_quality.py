"""Splitting quality: every policy on every workload of the suite, in one run, with fixed seeds.

For each workload of :mod:`benchmarks.workloads` and each seed, the true unit costs are drawn, then every
policy of :mod:`benchmarks.peers` runs the task on the same pool (:class:`autosplit.sim.Simulation`, same
seed). The autosplit row runs the pipeline's library calls with the pipeline's configuration defaults
and ``slots`` set to the pool's slots (:mod:`benchmarks.peers.autosplit`).

Writes ``benchmarks/results/quality.json`` (a list of rows: workload, policy, makespan_s,
cpu_waste_fraction, n_jobs, frac_soft_limit, n_tail_jobs, n_stages, ... as means over the seeds, with the
per-seed values) and ``benchmarks/results/quality.md``.

Run: .venv/bin/python benchmarks/run_quality.py [--seeds 3] [--workers 2] [--workloads a,b]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1]))
from _common import RESULTS, machine  # noqa: E402

from autosplit.sim import Simulation, lower_bound, stage_windows  # noqa: E402
from benchmarks import workloads as wl  # noqa: E402
from benchmarks.peers import POLICIES, bound_row  # noqa: E402

COMMAND = ".venv/bin/python benchmarks/run_quality.py"
ORDER = [
    "bound",
    "oracle",
    "autosplit",
    "crab3",
    "panda",
    "coffea",
    "manual",
]
AVERAGED = [
    "makespan_s",
    "makespan_over_bound",
    "cpu_waste_fraction",
    "n_jobs",
    "frac_soft_limit",
    "frac_hard_killed",
    "n_tail_jobs",
    "n_stages",
    "n_attempts",
    "n_failed_attempts",
    "units_done",
    "units_quarantined",
    "units_lost",
    "units_unfinished",
    "useful_cpu_s",
    "overhead_cpu_s",
    "thrown_cpu_s",
]


def policies_for(workload: wl.Workload) -> dict[str, Any]:
    """The policies of one run, by row name."""
    out = {name: make(workload) for name, make in POLICIES.items()}
    for name, policy in out.items():
        policy.name = name
    return out


def breakdown(sim: Simulation, makespan: float) -> dict[str, float]:
    """Where an autosplit run's slot time went, as fractions of ``n_slots * makespan``."""
    slots = sim.pool.n_slots
    total = slots * makespan
    windows = stage_windows(sim)
    probe_end = max((w["end"] for w in windows if w["stage"].startswith("probe")), default=0.0)
    processing = next((w for w in windows if w["stage"] == "processing"), None)
    proc_start = processing["start"] if processing else probe_end
    proc_end = processing["end"] if processing else probe_end
    busy_probe = sum(w["busy"] for w in windows if w["stage"].startswith("probe"))
    busy_tail = sum(w["busy"] for w in windows if w["stage"].startswith("tail"))
    attempts = sim.attempts
    return {
        "probe_phase_h": proc_start / 3600.0,
        "tail_phase_h": (makespan - proc_end) / 3600.0,
        "idle_probe_phase": (slots * proc_start - busy_probe) / total,
        "idle_processing": (slots * (proc_end - proc_start) - (processing["busy"] if processing else 0.0))
        / total,
        "idle_tail_phase": (slots * (makespan - proc_end) - busy_tail) / total,
        "overhead": sum(a.overhead for a in attempts) / total,
        "thrown": sum(a.thrown for a in attempts) / total,
    }


def run_one(name: str, seed: int) -> dict[str, Any]:
    """Every policy on workload ``name`` with ``seed``; returns rows and autosplit breakdowns."""
    workload = wl.by_name(name)
    dataset, truth = workload.build(seed)
    bound = lower_bound(truth, workload.pool)
    rows = [{**bound_row(truth, workload.pool), "makespan_over_bound": 1.0}]
    breakdowns = {}
    timings = {}
    for policy_name, policy in policies_for(workload).items():
        start = time.perf_counter()
        sim = Simulation(dataset, truth, workload.pool, seed=seed)
        result = sim.run(policy)
        timings[policy_name] = time.perf_counter() - start
        row = result.row()
        row["makespan_over_bound"] = result.makespan / bound
        rows.append(row)
        if policy_name.startswith("autosplit"):
            breakdowns[policy_name] = breakdown(sim, result.makespan)
    for row in rows:
        row["workload"] = name
    return {"workload": name, "seed": seed, "rows": rows, "breakdowns": breakdowns, "timings": timings}


def aggregate(runs: list[dict[str, Any]], seeds: list[int]) -> list[dict[str, Any]]:
    """Mean over seeds per (workload, policy), with the per-seed makespans and waste."""
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        for row in run["rows"]:
            grouped.setdefault((row["workload"], row["policy"]), []).append(row)
    names = [w.name for w in wl.suite()]
    out = []
    for (workload, policy), rows in sorted(
        grouped.items(), key=lambda kv: (names.index(kv[0][0]), ORDER.index(kv[0][1]))
    ):
        mean = {k: float(np.mean([r.get(k, 0.0) for r in rows])) for k in AVERAGED if k in rows[0]}
        out.append(
            {
                "workload": workload,
                "policy": policy,
                **mean,
                "seeds": seeds,
                "makespan_s_per_seed": [float(r["makespan_s"]) for r in rows],
                "cpu_waste_fraction_per_seed": [float(r["cpu_waste_fraction"]) for r in rows],
            }
        )
    return out


# ---------------------------------------------------------------------- markdown
def _fmt_int(x: float) -> str:
    return f"{x:,.0f}"


def markdown(rows: list[dict[str, Any]], runs: list[dict[str, Any]], seeds: list[int], seconds: float) -> str:
    by = {(r["workload"], r["policy"]): r for r in rows}
    workloads = [w for w in wl.suite() if (w.name, "bound") in by]
    pool = workloads[0].pool
    lines = [
        "# Splitting quality: autosplit against its peers in the pool simulator",
        "",
        f"Regenerate with `{COMMAND}` ({seconds:.0f} s on {machine()['cpus']} cores; writes this file and "
        "`quality.json`). Every number is the mean over seeds "
        f"{', '.join(map(str, seeds))}; each seed draws the true unit costs and the pool's randomness anew.",
        "",
        f"Setup: {wl.N_UNITS:,} lumis of the 2017 golden JSON (events per lumi following the real brilcalc "
        "luminosity profile, files shaped like the DBS listing's SingleMu RECO files), target runtime "
        f"{wl.TARGET / 3600:.0f} h, {pool.n_slots} slots, per-job overhead lognormal with mean "
        f"{wl.OVERHEAD_SECONDS / 60:.0f} min (log-sd 0.5), node speed jitter log-sd 0.1, "
        f"{pool.stage_delay_seconds:.0f} s between stages, SIGTERM grace {pool.grace_seconds:.0f} s. "
        "See `benchmarks/workloads.py` and `benchmarks/peers/` (each peer cites the reference sections it "
        "follows).",
        "",
        "Columns: makespan in hours and over the lower bound (all work on all slots at once, no overhead); "
        "CPU waste = (per-job overhead + CPU of work thrown away) / useful CPU; jobs submitted; soft-limit = "
        "fraction of non-probe job attempts stopped at their soft limit; tail jobs; stages; units lost "
        "(dropped without a stage left to run them) and quarantined (reported with a reason).",
        "",
    ]
    for workload in workloads:
        lines += [
            f"## {workload.name}: {workload.description}",
            "",
            "| policy | makespan h | x bound | CPU waste | jobs | soft-limit | tail jobs | stages | lost | quarantined |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for policy in ORDER:
            r = by.get((workload.name, policy))
            if r is None:
                continue
            if policy == "bound":
                lines.append(f"| bound | {r['makespan_s'] / 3600:.1f} | 1.000 | - | - | - | - | - | - | - |")
                continue
            lines.append(
                f"| {policy} | {r['makespan_s'] / 3600:.1f} | {r['makespan_over_bound']:.3f} | "
                f"{r['cpu_waste_fraction']:.2%} | {_fmt_int(r['n_jobs'])} | {r['frac_soft_limit']:.1%} | "
                f"{_fmt_int(r['n_tail_jobs'])} | {r['n_stages']:.1f} | {_fmt_int(r['units_lost'])} | "
                f"{_fmt_int(r['units_quarantined'])} |"
            )
        lines.append("")

    lines += [
        "## Targets",
        "",
        "Targets: makespan <= 1.10 x the lower bound, and CPU waste <= 0.5 x CRAB3's, on every workload.",
        "",
        "| workload | autosplit x bound | <= 1.10 | waste / CRAB3's | <= 0.5 | oracle x bound | CRAB3 x bound |",
        "|---|---|---|---|---|---|---|",
    ]
    met = [0, 0]
    for workload in workloads:
        crab = by[(workload.name, "crab3")]
        r = by[(workload.name, "autosplit")]
        ratio = r["makespan_over_bound"]
        waste = r["cpu_waste_fraction"] / crab["cpu_waste_fraction"]
        met[0] += ratio <= 1.10
        met[1] += waste <= 0.5
        cells = [
            workload.name,
            f"{ratio:.3f}",
            "yes" if ratio <= 1.10 else "no",
            f"{waste:.2f}",
            "yes" if waste <= 0.5 else "no",
            f"{by[(workload.name, 'oracle')]['makespan_over_bound']:.3f}",
            f"{crab['makespan_over_bound']:.3f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    n = len(workloads)
    lines += [
        "",
        f"autosplit meets the makespan target on {met[0]} of {n} workloads and the waste target on {met[1]} of {n}.",
        "",
        "## Where autosplit's slot time goes",
        "",
        "Fractions of (slots x makespan), mean over seeds. Stages do not overlap (each stage's DAG starts when "
        "every job of the previous one has ended), so a stage's idle slot time is the wait for its slowest "
        "jobs. Probe phase: from the start to the first processing job; tail phase: from the last processing "
        "job to the end.",
        "",
        "| workload | probe phase h | idle in probe phase | idle in processing | tail phase h | "
        "idle in tail phase | overhead | thrown away |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload in workloads:
        parts = [r["breakdowns"]["autosplit"] for r in runs if r["workload"] == workload.name]
        m = {k: float(np.mean([p[k] for p in parts])) for k in parts[0]}
        lines.append(
            f"| {workload.name} | {m['probe_phase_h']:.2f} | {m['idle_probe_phase']:.1%} | "
            f"{m['idle_processing']:.1%} | {m['tail_phase_h']:.2f} | {m['idle_tail_phase']:.1%} | "
            f"{m['overhead']:.1%} | {m['thrown']:.1%} |"
        )
    lines += [
        "",
        "## Modelling notes",
        "",
        "* Every policy pays the same per-job overhead distribution and runs on the same slots; a crash (the "
        "failure hazard) loses the attempt with no report for every policy.",
        "* autosplit stops at a unit boundary after the soft limit; at the hard limit its worker stops cleanly "
        "when the unit in progress ends within the grace period, else the job's units do not count (their "
        "outputs were never written) and the cut-off unit re-runs at once, alone; CRAB3 processing jobs ramp down at the target, CRAB3 and manual jobs are "
        "removed at 1250 min with their work lost and not retried (50664 is fatal), CRAB3 retries crashes "
        "after 900 s (crab3.md 1.6, 3.3).",
        "* PanDA fills whole files per site to the target with P95 x 1.5 per-event times and is killed at a "
        "48 h queue limit (an assumption); coffea chunks never cross files and have no time limit; the "
        "manual guess comes from a local test on the first 1,000 events (crab3.md 5.4).",
        "* The oracle plans the true costs at the pool's mean speed into jobs of exactly the target; it does "
        "not know which site a job lands on.",
        "",
        "## Workloads",
        "",
    ]
    for workload in workloads:
        lines.append(
            f"* **{workload.name}**: {workload.description}; pool: "
            + ", ".join(f"{s.name} {s.slots} slots x{s.time_factor:g}" for s in workload.pool.sites)
            + (
                f", failure hazard 1/{1 / workload.pool.failure_rate / 3600:.0f} h"
                if workload.pool.failure_rate
                else ""
            )
            + "."
        )
    timing = {}
    for run in runs:
        for policy, t in run["timings"].items():
            timing.setdefault(policy, []).append(t)
    lines += [
        "",
        "Simulation wall time per run (mean, seconds): "
        + ", ".join(f"{p} {np.mean(t):.2f}" for p, t in sorted(timing.items())),
        "",
        f"Machine: {machine()['platform']}, Python {machine()['python']}, {machine()['date']}.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--workloads", default="")
    args = parser.parse_args()
    names = [w.name for w in wl.suite()]
    if args.workloads:
        names = [n for n in args.workloads.split(",") if n]
    seeds = list(range(args.seeds))
    tasks = [(name, seed) for name in names for seed in seeds]
    start = time.perf_counter()
    runs = []
    print(
        f"{len(tasks)} runs ({len(names)} workloads x {len(seeds)} seeds), {len(policies_for(wl.by_name(names[0])))} policies each"
    )
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        futures = {pool.submit(run_one, name, seed): (name, seed) for name, seed in tasks}
        for k, future in enumerate(as_completed(futures), 1):
            run = future.result()
            runs.append(run)
            best = {r["policy"]: r["makespan_over_bound"] for r in run["rows"]}
            print(
                f"[{k}/{len(tasks)}] {run['workload']} seed {run['seed']} "
                f"({time.perf_counter() - start:.0f} s): "
                + ", ".join(f"{p} {best[p]:.3f}" for p in ORDER if p in best and p != "bound"),
                flush=True,
            )
    seconds = time.perf_counter() - start
    rows = aggregate(runs, seeds)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "quality.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "quality.md").write_text(markdown(rows, runs, seeds, seconds))
    print(f"wrote {RESULTS / 'quality.json'} and {RESULTS / 'quality.md'} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
