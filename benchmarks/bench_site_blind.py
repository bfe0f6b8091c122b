"""What knowing the slot a job lands on is worth: the clairvoyant policy and autosplit with and without it.

The condor pipeline binds a job's units before the job is matched to a slot (a DAG node's spec is written
before its job is submitted), so it cannot size a job for the speed of the slot that will run it. The
``clairvoyant`` and ``informed`` references of ``run_quality.py`` do, and so can a pull-based workload
manager that embeds :class:`autosplit.Scheduler` (a pilot asks for work for its own slot:
``next_jobs(..., site=...)``). This script runs, on every workload of both profiles without node failures:

* ``clairvoyant`` as it is;
* ``clairvoyant-blind``: every unit's true cost, the true slot count, site speeds and drift, but each job
  sized for the pool's slot-weighted mean time factor;
* ``autosplit-pull``: the ``autosplit`` row's scheduler and reports, each job asked for the site of the slot
  it will run on;

and sets beside them the ``informed`` and ``autosplit`` rows of ``results/quality.json``: makespan over the
lower bound, mean of the seeds.

Writes ``benchmarks/results/site_blind.json`` and prints a table.

Run: .venv/bin/python benchmarks/bench_site_blind.py [--seeds 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent))
from benchmarks import workloads as wl  # noqa: E402
from benchmarks._common import RESULTS, write_results  # noqa: E402

REFERENCES = ("informed", "autosplit")  #: rows read from quality.json
#: What a row keeps (with ``units_done``), the same for the rows run here and those read from quality.json.
ROW_FIELDS = (
    "profile",
    "workload",
    "split",
    "seed",
    "policy",
    "makespan_over_bound",
    "n_jobs",
    "cpu_waste_fraction",
    "soft_limit_fraction",
)


def run_one(args: tuple[str, str, int]) -> list[dict[str, Any]]:
    """The clairvoyant variants and ``autosplit-pull`` on one (profile, workload, seed), without failures."""
    from autosplit.sim import Simulation, lower_bound, summarize
    from benchmarks.peers import autosplit, clairvoyant

    profile, name, seed = args
    workload = wl.by_name(name, profile)
    dataset, truth, pool = workload.build(seed, failures=False)
    bound = lower_bound(truth, pool)
    rows = []
    for policy in (
        clairvoyant.make(workload),
        clairvoyant.make_blind(workload),
        autosplit.make_pull(workload),
    ):
        sim = Simulation(dataset, truth, pool, seed=seed)
        sim.run(policy, until=7 * 24 * 3600.0)
        result = summarize(sim, policy.name)
        values = (
            profile,
            name,
            workload.split,
            seed,
            policy.name,
            result.makespan / bound,
            result.n_jobs,
            result.cpu_waste_fraction,
            result.frac_soft_limit,
        )
        rows.append({**dict(zip(ROW_FIELDS, values, strict=True)), "units_done": result.units["done"]})
    return rows


def quality_rows(path: Path) -> list[dict[str, Any]]:
    """The reference policies' failure-free rows of a ``quality.json`` (empty when it is missing)."""
    if not path.exists():
        return []
    keep = []
    for row in json.loads(path.read_text()):
        if row.get("policy") in REFERENCES and not row.get("failures") and row.get("error") is None:
            keep.append({k: row.get(k) for k in ROW_FIELDS})
            keep[-1]["units_done"] = row.get("units_done")
    return keep


def table(rows: list[dict[str, Any]], policies: list[str]) -> list[dict[str, Any]]:
    """Per (profile, workload): each policy's mean makespan over the bound across the seeds."""
    cells: dict[tuple[str, str], dict[str, list[float]]] = {}
    splits: dict[tuple[str, str], str] = {}
    for row in rows:
        key = (row["profile"], row["workload"])
        splits[key] = row["split"]
        cells.setdefault(key, {}).setdefault(row["policy"], []).append(row["makespan_over_bound"])
    out = []
    for (profile, name), by_policy in cells.items():
        entry: dict[str, Any] = {"profile": profile, "workload": name, "split": splits[(profile, name)]}
        for policy in policies:
            values = by_policy.get(policy)
            entry[policy] = sum(values) / len(values) if values else None
        out.append(entry)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profiles", default="today,grid")
    parser.add_argument("--quality", default=str(RESULTS / "quality.json"), help="rows of the references")
    args = parser.parse_args(argv)

    tasks = [
        (profile, workload.name, seed)
        for profile in args.profiles.split(",")
        for workload in wl.suite(profile)
        for seed in range(args.seeds)
    ]
    rows: list[dict[str, Any]] = []
    with ProcessPoolExecutor(args.workers) as pool:
        for done, result in enumerate(pool.map(run_one, tasks), 1):
            rows += result
            if done % 10 == 0 or done == len(tasks):
                print(f"{done}/{len(tasks)} runs", file=sys.stderr, flush=True)
    seeds = set(range(args.seeds))
    profiles = set(args.profiles.split(","))
    rows += [r for r in quality_rows(Path(args.quality)) if r["seed"] in seeds and r["profile"] in profiles]
    policies = ["clairvoyant", "clairvoyant-blind", "informed", "autosplit", "autosplit-pull"]
    summary = table(rows, policies)
    print(f"{'profile':8} {'workload':13} {'split':5} " + " ".join(f"{p:>17}" for p in policies))
    for entry in summary:
        values = " ".join(f"{entry[p]:17.3f}" if entry[p] is not None else f"{'-':>17}" for p in policies)
        print(f"{entry['profile']:8} {entry['workload']:13} {entry['split']:5} {values}")
    write_results(
        "site_blind",
        {
            "description": __doc__.splitlines()[0],
            "seeds": args.seeds,
            "failures": False,
            "quality_source": Path(args.quality).name,
            "summary": summary,
            "rows": rows,
        },
    )


if __name__ == "__main__":
    main()
