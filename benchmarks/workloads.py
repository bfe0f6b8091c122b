"""The workload suite of the splitting-quality benchmark: real unit structure, known true costs, a pool.

Unit structure (shared by every workload), from the real data in ``tests/data``:

* **runs and lumis**: the 2017 golden JSON (``lumimask/Cert_294927-306462_...``), runs in run order until
  ``n_units`` lumis, real lumi numbers with their gaps;
* **events per lumi** follow the per-lumi luminosity: the real brilcalc table (``brilcalc/lumi_small.csv``,
  fill 5839/5840) gives pile-up and recorded luminosity for its own runs; every other run follows that
  fill's profile stretched over the run's lumi range and scaled by a lognormal factor per run (sd 12 %),
  as :func:`autosplit.sim.synthetic.synthetic_dataset` does; events are Poisson with a mean of
  ``EVENTS_PER_LUMI`` (930, the events per lumi of the DBS listing's SingleMu RECO files) times the lumi's
  recorded luminosity over the profile's mean;
* **files**: consecutive lumis of one run, with (lumis per file, file size) pairs drawn from the real DBS
  listing's SingleMu RECO files (``dbs/dbs_files_lumis.json``: 2-60 lumis, median 5; 1.6-4.3 GB); a unit's
  bytes are its file's size apportioned by events; ``pileup`` is a unit feature.

True cost per unit: :class:`~autosplit.sim.synthetic.SyntheticWorkload` (per-event seconds rising
with pile-up, a fixed cost per lumi, lognormal unit noise and heavy-tailed stragglers), with extra cost
shapes the synthetic generator lacks: a bimodal per-run factor (a trigger-menu or reconstruction change
invisible in the unit features) and a drift with time. The pool: ``N_SLOTS`` slots in sites of different
speeds, lognormal per-job overhead (mean 5 min, log-sd 0.5), node jitter (log-sd 0.1), optional failure
hazard and poison units. Target runtime 8 h.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from autosplit.datasets import Dataset, LumiMask
from autosplit.sim import Drift, Pool, SiteSlots, Truth, truth_from_workload
from autosplit.sim.synthetic import Site, SyntheticWorkload, read_brilcalc_csv

DATA = Path(__file__).parents[1] / "tests" / "data"
GOLDEN_JSON = DATA / "lumimask" / "Cert_294927-306462_13TeV_EOY2017ReReco_Collisions17_JSON.txt"
BRILCALC = DATA / "brilcalc" / "lumi_small.csv"
DBS_JSON = DATA / "dbs" / "dbs_files_lumis.json"
DBS_DATASET = "/SingleMu/CMSSW_6_2_0_pre4-PRE_61_V1_RelVal_mu2012A-v1/RECO"

N_UNITS = 40_000
N_SLOTS = 300
TARGET = 8 * 3600.0
EVENTS_PER_LUMI = 930.0
SECONDS_PER_EVENT = 0.8
OVERHEAD_SECONDS = 300.0
TWO_SITES = (SiteSlots("T2_A", N_SLOTS // 2, 0.9), SiteSlots("T2_B", N_SLOTS - N_SLOTS // 2, 1.1))


# ---------------------------------------------------------------------- unit structure
def golden_lumis(n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """(run, lumi) of the first ``n_units`` lumis of the 2017 golden JSON, in run then lumi order."""
    runs, lumis = [], []
    total = 0
    for run, ranges in sorted(LumiMask.from_json(GOLDEN_JSON).to_dict().items(), key=lambda kv: int(kv[0])):
        numbers = np.concatenate([np.arange(a, b + 1) for a, b in ranges])
        runs.append(np.full(numbers.size, int(run)))
        lumis.append(numbers)
        total += numbers.size
        if total >= n_units:
            break
    if total < n_units:
        raise ValueError(f"the golden JSON holds only {total} lumis")
    return np.concatenate(runs)[:n_units], np.concatenate(lumis)[:n_units]


def lumi_profile(
    runs: np.ndarray, lumis: np.ndarray, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(pile-up, recorded /pb) per lumi: brilcalc's own values where it has them, else its fill's profile."""
    table = read_brilcalc_csv(BRILCALC).sort("run", "lumi")
    pileup_p = table["pileup"].to_numpy()
    recorded_p = table["recorded_pb"].to_numpy()
    known = {
        (r, ls): i
        for i, (r, ls) in enumerate(zip(table["run"].to_list(), table["lumi"].to_list(), strict=True))
    }
    run_ids, first = np.unique(runs, return_index=True)
    last_lumi = np.maximum.reduceat(lumis, first)
    scale = rng.lognormal(0.0, 0.12, run_ids.size)
    which = np.searchsorted(run_ids, runs)
    position = np.minimum((lumis - 1) / last_lumi[which], 1.0 - 1e-9)
    index = (position * pileup_p.size).astype(np.int64)
    pileup = pileup_p[index] * scale[which]
    recorded = recorded_p[index] * scale[which]
    for k, key in enumerate(zip(runs.tolist(), lumis.tolist(), strict=True)):
        hit = known.get(key)
        if hit is not None:
            pileup[k], recorded[k] = pileup_p[hit], recorded_p[hit]
    return pileup, recorded


