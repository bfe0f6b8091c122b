"""Build the example dataset: many small NanoAOD files from real events, lumis of real 2017 runs.

The events are the real muon content of the NanoAOD excerpts in tests/data/root (2018 DoubleMuon collision
data, 2015 Open Data ttbar and a Drell-Yan sample), resampled. They are laid out as the lumisections of
2017 runs 297050/297056/297057 listed in the real brilcalc per-lumi table (tests/data/brilcalc), with
events per lumi proportional to each lumisection's recorded luminosity, and one lumi is split across two
files (its job reads both).

Run: .venv/bin/python examples/nanoaod/make_dataset.py [--lumis 240] [--out examples/nanoaod/data]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from autosplit.datasets.features import read_brilcalc

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "tests" / "data"
SOURCES = ["nano_dimuon.root", "nanoAOD_2015_CMS_Open_Data_ttbar.root", "nano_dy.root"]
FIELDS = ["pt", "eta", "phi", "mass", "charge"]


def muon_pool() -> ak.Array:
    """Every event of the real files, as records of muon arrays."""
    pools = []
    for name in SOURCES:
        tree = uproot.open(DATA / "root" / name)["Events"]
        arrays = tree.arrays([f"Muon_{f}" for f in FIELDS], library="ak")
        pools.append(ak.zip({f: arrays[f"Muon_{f}"] for f in FIELDS}))
    return ak.concatenate(pools)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lumis", type=int, default=240, help="lumisections to write (default 240)")
    parser.add_argument("--lumis-per-file", type=int, default=10)
    parser.add_argument("--events-per-lumi", type=float, default=45.0, help="mean events per lumisection")
    parser.add_argument("--out", type=Path, default=HERE / "data")
    parser.add_argument("--seed", type=int, default=2017)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    table = read_brilcalc(DATA / "brilcalc" / "lumi_small.csv")
    # Every k-th lumisection, so all three runs (and lumisections outside the golden JSON) appear.
    stride = max(table.height // args.lumis, 1)
    lumis = table.gather_every(stride).head(args.lumis)
    recorded = lumis["recorded"].to_numpy()
    events_per_lumi = np.maximum(np.round(recorded / recorded.mean() * args.events_per_lumi), 1).astype(int)
    runs, lumi_numbers = lumis["run"].to_numpy(), lumis["lumi"].to_numpy()
    pool = muon_pool()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.root"):
        old.unlink()

    # Event rows of every lumi, then files of `lumis_per_file` lumis; the 5th file boundary splits a lumi.
    lumi_of_event = np.repeat(np.arange(len(lumis)), events_per_lumi)
    boundaries = np.cumsum(events_per_lumi)[args.lumis_per_file - 1 :: args.lumis_per_file][:-1].tolist()
    if len(boundaries) > 5:
        split_lumi = 5 * args.lumis_per_file  # starts the 6th file; half its events stay in the 5th file
        boundaries[4] += events_per_lumi[split_lumi] // 2
    starts = [0, *boundaries]
    ends = [*boundaries, lumi_of_event.size]
    picks = rng.integers(0, len(pool), lumi_of_event.size)
    for index, (start, end) in enumerate(zip(starts, ends, strict=True)):
        rows = slice(start, end)
        chosen = pool[picks[rows]]
        columns = {
            "run": runs[lumi_of_event[rows]].astype(np.uint32),
            "luminosityBlock": lumi_numbers[lumi_of_event[rows]].astype(np.uint32),
            "event": np.arange(start, end, dtype=np.uint64) + 1,
            "Muon": chosen,
        }
        with uproot.recreate(args.out / f"nano_{index:03d}.root") as out:
            # NanoAOD naming: a counter nMuon and flat branches Muon_pt, Muon_eta, ...
            out.mktree(
                "Events",
                {
                    name: value.type if isinstance(value, ak.Array) else value.dtype
                    for name, value in columns.items()
                },
                counter_name=lambda counted: f"n{counted}",
                field_name=lambda outer, inner: f"{outer}_{inner}",
            )
            out["Events"].extend(columns)
    print(f"wrote {len(starts)} files, {len(lumis)} lumis, {lumi_of_event.size} events to {args.out}")


if __name__ == "__main__":
    main()
