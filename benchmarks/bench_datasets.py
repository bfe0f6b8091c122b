"""Benchmark: LumiMask.contains and Dataset.select on a 1,000,000-unit dataset shaped like 2017 data.

The dataset takes the runs of the 2017 golden JSON; each run holds lumis 1..L where L is the run's last
certified lumi stretched so the whole dataset has 1,000,000 units (10 lumis per file, 100,000 files,
about 200 events per lumi). The mask is the 2017 golden JSON itself (206,562 lumis).
Target (issue 2): select in under 0.2 s on 2 cores.

Run: .venv/bin/python benchmarks/bench_datasets.py   (writes benchmarks/results/datasets.json)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import polars as pl

sys.path.insert(0, str(Path(__file__).parent))
from _common import current_rss_bytes, median_seconds, peak_rss_bytes, write_results  # noqa: E402

from autosplit import Dataset, LumiMask  # noqa: E402

GOLDEN = (
    Path(__file__).parents[1]
    / "tests/data/lumimask/Cert_294927-306462_13TeV_EOY2017ReReco_Collisions17_JSON.txt"
)
N_UNITS = 1_000_000
LUMIS_PER_FILE = 10


def golden_shaped_units(n_units: int, seed: int = 1) -> pl.DataFrame:
    golden = json.loads(GOLDEN.read_text())
    runs = np.array(sorted(int(r) for r in golden))
    last = np.array([max(b for _, b in golden[str(r)]) for r in runs])
    lengths = np.floor(last * n_units / last.sum()).astype(np.int64)
    lengths[np.argmax(lengths)] += n_units - lengths.sum()
    run_col = np.repeat(runs, lengths)
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    lumi_col = np.arange(n_units) - np.repeat(starts, lengths) + 1
    rng = np.random.default_rng(seed)
    events = rng.poisson(200, n_units)
    file_index = np.arange(n_units) // LUMIS_PER_FILE
    lfns = [f"/store/data/Run2017/bench/{i:07d}.root" for i in range(n_units // LUMIS_PER_FILE)]
    return pl.DataFrame(
        {
            "run": run_col,
            "lumi": lumi_col,
            "events": events,
            "bytes": events * 3_000,
            "file": pl.Series(lfns)[file_index],
        }
    )


def main() -> None:
    rss0 = current_rss_bytes()
    t0 = time.perf_counter()
    table = golden_shaped_units(N_UNITS)
    ds = Dataset.from_units(table, name="bench-2017")
    build_s = time.perf_counter() - t0
    del table
    mask = LumiMask.from_json(GOLDEN)
    runs = ds.units["run"].to_numpy()
    lumis = ds.units["lumi"].to_numpy()
    contains_s, contains_all = median_seconds(lambda: mask.contains(runs, lumis), repeat=7)
    select_s, select_all = median_seconds(lambda: ds.select(mask), repeat=7)
    selected = ds.select(mask)
    union_s, _ = median_seconds(lambda: mask | selected.lumi_mask(), repeat=5)
    lumi_mask_s, _ = median_seconds(lambda: ds.lumi_mask(), repeat=5)
    results = {
        "n_units": ds.n_units,
        "n_files": ds.n_files,
        "mask_lumis": mask.n_lumis,
        "mask_ranges": mask.n_ranges,
        "selected_units": selected.n_units,
        "selected_files": selected.n_files,
        "build_from_units_s": round(build_s, 4),
        "contains_median_s": round(contains_s, 4),
        "select_median_s": round(select_s, 4),
        "select_runs_s": [round(t, 4) for t in select_all],
        "dataset_lumi_mask_median_s": round(lumi_mask_s, 4),
        "mask_union_median_s": round(union_s, 4),
        "units_table_bytes": int(ds.units.estimated_size()),
        "rss_growth_bytes": current_rss_bytes() - rss0,
        "peak_rss_bytes": peak_rss_bytes(),
        "target_select_s": 0.2,
        "target_met": select_s < 0.2,
    }
    for key, value in results.items():
        print(f"{key:>28}: {value}")
    write_results("datasets", results)


if __name__ == "__main__":
    main()