def dbs_file_shapes() -> tuple[np.ndarray, np.ndarray]:
    """(lumis per file, size in bytes) of the SingleMu RECO files of the DBS listing."""
    files = json.loads(DBS_JSON.read_text())["datasets"][DBS_DATASET]
    n_lumis = np.array([sum(len(v) for v in f["lumis"].values()) for f in files], dtype=np.int64)
    sizes = np.array([f["size"] for f in files], dtype=np.int64)
    return n_lumis, sizes


@lru_cache(maxsize=4)
def base_dataset(n_units: int = N_UNITS, seed: int = 2017) -> Dataset:
    """The suite's dataset (see the module docstring); deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    runs, lumis = golden_lumis(n_units)
    pileup, recorded = lumi_profile(runs, lumis, rng)
    events = rng.poisson(EVENTS_PER_LUMI * recorded / recorded.mean())
    shape_lumis, shape_sizes = dbs_file_shapes()
    file_of = np.empty(n_units, dtype=np.int64)
    file_size = []
    i = 0
    while i < n_units:
        pick = int(rng.integers(shape_lumis.size))
        end = min(i + int(shape_lumis[pick]), n_units)
        other_run = np.flatnonzero(runs[i:end] != runs[i])
        end = i + int(other_run[0]) if other_run.size else end
        file_of[i:end] = len(file_size)
        file_size.append(shape_sizes[pick])
        i = end
    sizes = np.array(file_size, dtype=np.float64)
    file_events = np.bincount(file_of, weights=events)
    share = np.where(file_events[file_of] > 0, events / np.maximum(file_events[file_of], 1), 0.0)
    table = pl.DataFrame(
        {
            "run": runs,
            "lumi": lumis,
            "events": events,
            "file": [f"/store/data/Run2017/SingleMuon/RECO/bench/{f:06d}.root" for f in file_of.tolist()],
            "bytes": np.round(sizes[file_of] * share).astype(np.int64),
            "pileup": np.round(pileup, 2),
        }
    )
    return Dataset.from_units(table, name="golden-2017-bench", meta={"seed": seed})


# ---------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    """One benchmark workload: true cost model, pool, and extras (bimodal runs, drift, poison units)."""

    name: str
    description: str
    cost: SyntheticWorkload
    pool: Pool
    bimodal: tuple[float, float] | None = None  #: (fraction of runs, cost factor of those runs)
    drift: Drift | None = None
    n_poison: int = 0
    n_units: int = N_UNITS
    target_runtime: float = TARGET

    def build(self, seed: int = 0) -> tuple[Dataset, Truth]:
        """The dataset and its true costs (deterministic for ``seed``)."""
        dataset = base_dataset(self.n_units)
        rng = np.random.default_rng([seed, 11])
        truth = truth_from_workload(self.cost, dataset, rng)
        seconds = truth.seconds
        if self.bimodal is not None:
            fraction, factor = self.bimodal
            runs = dataset.units["run"].to_numpy()
            run_ids = np.unique(runs)
            heavy = run_ids[rng.random(run_ids.size) < fraction]
            seconds = np.where(np.isin(runs, heavy), seconds * factor, seconds)
        poison = None
        if self.n_poison:
            poison = np.zeros(dataset.n_units, dtype=bool)
            poison[rng.choice(dataset.n_units, self.n_poison, replace=False)] = True
        return dataset, Truth(seconds, poison=poison, drift=self.drift)

    def with_pool(self, **changes: float | None) -> Workload:
        """A copy whose pool has some parameters changed."""
        from dataclasses import replace

        return replace(self, pool=replace(self.pool, **changes))


def _pool(sites: tuple[SiteSlots, ...] = TWO_SITES, **kwargs: float) -> Pool:
    return Pool(sites=sites, overhead_seconds=OVERHEAD_SECONDS, overhead_sigma=0.5, node_sigma=0.1, **kwargs)


def _cost(**kwargs: float) -> SyntheticWorkload:
    base = {"seconds_per_event": SECONDS_PER_EVENT, "pileup_ref": 35.0, "seconds_per_unit": 5.0}
    return SyntheticWorkload(**{**base, **kwargs})


def suite() -> list[Workload]:
    """The benchmark's workloads (at least six cost shapes, heterogeneous sites, failures)."""
    return [
        Workload(
            "constant",
            "constant cost per event, unit noise 10 %, no stragglers",
            _cost(pileup_power=0.0, unit_sigma=0.1, tail_fraction=0.0),
            _pool(),
        ),
        Workload(
            "pileup",
            "per-event cost ~ pile-up^2, unit log-sd 0.3, 1 % Lomax(2.5) stragglers (x1-x30)",
            _cost(pileup_power=2.0, unit_sigma=0.3, tail_fraction=0.01),
            _pool(),
        ),
        Workload(
            "heavy-tail",
            "pile-up^1.5, heavy-tailed lognormal unit noise (log-sd 0.9)",
            _cost(pileup_power=1.5, unit_sigma=0.9, tail_fraction=0.0),
            _pool(),
        ),
        Workload(
            "bimodal",
            "pile-up^1.5, unit log-sd 0.3; a third of the runs cost 3x (no unit feature shows it)",
            _cost(pileup_power=1.5, unit_sigma=0.3, tail_fraction=0.0),
            _pool(),
            bimodal=(1 / 3, 3.0),
        ),
        Workload(
            "drift",
            "pile-up^1.5, unit log-sd 0.3; cost rises 1.0 -> 1.5x over the first 24 h of the task",
            _cost(pileup_power=1.5, unit_sigma=0.3, tail_fraction=0.0),
            _pool(),
            drift=Drift(0.5, 24 * 3600.0),
        ),
        Workload(
            "sites",
            "pile-up^1.5, unit log-sd 0.3; sites 0.7x/1.0x/1.8x with 50/30/20 % of slots, node log-sd 0.2",
            _cost(pileup_power=1.5, unit_sigma=0.3, tail_fraction=0.0),
            Pool.from_sites(
                (Site("T2_FAST", 0.7, 0.5), Site("T2_MID", 1.0, 0.3), Site("T2_SLOW", 1.8, 0.2)),
                N_SLOTS,
                overhead_seconds=OVERHEAD_SECONDS,
                overhead_sigma=0.5,
                node_sigma=0.2,
            ),
        ),
        Workload(
            "failures",
            "pile-up^1.5, unit log-sd 0.3; slot failure hazard 1/(24 h), 3 poison lumis that crash any job",
            _cost(pileup_power=1.5, unit_sigma=0.3, tail_fraction=0.0),
            _pool(failure_rate=1.0 / (24 * 3600.0)),
            n_poison=3,
        ),
    ]


def by_name(name: str) -> Workload:
    for workload in suite():
        if workload.name == name:
            return workload
    raise KeyError(f"no workload {name!r}; choose from {[w.name for w in suite()]}")
