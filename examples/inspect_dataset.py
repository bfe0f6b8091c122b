"""Inspect the bundled real NanoAOD files: units per lumi, and what a lumi mask keeps.

Run: .venv/bin/python examples/inspect_dataset.py
"""

from pathlib import Path

import autosplit as asp

DATA = Path(__file__).parents[1] / "tests" / "data"

ds = asp.Dataset.from_root(sorted((DATA / "root").glob("nano*.root")))
print(ds)
print(ds.units_with_lfn().select("run", "lumi", "events", "lfn"))

mask = asp.LumiMask.from_cmssw("1:2272915-1:2272917,315267:205")
kept = ds.select(mask)
print(f"mask {mask.to_cmssw()} keeps {kept.n_units} of {ds.n_units} units, {kept.n_events} events")
