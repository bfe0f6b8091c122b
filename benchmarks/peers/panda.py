"""ATLAS PanDA/JEDI scouts and job sizing (reference notes peers.md §1.2).

* **Scouts**: ``nChunksForScout = 10`` scout jobs with ``nFilesPerJob = 1`` on the *first* files of the
  dataset (ContentsFeeder.py:163, JobSplitter.py:45). Scouts are real jobs: their outputs count.
* **Avalanche**: once ``minSuccessScouts = 5`` scouts (50 %) have finished, the task's ``cpuTime`` is set
  and the rest of the dataset is released (task_complex_module.py:3642-3690).
* **cpuTime** (task_utils_module.py:264-1120): per job ``(end - start - baseTime) * corePower / nEvents``
  (baseTime 0, one core, CPU efficiency 1 in the simulator), the task taking the **95th percentile** over
  jobs (``SCOUT_CPUTIME_RANK``) **times 1.5**; jobs with fewer than 10 events are ignored. It is computed
  again when the first 100 jobs after the avalanche have finished, over at most 1000 random finished
  jobs (scouts.rst:9-13).
* **Sizing** (sizing.rst, InputChunk.getSubChunk): jobs are made *per site* when the site asks for work
  (late binding), whole files in dataset order, filled until the walltime ``W >= cpuTime * nEvents /
  corePower + baseTime`` would be exceeded (at least one file), at most 200 files and 20 GB of input.
  ``corePower`` is the site's speed (1 / time factor): the simulator assumes the HS06 benchmark is exact.
* **Retries** (retryModule.py): a failed job is retried with the same input; a job killed at the walltime
  gets ``reduce_input_per_job`` (half the files) on its retry. ``max_attempts`` = 3 is an assumption (the
  notes give no default). A job that fails every attempt leaves its files unprocessed.

``W`` is the target runtime (the task's ``maxWalltime``); jobs are killed at the queue's ``maxtime``,
48 h (an assumption: scouts avoid queues under 24 h, brokerage.rst:228, and grid queues commonly allow 48 h). There is no soft limit and no partial
bookkeeping: a killed job loses all its work.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autosplit.sim import SimJob


@dataclass
class PandaPolicy:
    """PanDA/JEDI scouts, avalanche and per-site job sizing; see the module docstring. Times in seconds."""

    target_runtime: float = 8 * 3600.0  #: W, the walltime jobs are filled to
    queue_maxtime: float = 48 * 3600.0
    n_scouts: int = 10
    min_success_scouts: int = 5
    cputime_rank: float = 95.0
    cputime_margin: float = 1.5
    retune_after: int = 100
    retune_sample: int = 1000
    max_files_per_job: int = 200
    max_input_bytes: float = 20e9
    min_events: int = 10
    max_attempts: int = 3
    name: str = "panda"
    cputime_: float = field(default=float("nan"), init=False, repr=False)

    # ------------------------------------------------------------------ measurements
    def _set_cputime(self, sim: Any) -> None:
        """cpuTime = P95 of per-job reference seconds per event (wall x corePower / events) x 1.5."""
        finished = self._finished
        if len(finished) > self.retune_sample:
            picks = self._rng.choice(len(finished), self.retune_sample, replace=False)
            finished = [finished[i] for i in picks]
        per_event = np.array([seconds / events for seconds, events in finished if events >= self.min_events])
        if per_event.size:
            self.cputime_ = float(np.percentile(per_event, self.cputime_rank)) * self.cputime_margin

    # ------------------------------------------------------------------ job generation
    def _next_files(self, site: int, sim: Any) -> list[int]:
        """Files of the next job for a slot at ``site``, filled to the walltime."""
        speed = 1.0 / float(sim.pool.time_factors[site])
        budget_events = self.target_runtime * speed / self.cputime_
        files: list[int] = []
        events = size = 0.0
        while self._queue and len(files) < self.max_files_per_job:
            f = self._queue[0]
            too_long = events + self._file_events[f] > budget_events
            too_big = size + self._file_bytes[f] > self.max_input_bytes
            if files and (too_long or too_big):
                break
            files.append(self._queue.popleft())
            events += self._file_events[f]
            size += self._file_bytes[f]
        return files

    def _job(self, files: list[int], stage: str, attempt: int) -> SimJob:
        return SimJob(
            np.concatenate([self._file_rows[f] for f in files]),
            stage=stage,
            hard_limit=self.queue_maxtime,
            keep_on_kill=False,
            meta={"files": files, "attempt": attempt, "cputime": self.cputime_},
            on_done=self._on_done,
        )

    def _feed(self, sim: Any, site: int) -> SimJob | None:
        """Late binding: the job for a free slot at ``site`` (a retry first, else fresh files)."""
        if self._retry:
            files, attempt = self._retry.popleft()
            job = self._job(files, self._stage, attempt)
        elif self._avalanche and self._queue:
            job = self._job(self._next_files(site, sim), self._stage, 1)
        else:
            return None
        self._outstanding += 1
        return job

    # ------------------------------------------------------------------ outcomes
    def _on_done(self, attempt: Any) -> None:
        sim = self._sim
        self._outstanding -= 1
        job = attempt.job
        if attempt.outcome in ("ok", "soft"):
            speed = 1.0 / float(sim.pool.time_factors[attempt.site])
            events = float(self._events[job.rows].sum())
            self._finished.append(((attempt.overhead + attempt.payload) * speed, events))
            if job.stage == "scout":
                self._scouts_ok += 1
                if not self._avalanche and self._scouts_ok >= self.min_success_scouts:
                    self._start_avalanche(sim)
            elif job.stage == "jobs":
                self._after_avalanche += 1
                if self._after_avalanche == self.retune_after:
                    self._set_cputime(sim)
                    self._stage = "jobs-retuned"
        else:
            files, number = job.meta["files"], job.meta["attempt"]
            if number >= self.max_attempts:
                sim.lose(attempt.left_rows, f"failed {number} attempts")
            elif attempt.outcome == "killed" and len(files) > 1:
                half = len(files) // 2  # reduce_input_per_job
                self._retry.extend([(files[:half], number + 1), (files[half:], number + 1)])
            else:
                self._retry.append((files, number + 1))
        scouts_over = all(s.attempts and s.attempts[-1].final for s in self._scouts)
        if not self._avalanche and scouts_over and self._outstanding == 0 and not self._retry:
            if self._scouts_ok:
                self._start_avalanche(sim)  # fewer than min_success_scouts succeeded: use what there is
            else:
                sim.lose(sim.pending_rows(), "every scout failed")
                self._queue.clear()
        if self._outstanding == 0 and not self._retry and not self._queue:
            if not self._done.triggered:
                self._done.succeed()

    def _start_avalanche(self, sim: Any) -> None:
        self._set_cputime(sim)
        self._avalanche = True
        self._stage = "jobs"

    # ------------------------------------------------------------------ the task
    def run(self, sim: Any) -> Generator[Any, Any, None]:
        self._sim = sim
        self._rng = np.random.default_rng([sim.seed, 404])
        units = sim.dataset.units
        self._events = units["events"].to_numpy().astype(np.float64)
        file_of = units["file_id"].to_numpy().astype(np.int64)
        order = np.argsort(file_of, kind="stable")
        ids, starts = np.unique(file_of[order], return_index=True)
        bounds = np.append(starts, order.size)
        self._file_rows = {int(f): order[bounds[i] : bounds[i + 1]] for i, f in enumerate(ids)}
        self._file_events = {f: float(self._events[r].sum()) for f, r in self._file_rows.items()}
        bytes_ = units["bytes"].to_numpy().astype(np.float64)
        self._file_bytes = {f: float(bytes_[r].sum()) for f, r in self._file_rows.items()}
        files = [int(f) for f in ids]
        self._queue = deque(files[self.n_scouts :])
        self._retry: deque[tuple[list[int], int]] = deque()
        self._finished: list[tuple[float, float]] = []
        self._scouts_ok = self._after_avalanche = 0
        self._avalanche = False
        self._stage = "scout"
        self._done = sim.env.event()
        self._scouts = [self._job([f], "scout", 1) for f in files[: self.n_scouts]]
        self._outstanding = len(self._scouts)
        sim.submit_many(self._scouts)
        sim.set_feeder(self._feed)
        yield self._done
        sim.set_feeder(None)


def make(workload: Any, **params: Any) -> PandaPolicy:
    """PanDA for a benchmark workload (jobs filled to its target runtime)."""
    return PandaPolicy(target_runtime=workload.target_runtime, **params)
