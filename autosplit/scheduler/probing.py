"""Probe rounds: a stratified sample of the pending units, dealt to short probe jobs handed out on demand.

A round draws its sample once (:func:`autosplit.estimators.choose_probes`: events-per-lumi classes, spread
over files and runs, at most ``probe_fraction`` of the pending events) and deals it to ``n_probes`` jobs.
Probes are handed out as slots ask for work; their finished units count as done. A round ends when every
probe reported, or earlier, once a quorum reported and the cost model fitted on them (with the probes
still running counted as censored: they have taken at least as long as they have been running) knows the
total to the requested precision. Processing then starts at once, and the model is refitted when the last
probe of the round has ended (the probes that end first ran on fast nodes or drew cheap units).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autosplit.scheduler.book import DONE, PENDING
from autosplit.scheduler.jobs import SchedJob
from autosplit.scheduler.requests import JobRequest
from autosplit.splitting.limits import probe_hard_limit


@dataclass
class ProbeRound:
    """One round of probes: ``jobs[k]`` are the unit rows of probe ``k``; ``issued`` of them handed out."""

    number: int
    jobs: list[np.ndarray]
    issued: int = 0
    job_ids: list[str] = field(default_factory=list)

    @property
    def n_probes(self) -> int:
        return len(self.jobs)

    @property
    def exhausted(self) -> bool:
        return self.issued >= len(self.jobs)

    def next_rows(self) -> np.ndarray:
        rows = self.jobs[self.issued]
        self.issued += 1
        return rows


def draw_round(
    dataset,
    pending: np.ndarray,
    *,
    number: int,
    n_probes: int,
    probe_seconds: float,
    probe_fraction: float,
    model=None,
    seed: int = 0,
    fixed_count: bool = False,
) -> ProbeRound:
    """Draw round ``number``'s sample from the ``pending`` rows of ``dataset`` (see the module docstring).

    The event budget is ``probe_fraction`` of the pending events. Unless ``fixed_count`` (the user set the
    number of probes), there are no more probes than units of the mean size fit within it
    (:func:`~autosplit.estimators.probes.probes_within_budget`), and the budget grows only to hold the
    largest unit; otherwise it grows so that every probe gets a unit. Each round has its own seed (:func:`~autosplit.estimators.probes.probe_round_seed`, offset by ``seed``).
    """
    # Imported here: the estimators come with polars, which a job script accounting for a job does not need.
    from autosplit.estimators.probes import (
        choose_probes,
        probe_budget,
        probe_round_seed,
        probes_within_budget,
    )

    units = dataset.units[pending]
    events = units["events"].to_numpy()
    n_probes = int(max(1, min(n_probes, units.height)))
    if fixed_count:
        budget = probe_budget(events, n_probes, probe_fraction)
    else:
        n_probes = probes_within_budget(events, n_probes, probe_fraction)
        budget = probe_budget(events, 1, probe_fraction)
    chosen = choose_probes(
        units,
        n_probes,
        probe_seconds,
        model=model,
        max_events=budget,
        seed=probe_round_seed(number) + 1000 * int(seed),
    )
    probe_of = chosen["probe"].to_numpy()
    picked = pending[chosen["row"].to_numpy().astype(np.int64)]
    jobs = [picked[probe_of == p] for p in np.unique(probe_of).tolist()]
    # Biggest probes first, so the round's slowest probes start earliest.
    all_events = dataset.units["events"].to_numpy()
    sizes = np.array([all_events[rows].sum() for rows in jobs])
    jobs = [jobs[k] for k in np.argsort(-sizes, kind="stable")]
    return ProbeRound(number=number, jobs=jobs)


class ProbingMixin:
    """The probe phase of :class:`~autosplit.scheduler.Scheduler` (see the module docstring)."""

    def _next_probe(self, now: float, name: str | None) -> JobRequest | None:
        if self._round is None:
            self._new_round(now)
        rnd = self._round
        if rnd is None or rnd.exhausted:
            return None
        rows = rnd.next_rows()
        rows = rows[self._book.state[rows] == PENDING]
        if rows.size == 0:
            return self._next_probe(now, name)
        soft = self.probe_seconds
        stage = "probe" if rnd.number == 1 else f"probe-r{rnd.number}"
        job = self._open(
            stage, "probe", rows, now, soft, probe_hard_limit(soft, self.grace_seconds), None, name
        )
        job.probe_round = rnd.number
        rnd.job_ids.append(job.job_id)
        return self._request(job)

    def _new_round(self, now: float) -> None:
        pending = np.flatnonzero(self._book.state == PENDING)
        if pending.size == 0:
            return
        number = self._rounds_done + 1
        n = self.probes or self.slots or self._concurrency()
        n = int(min(max(n, 20), 500)) if not self.probes else n
        self._round = draw_round(
            self.dataset,
            pending,
            number=number,
            n_probes=n,
            probe_seconds=self.probe_seconds,
            probe_fraction=self.probe_fraction,
            model=self.model_,
            seed=self.seed + 7919 * getattr(self, "_lost_rounds", 0),
            fixed_count=bool(self.probes),
        )
        self._round_checked_at = -1

    def _round_jobs(self) -> list[SchedJob]:
        rnd = self._round
        return [self._jobs[self._by_id[j]] for j in rnd.job_ids] if rnd else []

    def _probe_progress(self, now: float) -> None:
        """End the probe round when its quorum reported and the model is precise enough, or it is over."""
        rnd = self._round
        if rnd is None:
            return
        jobs = self._round_jobs()
        ended = sum(1 for j in jobs if j.outcome != "running")
        complete = rnd.exhausted and ended == len(jobs)
        stalled = not self._running and (rnd.exhausted or not self._book.n_pending())
        quorum = max(math.ceil(self.probe_quorum * len(jobs)), min(len(jobs), 5))
        if not (complete or stalled) and (ended < quorum or ended < 1.1 * max(self._round_checked_at, 0)):
            return
        self._round_checked_at = ended
        model = self._fit(now) if self._usable_reports() else None
        if model is None:
            if complete or stalled:
                self._give_up_round(now)
            return
        self._candidate = model  # the latest usable fit: used if later fits fail (see _give_up_round)
        precise = self._precise(model)
        if precise or complete or stalled:
            self.model_ = model
            if not precise and self._rounds_done + 1 < self.max_probe_rounds:
                self._rounds_done += 1
                self._round = None
                self._new_round(now)
                return
            self._rounds_done += 1
            self._round = None
            # Probes still running are the slow ones: the model is refitted once they all ended.
            self._late_probes = {j.index for j in jobs if j.outcome == "running"}
            self._start_processing()

    def _give_up_round(self, now: float) -> None:
        """A round ended with nothing usable: probe again, or quarantine what is left with the reason.

        A round whose probes were all lost (killed by the infrastructure, no report) does not count towards
        ``max_probe_rounds``: it says nothing about the code, and units lost again and again are
        quarantined one by one through their crash count instead."""
        if all(job.outcome in ("lost", "cancelled") for job in self._round_jobs()):
            self._lost_rounds = getattr(self, "_lost_rounds", 0) + 1  # a fresh sample, not the same units
            self._round = None
            self._new_round(now)
            return
        self._rounds_done += 1
        self._round = None
        if self._rounds_done < self.max_probe_rounds:
            self._new_round(now)
            return
        candidate = getattr(self, "_candidate", None)
        if candidate is not None:
            # An earlier fit of the probes was usable (only later ones failed): process with it.
            self._notes.append("probing ended on the last usable fit")
            self.model_ = candidate
            self._start_processing()
            return
        pending = np.flatnonzero(self._book.state == PENDING)
        self._book.quarantine(
            pending,
            f"no probe of {self._rounds_done} round(s) measured anything, so the cost per event cannot be "
            "estimated; fix the code and resubmit",
        )

    def _precise(self, model: Any) -> bool:
        from autosplit.estimators import enough_probes

        pending = np.flatnonzero(self._book.state != DONE)
        try:
            return bool(enough_probes(model, self.dataset.units[pending], self.rel_precision))
        except Exception:  # noqa: BLE001 - an imprecise model, not a reason to stop
            return False
