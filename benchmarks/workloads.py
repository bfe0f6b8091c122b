"""The workload suite of the splitting-quality benchmark: real unit structure, known true costs, two pools.

**Unit structure** (shared by every workload), from the real data in ``tests/data``:

* **runs and lumis**: the 2017 golden JSON (``lumimask/Cert_294927-306462_...``), runs in run order until
  ``n_units`` lumis, real lumi numbers with their gaps;
* **events per lumi** follow the per-lumi luminosity: the real brilcalc table (``brilcalc/lumi_small.csv``,
  fill 5839/5840) gives pile-up and recorded luminosity for its own runs; every other run follows that
  fill's profile stretched over the run's lumi range and scaled by a lognormal factor per run (sd 12 %);
  events are Poisson with a mean of ``EVENTS_PER_LUMI`` (930, the events per lumi of the DBS listing's
  SingleMu RECO files) times the lumi's recorded luminosity over the profile's mean;
* **files**: consecutive lumis of one run, with (lumis per file, file size) pairs drawn from the real DBS
  listing's SingleMu RECO files (``dbs/dbs_files_lumis.json``: 2-60 lumis, median 5; 1.6-4.3 GB); a unit's
  bytes are its file's size apportioned by events; ``pileup`` is a unit feature.

**True cost per unit**: :class:`~autosplit.sim.synthetic.SyntheticWorkload` (per-event seconds rising with
pile-up, a fixed cost per lumi, lognormal unit noise, optional heavy-tailed stragglers), then the
workload's *shapes* (:class:`Shape` subclasses: per-run factors, per-lumi modes, Pareto tails, slow files,
a second dataset, huge lumis, drift), then one scale factor per (workload, profile) so that the expected
work is ``profile.waves`` waves of target-length jobs on the pool (the factor comes from a fixed
calibration draw, never from the seed being run, so seeds still differ in their total).

**Profiles** (:data:`PROFILES`): ``today`` is the earlier suite's pool (300 slots, lognormal per-job
overhead with a 5 min mean, 60 s between stages); ``grid`` is the outside evaluation's setting (30,000
lumis, 500 slots, 8 h target, 600 s per-job overhead, 300 s between stages, about 5 waves of work).
Node failures (a Poisson hazard per running second, MTBF 48 h) hit every workload in the ``failures=True``
runs; every workload also runs failure-free (the runs the lower-bound target is judged on).

**Train/test split**: the seven workloads of the earlier suite are the TRAINING workloads (autosplit's
defaults may be tuned on them); the others are TEST workloads nobody tunes on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
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

TARGET = 8 * 3600.0
EVENTS_PER_LUMI = 930.0
SECONDS_PER_EVENT = 0.8
FAILURE_MTBF = 48 * 3600.0
CALIBRATION_SEED = 987_654
LFN_PREFIX = "/store/data/Run2017/SingleMuon/RECO/bench/"
LFN_PREFIX_B = "/store/data/Run2017/JetHT/RECO/bench/"


# ---------------------------------------------------------------------- profiles
@dataclass(frozen=True)
class Profile:
    """A pool and a dataset size: slots, per-job overhead, stage latency, and how much work (in waves)."""

    name: str
    description: str
    n_units: int
    n_slots: int
    overhead_seconds: float
    stage_delay_seconds: float
    waves: float  #: expected total work / (slots x target) at the pool's speed
    target_runtime: float = TARGET
    failure_mtbf: float = FAILURE_MTBF
    overhead_sigma: float = 0.5
    grace_seconds: float = 60.0

    def scaled(self, n_units: int, n_slots: int) -> Profile:
        """The same profile (name, overhead, latency, waves) on a smaller dataset and pool (smoke tests)."""
        return replace(self, n_units=int(n_units), n_slots=int(n_slots))


PROFILES: dict[str, Profile] = {
    "today": Profile(
        "today",
        "the earlier suite's pool: 300 slots, per-job overhead lognormal with a 5 min mean, 60 s between "
        "stages; 30,000 lumis, work of 3.5 waves of 8 h jobs",
        n_units=30_000,
        n_slots=300,
        overhead_seconds=300.0,
        stage_delay_seconds=60.0,
        waves=3.5,
    ),
    "grid": Profile(
        "grid",
        "the outside evaluation's pool: 500 slots, per-job overhead lognormal with a 600 s mean, 300 s "
        "between stages; 30,000 lumis, work of 5 waves of 8 h jobs",
        n_units=30_000,
        n_slots=500,
        overhead_seconds=600.0,
        stage_delay_seconds=300.0,
        waves=5.0,
    ),
}


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
def base_table(n_units: int, seed: int = 2017) -> pl.DataFrame:
    """The suite's long unit table (run, lumi, events, file, bytes, pileup), deterministic for ``seed``."""
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
    return pl.DataFrame(
        {
            "run": runs,
            "lumi": lumis,
            "events": events,
            "file": [f"{LFN_PREFIX}{f:06d}.root" for f in file_of.tolist()],
            "bytes": np.round(sizes[file_of] * share).astype(np.int64),
            "pileup": np.round(pileup, 2),
        }
    )


