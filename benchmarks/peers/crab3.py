"""CMS CRAB3 "Automatic" splitting, as its code does it (reference notes crab3.md §1, peers.md §1.1).

* **Probes** (§1.2): the dataset is split *FileBased* with ``ceil(n_files / 5)`` files per job and the first
  ``numAutomaticProbes = 5`` jobs become probes, each starting on a random file of its chunk (the file list
  is shuffled). They run with ``maxSecondsUntilRampdown`` = 15 min (stop at the next lumi boundary) and
  DAG retries ``numAutomJobRetries = 3``; their outputs are not kept (§1.2, PreJob ``CRAB_TransferOutputs=0``):
  the work is discarded.
* **Processing** (§1.5): PreDAG waits for 100 % of the probes, takes the *arithmetic mean* of the probes'
  ``EventThroughput`` (events / loop seconds) and of their event sizes (output bytes // input events + 1,
  from the probes' FJRs), sets ``events_per_job = int(0.75 * minutes_per_job * 60 * throughput)``, capped
  so a job's output stays under ``automaticOutputSizeMaximum`` = 5 GB, and splits the *whole* dataset
  again with ``EventAwareLumiBased``. Processing jobs ramp down at ``minutes_per_job`` and have **0
  retries** (§1.5 step 6).
* **Events per lumi** (§2.2): WMCore's EventAwareLumiBased counts every lumi of a file as the file's
  *average* events per lumi (``avgEvtsPerLumi``, rounded), never the real per-lumi counts, so CRAB3 splits
  on those averages here too (job sizes vary with the lumi-size spread within files).
* **Tails** (§1.7): with more than ``minAutomaticTailSize = 100`` processing jobs, three tail PreDAGs fire at
  50 %, 80 % and 100 % of processing jobs completed, else one at 100 %. Each takes the missing lumis of the
  newly completed jobs plus *all* lumis of failed ones, re-estimates the throughput as the mean over the
  newly completed successful jobs (falling back to the probes'), and splits with EventAwareLumiBased at
  ``max(45 min, 0.2 * minutes_per_job)``. Tail jobs have **no rampdown** and 3 retries; a tail job failing
  every retry, or removed at the wall-time limit, leaves its lumis lost (the user must ``crab resubmit``).
* **Retries** (§3.3): a job without FJR or with a CMSSW exception is recoverable and retried after the
  retry policy's 900 s delay; a removal at the wall-time limit is upgraded to 50664, FATAL (no retry).
* **Limits** (§1.6): processing and tail jobs are removed at ``MaxWallTimeMinsRun`` = 1250 min: the
  processing cap ``min(runtime + 60, maxjobruntime)`` does not reach the jobs (dmwm/CRABServer#5697), and
  since the 2025 refactor probes and tails get the same. A removed job writes no FJR: its work is lost.
* **Latency** (§1.9, §1.3): PreDAG scripts are PRE scripts with ``DEFER 4 300``: each re-checks every
  300 s, and reads job states from the status cache that ``cache_status.py`` rewrites every 300 s; once a
  PreDAG has split, its sub-DAG goes through ``condor_submit_dag`` and a negotiation cycle before jobs
  run: the pool's ``stage_delay_seconds``.
* **What it does not get**: the slot count, the true costs, per-unit timings (an FJR has none), the
  failure hazard. Crashes show only as failed jobs.

Simplifications: one location set (so FileBased makes exactly the chunks above); the throughput of a probe
is events over payload seconds of the lumis it finished; a probe's output size is drawn from the
workload's output model (``output_bytes_per_event`` with its lognormal spread, plus 200 kB per file); ASO
and PostJob deferrals are not modelled.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autosplit.sim import SimJob
from autosplit.splitting import split

# RetryJob (§3.3): no FJR and CMSSW exceptions are recoverable; a removal at the wall-time limit becomes
# 50664, FATAL. Each retry waits the policy's 900 s delay.
RETRY_ON = ("crash", "unit")
RETRY_DELAY = 900.0


@dataclass
class Crab3Policy:
    """CRAB3 Automatic splitting; see the module docstring. Times in seconds."""

    target_runtime: float = 8 * 3600.0  #: Data.unitsPerJob (minutes_per_job) x 60
    n_probes: int = 5  #: numAutomaticProbes
    probe_runtime: float = 15 * 60.0  #: automaticProbeRuntimeMins
    margin: float = 0.75
    tail_minimum: float = 45 * 60.0  #: automaticTailRuntimeMinimumMins
    tail_fraction: float = 0.2  #: automaticTailRuntimeFraction
    max_output_bytes: float = 5e9  #: automaticOutputSizeMaximum
    output_bytes_per_event: float = 3.0e4  #: true output bytes per event (what the probes' outputs show)
    output_sigma: float = 0.1  #: lognormal spread of a job's output size
    max_wall: float = 1250 * 60.0  #: MaxWallTimeMinsRun default
    job_retries: int = 3  #: numAutomJobRetries (probes and tails)
    min_tail_size: int = 100  #: minAutomaticTailSize
    tail_triggers: tuple[int, ...] = (50, 80, 100)  #: minAutomaticTailTriggers
    defer_seconds: float = 300.0  #: SCRIPT DEFER 4 300 on the PreDAG nodes
    cache_seconds: float = 300.0  #: status_cache refresh period
    name: str = "crab3"
    probe_rates_: list[float] = field(default_factory=list, init=False, repr=False)
    event_size_: float = field(default=0.0, init=False, repr=False)
    events_per_job_: int = field(default=0, init=False, repr=False)

    # ------------------------------------------------------------------ helpers
    def _cache_time(self, now: float) -> float:
        """When the status cache the PreDAG reads was last written."""
        return self._phase + self.cache_seconds * math.floor((now - self._phase) / self.cache_seconds)

    def _wait_completed(self, sim: Any, jobs: list[SimJob], count: int) -> Generator[Any, Any, float]:
        """PRE script with DEFER: re-check every ``defer_seconds`` until ``count`` jobs show as completed."""
        while True:
            seen = self._cache_time(sim.now)
            if sum(1 for job in jobs if job.result is not None and job.result.end <= seen) >= count:
                return seen
            yield sim.delay(self.defer_seconds)

    @staticmethod
    def _throughput(sim: Any, attempt: Any) -> float | None:
        """The FJR's EventThroughput (events per loop second) of a job that reported, else None."""
        if attempt.outcome not in ("ok", "soft") or attempt.payload <= 0 or attempt.n_run == 0:
            return None
        events = float(sim.dataset.units["events"].to_numpy()[attempt.job.rows[: attempt.n_run]].sum())
        return events / attempt.payload if events > 0 else None

    def _event_size(self, sim: Any, attempt: Any, rng: np.random.Generator) -> float | None:
        """The FJR's output bytes per input event (``outsize // events + 1``) of a job that reported."""
        if attempt.outcome not in ("ok", "soft") or attempt.n_run == 0:
            return None
        events = float(sim.dataset.units["events"].to_numpy()[attempt.job.rows[: attempt.n_run]].sum())
        if events <= 0:
            return None
        out = self.output_bytes_per_event * events * rng.lognormal(0.0, self.output_sigma) + 2.0e5
        return float(out // events + 1)

    def _events_per_job(self, minutes_target: float, rate: float) -> int:
        events = int(minutes_target * rate * 60.0)
        return max(min(events, int(self.max_output_bytes / max(self.event_size_, 1.0))), 1)

    @staticmethod
    def wmcore_view(dataset: Any) -> Any:
        """The dataset as WMCore splits it: each lumi has its file's average events per lumi (rounded)."""
        from autosplit.datasets import Dataset

        units = dataset.units
        file_of = units["file_id"].to_numpy()
        events = units["events"].to_numpy().astype(np.float64)
        per_file = np.bincount(file_of, weights=events) / np.maximum(np.bincount(file_of), 1)
        average = np.round(per_file[file_of]).astype(np.int64)
        return Dataset(
            units.with_columns(events=average), dataset.files, name=dataset.name, meta=dataset.meta
        )

    def _job(
        self, rows: np.ndarray, stage: str, soft: float | None, retries: int, keep: bool = True
    ) -> SimJob:
        return SimJob(
            rows,
            stage=stage,
            soft_limit=soft,
            hard_limit=self.max_wall,
            retries=retries,
            retry_on=RETRY_ON,
            retry_delay=RETRY_DELAY,
            keep_results=keep,
            keep_on_kill=False,
        )

    # ------------------------------------------------------------------ stages
    def _probes(self, sim: Any, rng: np.random.Generator) -> list[SimJob]:
        ds = sim.dataset
        files_per_job = (ds.n_files + self.n_probes - 1) // self.n_probes
        chunks = split(ds, "FileBased", files_per_job=files_per_job)
        jobs = []
        file_of = ds.units["file_id"].to_numpy()
        for j in range(min(self.n_probes, chunks.n_jobs)):
            rows = chunks.job_rows(j)
            files = np.unique(file_of[rows])
            order = rng.permutation(files.size)  # DagmanCreator shuffles a probe's input files
            rank = np.empty(files.size, dtype=np.int64)
            rank[order] = np.arange(files.size)
            rows = rows[np.argsort(rank[np.searchsorted(files, file_of[rows])], kind="stable")]
            jobs.append(self._job(rows, "probe", self.probe_runtime, self.job_retries, keep=False))
        return jobs

    def _tail(self, sim: Any, number: int, jobs: list[SimJob], processed: set[int], count: int) -> Generator:
        seen = yield from self._wait_completed(sim, jobs, count)
        fresh = [
            j for j, job in enumerate(jobs) if j not in processed and job.result and job.result.end <= seen
        ]
        processed.update(fresh)
        rows, rates = [], []
        for j in fresh:
            result = jobs[j].result
            if result.failed or result.hard_killed:
                rows.append(jobs[j].rows)  # failed job: all its lumis
            else:
                rows.append(result.left_rows)  # missing lumis
                rate = self._throughput(sim, result)
                if rate is not None:
                    rates.append(rate)
        missing = np.sort(np.concatenate(rows)) if rows else np.empty(0, np.int64)
        if missing.size == 0:
            return
        rate = float(np.mean(rates)) if rates else float(np.mean(self.probe_rates_))
        minutes = max(self.tail_minimum, self.tail_fraction * self.target_runtime) / 60.0
        plan = split(
            self._wmcore.take(missing),
            "EventAwareLumiBased",
            events_per_job=self._events_per_job(minutes, rate),
        )
        yield sim.delay(sim.pool.stage_delay_seconds)
        stage = f"tail-{number}"
        tail_jobs = [
            self._job(missing[plan.job_rows(k)], stage, None, self.job_retries) for k in range(plan.n_jobs)
        ]
        yield sim.wait_all(sim.submit_many(tail_jobs))
        for job in tail_jobs:
            if job.result.failed or job.result.hard_killed:
                sim.lose(job.result.left_rows, "tail job failed every retry (needs crab resubmit)")

    def tail_counts(self, n_jobs: int) -> list[int]:
        """Completed processing jobs that trigger each tail (DagmanCreator.py:1110-1122)."""
        if n_jobs > self.min_tail_size:
            return [n_jobs * pct // 100 for pct in self.tail_triggers]
        return [n_jobs]

    # ------------------------------------------------------------------ the task
    def run(self, sim: Any) -> Generator[Any, Any, None]:
        rng = np.random.default_rng([sim.seed, 303])
        self._wmcore = self.wmcore_view(sim.dataset)
        self._phase = float(rng.uniform(0.0, self.cache_seconds))
        probes = self._probes(sim, rng)
        sim.submit_many(probes)
        yield from self._wait_completed(sim, probes, len(probes))
        self.probe_rates_ = [
            r for r in (self._throughput(sim, job.result) for job in probes) if r is not None
        ]
        sizes = [s for s in (self._event_size(sim, job.result, rng) for job in probes) if s is not None]
        if not self.probe_rates_ or not sizes:
            sim.lose(sim.pending_rows(), "Splitting failed because all probe jobs failed")
            return
        self.event_size_ = float(np.mean(sizes))
        minutes = self.margin * self.target_runtime / 60.0
        self.events_per_job_ = self._events_per_job(minutes, float(np.mean(self.probe_rates_)))
        plan = split(self._wmcore, "EventAwareLumiBased", events_per_job=self.events_per_job_)
        jobs = [self._job(plan.job_rows(k), "processing", self.target_runtime, 0) for k in range(plan.n_jobs)]
        for k, job in enumerate(jobs):
            job.priority = float(len(jobs) - k)
        # The tail PreDAG nodes start with the processing DAG; its jobs run after submission + negotiation.
        counts = self.tail_counts(len(jobs))
        processed: set[int] = set()
        tails = [sim.env.process(self._tail(sim, k + 1, jobs, processed, c)) for k, c in enumerate(counts)]
        yield sim.delay(sim.pool.stage_delay_seconds)
        sim.submit_many(jobs)
        yield sim.env.all_of(tails)
        leftover = sim.pending_rows()
        sim.lose(leftover, "never reached by a tail")


def make(workload: Any, **params: Any) -> Crab3Policy:
    """CRAB3 for a benchmark workload (its target runtime and output bytes per event)."""
    return Crab3Policy(
        target_runtime=workload.target_runtime,
        output_bytes_per_event=workload.cost.output_bytes_per_event,
        output_sigma=workload.cost.output_sigma,
        **params,
    )
