"""Hypothesis strategies shared by the splitting tests: small random datasets with the awkward cases.

Datasets mix: lumis spanning two files, zero-event lumis, occasionally one huge lumi, several runs, and
files at different location sets.
"""

from __future__ import annotations

import polars as pl
from hypothesis import strategies as st

from autosplit import Dataset

LOCATION_SETS = [[], ["T2_CH_CERN"], ["T1_US_FNAL"], ["T1_US_FNAL", "T2_CH_CERN"]]


@st.composite
def datasets(draw, max_files: int = 6, max_units: int = 60, locations: bool = True) -> Dataset:
    n_files = draw(st.integers(1, max_files))
    lfns = [f"/store/test/file{i:02d}.root" for i in range(n_files)]
    keys = draw(
        st.lists(
            st.tuples(st.integers(1, 4), st.integers(1, 40)), min_size=1, max_size=max_units, unique=True
        )
    )
    rows = []
    for run, lumi in keys:
        first = draw(st.integers(0, n_files - 1))
        holders = [first]
        if n_files > 1 and draw(st.integers(0, 9)) == 0:  # about 1 lumi in 10 spans two files
            holders.append((first + 1) % n_files)
        for lfn_index in holders:
            kind = draw(st.integers(0, 19))
            events = 0 if kind == 0 else 50_000 if kind == 1 else draw(st.integers(1, 500))
            rows.append(
                {"run": run, "lumi": lumi, "events": events, "file": lfns[lfn_index], "bytes": events * 1000}
            )
    files = pl.DataFrame(
        {
            "lfn": lfns,
            "locations": [draw(st.sampled_from(LOCATION_SETS)) if locations else [] for _ in lfns],
        },
        schema={"lfn": pl.String, "locations": pl.List(pl.String)},
    )
    return Dataset.from_units(pl.DataFrame(rows), files=files)
