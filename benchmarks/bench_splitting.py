"""Benchmark: classic splitting, plan and regroup on 1,000,000 and 10,000,000 units.

Dataset shape (issue 3): files of 10 lumis, 200 events per lumi, a few runs; 1,000,000 units in 100,000
files and 10,000,000 units in 1,000,000 files. Each algorithm is timed as the median of several runs (after
one unmeasured run, so memory is warm), and the peak working memory of one run is traced (numpy buffers,
via tracemalloc). Reference figures measured for WMCore's own
EventAwareLumiBased on the same shapes (pure Python, one object per lumi): 3.3 s and 42 s.
Target: every algorithm and ``plan`` under 0.15 s (1M) and 2 s (10M) on 2 cores, memory linear in units.

Run: .venv/bin/python benchmarks/bench_splitting.py [--quick]   (writes benchmarks/results/splitting.json)
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from _common import median_seconds, peak_traced_bytes, write_results  # noqa: E402

from autosplit import Dataset  # noqa: E402
from autosplit.splitting import ConstantRateModel, plan, regroup, split  # noqa: E402

WMCORE_EVENT_AWARE_SECONDS = {1_000_000: 3.3, 10_000_000: 42.0}
LUMIS_PER_FILE = 10
EVENTS_PER_LUMI = 200
N_RUNS = 5
MODEL = ConstantRateModel(seconds_per_event=0.05, cv=0.3, overhead_seconds=300.0, shared_cv=0.1)

CASES = {
    "FileBased": lambda ds: split(ds, "FileBased", files_per_job=10),
    "LumiBased": lambda ds: split(ds, "LumiBased", lumis_per_job=100),
    "EventAwareLumiBased": lambda ds: split(ds, "EventAwareLumiBased", events_per_job=50_000),
    "EventBased": lambda ds: split(ds, "EventBased", events_per_job=50_000),
    "plan_8h": lambda ds: plan(ds, MODEL, 8 * 3600.0, alpha=0.05),
    "plan_1h": lambda ds: plan(ds, MODEL, 3600.0, alpha=0.05),
    "regroup_2h_500slots": lambda ds: regroup(ds, MODEL, 2 * 3600.0, n_slots=500),
}


def make_dataset(n_units: int) -> Dataset:
    n_files = n_units // LUMIS_PER_FILE
    per_run = n_units // N_RUNS
    index = np.arange(n_units)
    units = pl.DataFrame(
        {
            "run": 300_000 + index // per_run,
            "lumi": index % per_run + 1,
            "events": np.full(n_units, EVENTS_PER_LUMI),
            "bytes": np.full(n_units, EVENTS_PER_LUMI * 2_000),
            "events_exact": np.ones(n_units, dtype=bool),
            "file_id": (index // LUMIS_PER_FILE).astype(np.uint32),
        }
    ).with_columns(pl.concat_list([pl.col("file_id")]).alias("file_ids"))
    files = pl.DataFrame(
        {
            "file_id": np.arange(n_files, dtype=np.uint32),
            "lfn": pl.select(
                pl.concat_str(
                    pl.lit("/store/bench/"),
                    pl.lit(np.arange(n_files)).cast(pl.String).str.zfill(8),
                    pl.lit(".root"),
                )
            ).to_series(),
            "events": np.full(n_files, LUMIS_PER_FILE * EVENTS_PER_LUMI),
            "size": np.full(n_files, LUMIS_PER_FILE * EVENTS_PER_LUMI * 2_000),
            "block": ["/bench#1"] * n_files,
            "locations": [["T2_CH_CERN"]] * n_files,
        }
    )
    return Dataset(units, files, name=f"bench-{n_units}")


def bench(n_units: int, repeat: int) -> dict:
    t0 = time.perf_counter()
    ds = make_dataset(n_units)
    build = time.perf_counter() - t0
    out = {"n_units": n_units, "n_files": ds.n_files, "build_seconds": round(build, 3), "cases": {}}
    for name, func in CASES.items():
        gc.collect()
        result, extra = peak_traced_bytes(lambda f=func, d=ds: f(d))
        median, runs = median_seconds(
            lambda f=func, d=ds: f(d), repeat=repeat, warmup=0
        )  # warm: traced run above
        out["cases"][name] = {
            "median_seconds": round(median, 4),
            "runs_seconds": [round(t, 4) for t in runs],
            "n_jobs": result.n_jobs,
            "peak_numpy_bytes": extra,
            "extra_bytes_per_unit": round(extra / n_units, 1),
        }
        line = f"{n_units:>10,} units  {name:<22} {median * 1000:9.1f} ms  {result.n_jobs:>8,} jobs  "
        print(line + f"numpy peak {extra / 1e6:8.1f} MB")
    wmcore = WMCORE_EVENT_AWARE_SECONDS.get(n_units)
    if wmcore:
        ours = out["cases"]["EventAwareLumiBased"]["median_seconds"]
        out["wmcore_event_aware_seconds"] = wmcore
        out["speedup_vs_wmcore_event_aware"] = round(wmcore / ours, 1)
    del ds
    gc.collect()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the 1,000,000-unit shape")
    args = parser.parse_args()
    sizes = [1_000_000] if args.quick else [1_000_000, 10_000_000]
    results = [bench(n, repeat=5 if n <= 1_000_000 else 3) for n in sizes]
    targets = {1_000_000: 0.15, 10_000_000: 2.0}
    verdict = {}
    for res in results:
        limit = targets[res["n_units"]]
        slow = {k: v["median_seconds"] for k, v in res["cases"].items() if v["median_seconds"] >= limit}
        verdict[str(res["n_units"])] = {"target_seconds": limit, "all_met": not slow, "over_target": slow}
    if len(results) == 2:
        for name in CASES:
            small, big = (r["cases"][name]["extra_bytes_per_unit"] for r in results)
            verdict.setdefault("memory_per_unit_ratio_10M_vs_1M", {})[name] = (
                round(big / small, 2) if small else None
            )
    print(verdict)
    write_results("splitting", {"results": results, "targets": verdict})


if __name__ == "__main__":
    main()
