"""Synthetic workloads with known true per-unit costs: for calibration tests, benchmarks and the pool simulator.

Three pieces:

* :func:`synthetic_dataset` builds a :class:`~autosplit.datasets.Dataset` whose units carry a ``pileup``
  column and whose events per lumi follow the recorded luminosity, from a real per-lumi profile
  (:func:`read_brilcalc_csv` reads brilcalc's CSV output) or from a built-in synthetic profile;
* :class:`SyntheticWorkload` is the *true* cost model: per-event seconds rising with pileup, a fixed cost
  per lumi, lognormal unit noise with a heavy (Lomax/Pareto) tail of stragglers, a lognormal node jitter
  per job, sites with different speeds and shares, a per-job overhead, memory and output size;
* :meth:`SyntheticWorkload.run_jobs` executes jobs (with optional soft deadline and hard limit, with the
  worker's semantics: a unit in progress at the soft deadline completes) and
  :meth:`SyntheticWorkload.reports` turns them into :class:`~autosplit.jobreport.JobReport` objects.

:func:`~autosplit.sim.calibration.simulate_probing` runs the probe stage the way the pipeline does on such a
workload (stratified probes, fit, stop when the total is known well enough), for tests and benchmarks.

All times are seconds on one job slot; a site's ``time_factor`` multiplies them (1.3 = 30 % slower than
the reference node). Everything is vectorized over units; only report objects are built per job.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from autosplit.datasets import Dataset
from autosplit.jobreport import JobReport, OutputFile


# ---------------------------------------------------------------------- pileup profiles and datasets
def read_brilcalc_csv(path: str | os.PathLike[str]) -> pl.DataFrame:
    """Per-lumi luminosity from ``brilcalc lumi --byls`` CSV output.

    Returns ``run``, ``fill``, ``lumi`` (Int64), ``pileup`` (average pile-up) and ``recorded_pb``
    (recorded integrated luminosity of the lumi section, /pb) as Float64. Comment lines (``#``) are skipped.
    """
    table = pl.read_csv(
        path,
        comment_prefix="#",
        has_header=False,
        new_columns=[
            "runfill",
            "ls",
            "time",
            "beamstatus",
            "energy",
            "delivered",
            "recorded",
            "avgpu",
            "source",
        ],
        schema_overrides={"runfill": pl.String, "ls": pl.String},
    )
    run_fill = table["runfill"].str.split_exact(":", 1)
    lumi = table["ls"].str.split_exact(":", 1)
    return pl.DataFrame(
        {
            "run": run_fill.struct.field("field_0").cast(pl.Int64),
            "fill": run_fill.struct.field("field_1").cast(pl.Int64),
            "lumi": lumi.struct.field("field_0").cast(pl.Int64),
            "pileup": table["avgpu"].cast(pl.Float64),
            "recorded_pb": table["recorded"].cast(pl.Float64),
        }
    )


def default_profile(n_runs: int = 6, lumis_per_run: int = 300, seed: int = 0) -> pl.DataFrame:
    """A synthetic per-lumi profile (same columns as :func:`read_brilcalc_csv`): pile-up decaying within
    each run from about 50 to 25 as the beams burn off, recorded luminosity proportional to pile-up."""
    rng = np.random.default_rng(seed)
    runs, lumis, pileup = [], [], []
    for r in range(n_runs):
        start = rng.uniform(42, 55)
        t = np.arange(lumis_per_run) / lumis_per_run
        pileup.append(start * np.exp(-0.7 * t) * rng.lognormal(0, 0.02, lumis_per_run))
        runs.append(np.full(lumis_per_run, 300000 + 7 * r))
        lumis.append(np.arange(1, lumis_per_run + 1))
    pu = np.concatenate(pileup)
    return pl.DataFrame(
        {
            "run": np.concatenate(runs),
            "fill": np.concatenate(runs) // 7,
            "lumi": np.concatenate(lumis),
            "pileup": pu,
            "recorded_pb": pu * 0.0037,
        }
    )


def synthetic_dataset(
    n_units: int = 20_000,
    *,
    profile: pl.DataFrame | None = None,
    seed: int = 0,
    events_per_pb: float = 3000.0,
    lumis_per_file: tuple[int, int] = (20, 80),
    bytes_per_event: float = 50e3,
    name: str = "synthetic",
) -> Dataset:
    """A dataset of ``n_units`` lumis with realistic events per lumi and a ``pileup`` column.

    The per-lumi ``profile`` (run, lumi, pileup, recorded_pb; e.g. :func:`read_brilcalc_csv`) is repeated
    as many times as needed under new run numbers, each repetition of a run scaled by a lognormal factor
    (sd 12 %) on both pile-up and luminosity. Events per lumi are Poisson with mean
    ``events_per_pb * recorded_pb``; consecutive lumis of a run are grouped into files of
    ``lumis_per_file`` (uniform range) lumis; unit bytes are events times a per-file bytes per event.
    """
    rng = np.random.default_rng(seed)
    profile = default_profile(seed=seed) if profile is None else profile
    base_runs = np.unique(profile["run"].to_numpy())
    reps = max(math.ceil(n_units / profile.height), 1)
    run_pos = np.searchsorted(base_runs, profile["run"].to_numpy())
    pileup = profile["pileup"].to_numpy()
    recorded = profile["recorded_pb"].to_numpy()
    lumi = profile["lumi"].to_numpy()
    scale = rng.lognormal(0.0, 0.12, size=(reps, base_runs.size))
    runs_all = (100000 + np.arange(reps)[:, None] * base_runs.size + run_pos[None, :]).ravel()[:n_units]
    scale_all = scale[:, run_pos].ravel()[:n_units]
    pileup_all = np.tile(pileup, reps)[:n_units] * scale_all
    recorded_all = np.tile(recorded, reps)[:n_units] * scale_all
    lumi_all = np.tile(lumi, reps)[:n_units]
    events = rng.poisson(np.maximum(events_per_pb * recorded_all, 0.0))
    # Files: consecutive lumis of one run, lumis_per_file at a time.
    files = np.empty(n_units, dtype=np.int64)
    next_file, i = 0, 0
    while i < n_units:
        size = int(rng.integers(lumis_per_file[0], lumis_per_file[1] + 1))
        end = min(i + size, n_units)
        same_run = np.flatnonzero(runs_all[i:end] != runs_all[i])
        end = i + int(same_run[0]) if same_run.size else end
        files[i:end] = next_file
        next_file += 1
        i = end
    bpe = bytes_per_event * rng.lognormal(0.0, 0.15, next_file)
    table = pl.DataFrame(
        {
            "run": runs_all,
            "lumi": lumi_all,
            "events": events,
            "file": pl.select(
                pl.concat_str(
                    pl.lit(f"/store/synthetic/{name}/"),
                    pl.lit(pl.Series(files)).cast(pl.String).str.zfill(6),
                    pl.lit(".root"),
                )
            ).to_series(),
            "bytes": np.round(events * bpe[files]).astype(np.int64),
            "pileup": np.round(pileup_all, 3),
        }
    )
    return Dataset.from_units(table, name=name, meta={"synthetic": True, "seed": seed})


# ---------------------------------------------------------------------- the true cost model
@dataclass(frozen=True)
class Site:
    """A group of slots: ``time_factor`` multiplies every job's seconds; ``share`` of jobs land here."""

    name: str
    time_factor: float = 1.0
    share: float = 1.0


@dataclass
class SyntheticJobs:
    """Outcome of :meth:`SyntheticWorkload.run_jobs`. Per-unit arrays follow the units table's rows;
    per-job arrays are indexed by job number (0 .. n_jobs-1)."""

    job_index: np.ndarray  #: job of each unit (-1: not run)
    unit_seconds: np.ndarray  #: true seconds each unit takes in its job (site and node included)
    finished: np.ndarray  #: unit completed before the job stopped
    site: np.ndarray  #: site name of each job
    time_factor: np.ndarray  #: site factor x node jitter of each job
    overhead: np.ndarray  #: set-up seconds of each job
    processing: np.ndarray  #: seconds spent in the unit loop (finished units, or up to the hard limit)
    wall: np.ndarray  #: overhead + processing
    soft_stopped: np.ndarray
    hard_killed: np.ndarray
    events: np.ndarray  #: events of the finished units of each job
    #: per unit: seconds spent on it when its job was killed at the hard limit in the middle of it (NaN for
    #: every other unit); a killed job's report names that unit ``in_progress``
    cut_seconds: np.ndarray | None = None

    @property
    def n_jobs(self) -> int:
        return int(self.wall.size)

    @property
    def runtime(self) -> np.ndarray:
        """Wall seconds of each job (same as ``wall``)."""
        return self.wall


@dataclass(frozen=True)
class SyntheticWorkload:
    """The true cost of every unit, and how jobs, sites and nodes vary. See the module docstring.

    A unit with ``events`` events at pile-up ``pileup`` costs, on the reference node and before noise,
    ``seconds_per_unit + events * seconds_per_event * (pileup / pileup_ref) ** pileup_power
    + bytes * seconds_per_byte`` seconds. Its noise multiplies that by a lognormal factor (log-sd
    ``unit_sigma``, mean 1) and, with probability ``tail_fraction``, by ``1 + L`` where ``L`` is Lomax
    (shape ``tail_shape``, scale ``tail_scale``): heavy-tailed stragglers, and, with probability
    ``slow_fraction``, by ``slow_factor`` (a bimodal workload: some lumis much slower, no feature shows
    which). A job's units are all
    multiplied by its site's ``time_factor`` and a lognormal node jitter (log-sd ``node_sigma``, mean 1).
    Each job pays ``overhead_seconds`` (lognormal, log-sd ``overhead_sigma``) before its first unit.
    Peak RSS is ``rss_base_bytes + rss_bytes_per_event * events`` (lognormal noise ``rss_sigma``);
    output bytes are ``output_bytes_per_event * events`` (noise ``output_sigma``) plus 200 kB per file.
    """

    seconds_per_event: float = 0.05
    pileup_ref: float = 35.0
    pileup_power: float = 1.5
    seconds_per_unit: float = 2.0
    seconds_per_byte: float = 0.0
    unit_sigma: float = 0.3
    tail_fraction: float = 0.01
    tail_shape: float = 2.5
    tail_scale: float = 3.0
    slow_fraction: float = 0.0
    slow_factor: float = 1.0
    node_sigma: float = 0.1
    sites: tuple[Site, ...] = (Site("T2_FAST", 0.8, 1.0), Site("T2_SLOW", 1.3, 1.0))
    overhead_seconds: float = 300.0
    overhead_sigma: float = 0.3
    rss_base_bytes: float = 1.5e9
    rss_bytes_per_event: float = 2.0e4
    rss_sigma: float = 0.05
    output_bytes_per_event: float = 3.0e4
    output_sigma: float = 0.1

    # ------------------------------------------------------------------ expectations
    def base_seconds(self, units: pl.DataFrame) -> np.ndarray:
        """Noise-free seconds of each unit on the reference node (time factor 1)."""
        events = units["events"].cast(pl.Float64).to_numpy()
        per_event = np.full(events.size, self.seconds_per_event)
        if "pileup" in units.columns and self.pileup_power:
            pileup = units["pileup"].cast(pl.Float64).fill_null(self.pileup_ref).to_numpy()
            per_event = per_event * (np.maximum(pileup, 0.0) / self.pileup_ref) ** self.pileup_power
        seconds = self.seconds_per_unit + events * per_event
        if self.seconds_per_byte and "bytes" in units.columns:
            seconds = seconds + units["bytes"].cast(pl.Float64).to_numpy() * self.seconds_per_byte
        return seconds

    @property
    def noise_mean(self) -> float:
        """Mean of the unit noise factor (1 plus the stragglers' mean excess, times the slow lumis' share)."""
        tail = self.tail_scale / (self.tail_shape - 1.0) if self.tail_shape > 1 else math.inf
        slow = 1.0 + self.slow_fraction * (self.slow_factor - 1.0)
        return (1.0 + self.tail_fraction * tail) * slow

    @property
    def mean_time_factor(self) -> float:
        """Share-weighted mean site time factor (node jitter has mean 1)."""
        shares = np.array([s.share for s in self.sites], dtype=np.float64)
        factors = np.array([s.time_factor for s in self.sites], dtype=np.float64)
        return float((shares * factors).sum() / shares.sum())

    def expected_unit_seconds(self, units: pl.DataFrame, site: str | None = None) -> np.ndarray:
        """Expected true seconds of each unit on a job at ``site`` (or a random site by share)."""
        factor = self.mean_time_factor if site is None else self._site(site).time_factor
        return self.base_seconds(units) * self.noise_mean * factor

    def _site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise KeyError(f"no site {name!r} in this workload")

    # ------------------------------------------------------------------ sampling
    def unit_noise(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` draws of the unit noise factor (lognormal body with mean 1, heavy-tailed stragglers)."""
        noise = rng.lognormal(-0.5 * self.unit_sigma**2, self.unit_sigma, n)
        if self.tail_fraction > 0:
            straggler = rng.random(n) < self.tail_fraction
            noise[straggler] *= 1.0 + self.tail_scale * rng.pareto(self.tail_shape, int(straggler.sum()))
        if self.slow_fraction > 0:
            noise[rng.random(n) < self.slow_fraction] *= self.slow_factor
        return noise

    def run_jobs(
        self,
        units: pl.DataFrame,
        job_index: np.ndarray,
        rng: np.random.Generator,
        *,
        sites: Sequence[str] | np.ndarray | None = None,
        deadline: float | np.ndarray | None = None,
        hard_limit: float | np.ndarray | None = None,
    ) -> SyntheticJobs:
        """Run jobs: ``job_index[i]`` is the job of unit ``i`` (-1: not run); units run in row order.

        ``sites`` fixes each job's site (default: drawn by share). ``deadline`` (seconds from job start,
        per job or scalar) is the soft deadline: a unit that *starts* before it completes, later units are
        left unfinished. ``hard_limit`` kills the job: a unit not finished by then is unfinished, and the
        one it was processing is recorded in ``cut_seconds`` with the seconds spent on it.
        """
        job_index = np.asarray(job_index, dtype=np.int64)
        if job_index.size != units.height:
            raise ValueError("job_index must have one entry per unit")
        n_jobs = int(job_index.max()) + 1 if job_index.size and job_index.max() >= 0 else 0
        names = np.array([s.name for s in self.sites])
        if sites is None:
            shares = np.array([s.share for s in self.sites], dtype=np.float64)
            site_idx = rng.choice(len(self.sites), size=n_jobs, p=shares / shares.sum())
        else:
            lookup = {s.name: k for k, s in enumerate(self.sites)}
            site_idx = np.array([lookup[s] for s in sites], dtype=np.int64)
        site_factor = np.array([s.time_factor for s in self.sites])[site_idx]
        node = rng.lognormal(-0.5 * self.node_sigma**2, self.node_sigma, n_jobs)
        factor = site_factor * node
        overhead = self.overhead_seconds * rng.lognormal(
            -0.5 * self.overhead_sigma**2, self.overhead_sigma, n_jobs
        )

        run = job_index >= 0
        seconds = np.zeros(units.height)
        seconds[run] = self.base_seconds(units.filter(pl.Series(run))) * self.unit_noise(int(run.sum()), rng)
        seconds[run] *= factor[job_index[run]]

        # Start and end of each unit within its job (units in row order).
        order = np.flatnonzero(run)
        order = order[np.argsort(job_index[order], kind="stable")]
        jobs_sorted = job_index[order]
        ends = np.cumsum(seconds[order])
        first = np.searchsorted(jobs_sorted, np.arange(n_jobs))
        before = np.where(first > 0, ends[np.maximum(first - 1, 0)], 0.0)
        before[first >= order.size] = 0.0
        end_in_job = ends - before[jobs_sorted] + overhead[jobs_sorted]
        start_in_job = end_in_job - seconds[order]
        soft = (
            np.full(n_jobs, np.inf)
            if deadline is None
            else np.broadcast_to(deadline, (n_jobs,)).astype(float)
        )
        hard = (
            np.full(n_jobs, np.inf)
            if hard_limit is None
            else np.broadcast_to(hard_limit, (n_jobs,)).astype(float)
        )
        started = start_in_job < soft[jobs_sorted]
        done_sorted = started & (end_in_job <= hard[jobs_sorted])
        finished = np.zeros(units.height, dtype=bool)
        finished[order] = done_sorted
        killed = np.bincount(jobs_sorted, weights=(started & ~done_sorted), minlength=n_jobs) > 0
        stopped = np.bincount(jobs_sorted, weights=~started, minlength=n_jobs) > 0
        last_end = np.zeros(n_jobs)
        np.maximum.at(last_end, jobs_sorted[done_sorted], end_in_job[done_sorted])
        last_end = np.where(last_end > 0, last_end, overhead)
        wall = np.where(killed, hard, last_end)
        cut = started & ~done_sorted  # started before the deadline, not finished by the hard limit
        cut_seconds = np.full(units.height, np.nan)
        cut_seconds[order[cut]] = hard[jobs_sorted[cut]] - start_in_job[cut]
        events = np.bincount(
            job_index[finished], weights=units["events"].to_numpy()[finished], minlength=n_jobs
        )
        return SyntheticJobs(
            job_index=job_index,
            unit_seconds=seconds,
            finished=finished,
            site=names[site_idx],
            time_factor=factor,
            overhead=overhead,
            processing=wall - overhead,
            wall=wall,
            soft_stopped=stopped & ~killed,
            hard_killed=killed,
            events=events.astype(np.int64),
            cut_seconds=cut_seconds,
        )

    def reports(
        self,
        units: pl.DataFrame,
        jobs: SyntheticJobs,
        rng: np.random.Generator,
        *,
        stage: str = "processing",
        per_unit: bool = True,
        features: Sequence[str] = ("pileup", "bytes"),
        job_prefix: str | None = None,
        unit_details: bool = True,
    ) -> list[JobReport]:
        """One :class:`JobReport` per job, as the worker would write it.

        ``per_unit=False`` drops per-unit seconds (job-level timing only). ``unit_details=False`` also drops
        per-unit events and ``features``, leaving run and lumi plus the job's ``events_read``: what a
        CMSSW FJR gives. A job killed at its hard limit in the middle of a unit names it ``in_progress``
        with the seconds spent on it (as the wrapper does from the worker's journal), whatever the timing
        detail.
        """
        prefix = job_prefix or stage
        per_unit = per_unit and unit_details
        fields = ("run", "lumi", "events", *features) if unit_details else ("run", "lumi")
        keep = [c for c in fields if c in units.columns]
        # Only the units that ran become dicts (a probe round runs a small sample of a large table).
        ran = np.flatnonzero(jobs.job_index >= 0)
        rows = dict(zip(ran.tolist(), units.select(keep)[ran].to_dicts(), strict=True))
        seconds = jobs.unit_seconds
        order = np.argsort(jobs.job_index, kind="stable")
        bounds = np.searchsorted(jobs.job_index[order], np.arange(jobs.n_jobs + 1))
        rss = (self.rss_base_bytes + self.rss_bytes_per_event * jobs.events) * rng.lognormal(
            0.0, self.rss_sigma, jobs.n_jobs
        )
        out_bytes = (
            self.output_bytes_per_event * jobs.events * rng.lognormal(0.0, self.output_sigma, jobs.n_jobs)
            + 2.0e5
        )
        cut_seconds = jobs.cut_seconds
        reports = []
        for j in range(jobs.n_jobs):
            members = order[bounds[j] : bounds[j + 1]]
            done, todo = [], []
            in_progress = None
            for i in members.tolist():
                if cut_seconds is not None and cut_seconds[i] == cut_seconds[i]:
                    in_progress = {
                        "run": rows[i]["run"],
                        "lumi": rows[i]["lumi"],
                        "seconds": float(cut_seconds[i]),
                    }
                if jobs.finished[i]:
                    unit = dict(rows[i])
                    if per_unit:
                        unit["seconds"] = float(seconds[i])
                    done.append(unit)
                else:
                    todo.append({"run": rows[i]["run"], "lumi": rows[i]["lumi"]})
            job_id = f"{prefix}-{j + 1}"
            reports.append(
                JobReport(
                    job_id=job_id,
                    stage=stage,
                    site=str(jobs.site[j]),
                    wall_seconds=float(jobs.wall[j]),
                    cpu_seconds=float(jobs.processing[j] * 0.97 + jobs.overhead[j] * 0.5),
                    init_seconds=float(jobs.overhead[j]),
                    loop_seconds=float(jobs.processing[j]),
                    events_read=None if unit_details else int(jobs.events[j]),
                    peak_rss_bytes=int(rss[j]),
                    units=done,
                    unfinished=todo,
                    in_progress=in_progress,
                    outputs=[OutputFile(name=f"{job_id}.root", bytes=int(out_bytes[j]))],
                    soft_stopped=bool(jobs.soft_stopped[j]),
                    hard_killed=bool(jobs.hard_killed[j]),
                    exit_code=0,
                )
            )
        return reports