def base_dataset(n_units: int = 30_000, seed: int = 2017) -> Dataset:
    """The suite's dataset (see the module docstring); deterministic for ``seed``."""
    return Dataset.from_units(base_table(n_units, seed), name="golden-2017-bench", meta={"seed": seed})


# ---------------------------------------------------------------------- cost shapes
@dataclass(frozen=True)
class Shape:
    """A change to a workload: of its dataset (before anything runs) and/or of its true unit costs."""

    def table(self, table: pl.DataFrame, profile: Profile, pool: Pool) -> pl.DataFrame:
        """The long unit table with this shape's changes (default: unchanged)."""
        return table

    def seconds(self, dataset: Dataset, seconds: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """True reference seconds per unit with this shape's change (default: unchanged)."""
        return seconds


def _run_index(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    runs = dataset.units["run"].to_numpy()
    run_ids, which = np.unique(runs, return_inverse=True)
    return run_ids, which


@dataclass(frozen=True)
class RunModes(Shape):
    """A random ``fraction`` of the runs costs ``factor`` times more (nothing in the unit features shows it)."""

    fraction: float
    factor: float

    def seconds(self, dataset, seconds, rng):
        run_ids, which = _run_index(dataset)
        heavy = rng.random(run_ids.size) < self.fraction
        return np.where(heavy[which], seconds * self.factor, seconds)


@dataclass(frozen=True)
class RunLognormal(Shape):
    """Every run has its own cost factor, lognormal with log-sd ``sigma`` (drawn per seed, mean 1)."""

    sigma: float

    def seconds(self, dataset, seconds, rng):
        run_ids, which = _run_index(dataset)
        factor = rng.lognormal(-0.5 * self.sigma**2, self.sigma, run_ids.size)
        return seconds * factor[which]


@dataclass(frozen=True)
class LumiModes(Shape):
    """A random ``fraction`` of the lumis costs ``factor`` times more (per lumi, invisible)."""

    fraction: float
    factor: float

    def seconds(self, dataset, seconds, rng):
        slow = rng.random(seconds.size) < self.fraction
        return np.where(slow, seconds * self.factor, seconds)


@dataclass(frozen=True)
class ParetoUnits(Shape):
    """Every lumi's cost times a Pareto (type I, tail index ``shape``) factor scaled to mean 1."""

    shape: float

    def seconds(self, dataset, seconds, rng):
        draw = 1.0 + rng.pareto(self.shape, seconds.size)  # Pareto I with x_m = 1
        return seconds * draw * (self.shape - 1.0) / self.shape


@dataclass(frozen=True)
class SlowFiles(Shape):
    """Blocks of consecutive files (``fraction`` of the files, in blocks of ``block`` files) are read
    ``factor`` times slower: a unit's read time (``read_share`` of its cost) is multiplied. Only the file
    identity shows it (the same blocks in every seed: one storage element)."""

    fraction: float = 0.2
    factor: float = 3.0
    read_share: float = 0.5
    block: int = 20

    def seconds(self, dataset, seconds, rng):
        return seconds * np.where(self.slow_units(dataset), 1.0 + self.read_share * (self.factor - 1.0), 1.0)

    def slow_units(self, dataset: Dataset) -> np.ndarray:
        """Bool per unit: its file is on the slow storage."""
        file_of = dataset.units["file_id"].to_numpy()
        blocks = np.arange(int(file_of.max()) + 1) // self.block
        pick = np.random.default_rng(4242).random(int(blocks.max()) + 1) < self.fraction
        return pick[blocks][file_of]


@dataclass(frozen=True)
class SecondDataset(Shape):
    """The later ``fraction`` of the runs is a second dataset (other LFNs) whose events are
    ``bytes_factor`` times larger on disk and cost ``cost_factor`` times more per event."""

    fraction: float = 0.5
    cost_factor: float = 3.0
    bytes_factor: float = 2.5

    def _second(self, runs: np.ndarray) -> np.ndarray:
        run_ids = np.unique(runs)
        first_b = run_ids[int(math.floor(run_ids.size * (1.0 - self.fraction)))]
        return runs >= first_b

    def table(self, table, profile, pool):
        second = pl.Series(self._second(table["run"].to_numpy()))
        return table.with_columns(
            pl.when(second)
            .then(pl.col("file").str.replace(LFN_PREFIX, LFN_PREFIX_B, literal=True))
            .otherwise(pl.col("file"))
            .alias("file"),
            pl.when(second)
            .then((pl.col("bytes") * self.bytes_factor).round().cast(pl.Int64))
            .otherwise(pl.col("bytes"))
            .alias("bytes"),
        )

    def seconds(self, dataset, seconds, rng):
        second = self._second(dataset.units["run"].to_numpy())
        return np.where(second, seconds * self.cost_factor, seconds)


@dataclass(frozen=True)
class HugeLumis(Shape):
    """``count`` lumis, spread over the dataset, hold so many events that each costs about
    ``x_target`` times the target runtime on an average slot (visible in their event counts)."""

    count: int = 5
    x_target: float = 1.5

    def table(self, table, profile, pool):
        n = table.height
        rows = np.linspace(0, n - 1, self.count + 2)[1:-1].astype(np.int64)
        mean_unit = profile.waves * profile.target_runtime * pool.speed_sum / n  # reference seconds
        factor = self.x_target * profile.target_runtime / pool.mean_time_factor / mean_unit
        events = table["events"].to_numpy().astype(np.float64)
        bytes_ = table["bytes"].to_numpy().astype(np.float64)
        mean_events = float(events.mean())
        new_events = events.copy()
        new_events[rows] = np.round(factor * mean_events)
        new_bytes = bytes_.copy()
        per_event = bytes_.sum() / max(events.sum(), 1.0)
        new_bytes[rows] = np.round(new_events[rows] * per_event)
        return table.with_columns(
            pl.Series("events", new_events.astype(np.int64)), pl.Series("bytes", new_bytes.astype(np.int64))
        )


# ---------------------------------------------------------------------- pools
def two_sites(n_slots: int) -> tuple[SiteSlots, ...]:
    return (SiteSlots("T2_A", n_slots // 2, 0.9), SiteSlots("T2_B", n_slots - n_slots // 2, 1.1))


THREE_SITES = (Site("T2_FAST", 0.7, 0.5), Site("T2_MID", 1.0, 0.3), Site("T2_SLOW", 1.8, 0.2))


# ---------------------------------------------------------------------- workloads
@dataclass(frozen=True)
class Workload:
    """One benchmark workload: its split, true cost model, shapes, pool shape and failure settings."""

    name: str
    split: str  #: "train" or "test"
    description: str
    cost: SyntheticWorkload
    shapes: tuple[Shape, ...] = ()
    drift: Drift | None = None
    sites: str = "two"  #: "two" (0.9x / 1.1x, node log-sd 0.1) or "three" (0.7x/1.0x/1.8x, node log-sd 0.2)
    n_poison: int = 0
    failure_mtbf: float | None = None  #: overrides the profile's MTBF in the failure runs
    heavy_tailed: bool = False  #: counted among the heavy-tailed workloads for the probe target
    profile: Profile = field(default=PROFILES["today"])
    n_units: int | None = None  #: overrides the profile's dataset size (tests)

    def __post_init__(self) -> None:
        if self.split not in ("train", "test"):
            raise ValueError(f"workload {self.name!r}: split must be 'train' or 'test'")

    # ------------------------------------------------------------------ configuration
    def on(self, profile: Profile | str) -> Workload:
        """This workload on another profile."""
        return replace(self, profile=PROFILES[profile] if isinstance(profile, str) else profile)

    @property
    def target_runtime(self) -> float:
        return self.profile.target_runtime

    @property
    def units(self) -> int:
        return self.n_units or self.profile.n_units

    def pool(self, failures: bool = True) -> Pool:
        """The pool of this workload on its profile, with or without node failures."""
        p = self.profile
        mtbf = self.failure_mtbf or p.failure_mtbf
        common = {
            "overhead_seconds": p.overhead_seconds,
            "overhead_sigma": p.overhead_sigma,
            "stage_delay_seconds": p.stage_delay_seconds,
            "grace_seconds": p.grace_seconds,
            "failure_rate": 1.0 / mtbf if failures else 0.0,
        }
        if self.sites == "three":
            return Pool.from_sites(THREE_SITES, p.n_slots, node_sigma=0.2, **common)
        return Pool(sites=two_sites(p.n_slots), node_sigma=0.1, **common)

    # ------------------------------------------------------------------ building
    def dataset(self) -> Dataset:
        """The dataset every policy sees (deterministic; the same for every seed)."""
        return _dataset(self.name, self.profile, self.units, self.shapes, self.sites)

    def _raw_seconds(self, dataset: Dataset, seed_key: list[int]) -> np.ndarray:
        rng = np.random.default_rng(seed_key)
        seconds = truth_from_workload(self.cost, dataset, rng).seconds
        for shape in self.shapes:
            seconds = shape.seconds(dataset, seconds, rng)
        return seconds

    @property
    def cache_key(self) -> tuple:
        """What a workload's derived arrays depend on (its dataset and cost model), for caches."""
        return (self.name, self.profile, self.units, self.shapes, self.cost, self.sites)

    def scale(self) -> float:
        """The factor that makes the expected work ``profile.waves`` waves (from a fixed calibration draw)."""
        return _scale(self)

    def build(self, seed: int = 0, failures: bool = True) -> tuple[Dataset, Truth, Pool]:
        """The dataset, its true costs and the pool (deterministic for ``seed``)."""
        dataset = self.dataset()
        seconds = self._raw_seconds(dataset, [seed, 11]) * self.scale()
        poison = None
        if self.n_poison:
            rng = np.random.default_rng([seed, 13])
            poison = np.zeros(dataset.n_units, dtype=bool)
            poison[rng.choice(dataset.n_units, self.n_poison, replace=False)] = True
        return dataset, Truth(seconds, poison=poison, drift=self.drift), self.pool(failures)


@lru_cache(maxsize=64)
def _dataset(name: str, profile: Profile, n_units: int, shapes: tuple[Shape, ...], sites: str) -> Dataset:
    workload = Workload(name, "train", "", SyntheticWorkload(), shapes, sites=sites, profile=profile)
    table = base_table(n_units)
    pool = workload.pool(False)
    for shape in shapes:
        table = shape.table(table, profile, pool)
    return Dataset.from_units(table, name=f"bench-{name}", meta={"workload": name, "profile": profile.name})


_SCALES: dict[tuple, float] = {}


def _scale(workload: Workload) -> float:
    key = workload.cache_key
    if key not in _SCALES:
        dataset = workload.dataset()
        raw = workload._raw_seconds(dataset, [CALIBRATION_SEED, 11])
        pool = workload.pool(False)
        wanted = workload.profile.waves * workload.target_runtime * pool.speed_sum
        _SCALES[key] = wanted / float(raw.sum())
    return _SCALES[key]


def _cost(**kwargs: float) -> SyntheticWorkload:
    base = {"seconds_per_event": SECONDS_PER_EVENT, "pileup_ref": 35.0, "seconds_per_unit": 5.0}
    return SyntheticWorkload(**{**base, **kwargs})


_BODY = {"pileup_power": 1.5, "unit_sigma": 0.3, "tail_fraction": 0.0}


def suite(profile: str | Profile = "today") -> list[Workload]:
    """Every workload of the benchmark on ``profile``: seven training workloads, then the test workloads."""
    p = PROFILES[profile] if isinstance(profile, str) else profile
    train = [
        Workload(
            "constant",
            "train",
            "constant cost per event, unit noise 10 %, no stragglers",
            _cost(pileup_power=0.0, unit_sigma=0.1, tail_fraction=0.0),
        ),
        Workload(
            "pileup",
            "train",
            "per-event cost ~ pile-up^2, unit log-sd 0.3, 1 % Lomax(2.5) stragglers (x1-x30)",
            _cost(pileup_power=2.0, unit_sigma=0.3, tail_fraction=0.01),
            heavy_tailed=True,
        ),
        Workload(
            "heavy-tail",
            "train",
            "pile-up^1.5, heavy-tailed lognormal unit noise (log-sd 0.9)",
            _cost(pileup_power=1.5, unit_sigma=0.9, tail_fraction=0.0),
            heavy_tailed=True,
        ),
        Workload(
            "bimodal",
            "train",
            "pile-up^1.5, unit log-sd 0.3; a third of the runs cost 3x (no unit feature shows it)",
            _cost(**_BODY),
            shapes=(RunModes(1 / 3, 3.0),),
        ),
        Workload(
            "drift",
            "train",
            "pile-up^1.5, unit log-sd 0.3; cost rises 1.0 -> 1.5x over the first 24 h of the task "
            "(a job's factor is fixed when its payload starts)",
            _cost(**_BODY),
            drift=Drift(0.5, 24 * 3600.0),
        ),
        Workload(
            "sites",
            "train",
            "pile-up^1.5, unit log-sd 0.3; sites 0.7x/1.0x/1.8x with 50/30/20 % of slots, node log-sd 0.2",
            _cost(**_BODY),
            sites="three",
        ),
        Workload(
            "failures",
            "train",
            "pile-up^1.5, unit log-sd 0.3; 3 poison lumis that crash any job (in every run), node MTBF 24 h "
            "in the failure runs",
            _cost(**_BODY),
            n_poison=3,
            failure_mtbf=24 * 3600.0,
        ),
    ]
    test = [
        Workload(
            "pareto",
            "test",
            "pile-up^1.5; every lumi's cost times a Pareto factor with tail index 3 (mean 1, "
            "infinite 3rd moment)",
            _cost(pileup_power=1.5, unit_sigma=0.0, tail_fraction=0.0),
            shapes=(ParetoUnits(3.0),),
            heavy_tailed=True,
        ),
        Workload(
            "run-cost",
            "test",
            "pile-up^1.5, unit log-sd 0.3; each run's cost factor lognormal with log-sd 0.7, drawn per seed",
            _cost(**_BODY),
            shapes=(RunLognormal(0.7),),
            heavy_tailed=True,
        ),
        Workload(
            "slow-storage",
            "test",
            "pile-up^1.5, unit log-sd 0.3; half of a unit's cost is reading, and 20 % of the files "
            "(blocks of 20 consecutive files) are read 3x slower (2x the cost): only the file identity shows it",
            _cost(**_BODY),
            shapes=(SlowFiles(0.2, 3.0, 0.5, 20),),
        ),
        Workload(
            "mixture",
            "test",
            "pile-up^1.5, unit log-sd 0.3; the later half of the runs is a second dataset (other LFNs) "
            "with 2.5x larger events costing 3x more per event",
            _cost(**_BODY),
            shapes=(SecondDataset(0.5, 3.0, 2.5),),
        ),
        Workload(
            "huge-lumis",
            "test",
            "pile-up^1.5, unit log-sd 0.3; five huge lumis (their event counts show it) of about 1.5x the "
            "target each on an average slot",
            _cost(**_BODY),
            shapes=(HugeLumis(5, 1.5),),
        ),
        Workload(
            "slow-lumis",
            "test",
            "pile-up^1.5, unit log-sd 0.3; 10 % of the lumis 8x slower (bimodal per lumi, invisible)",
            _cost(**_BODY),
            shapes=(LumiModes(0.10, 8.0),),
            heavy_tailed=True,
        ),
    ]
    return [w.on(p) for w in train + test]


def names(split: str = "all") -> list[str]:
    """Workload names of a split (``train``, ``test`` or ``all``), in table order."""
    return [w.name for w in suite() if split == "all" or w.split == split]


def by_name(name: str, profile: str | Profile = "today") -> Workload:
    for workload in suite(profile):
        if workload.name == name:
            return workload
    raise KeyError(f"no workload {name!r}; choose from {names()}")
