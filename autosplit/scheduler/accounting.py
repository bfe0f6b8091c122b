"""Accounting for ended jobs (a :class:`Scheduler` part): which units are done, which go back, which are
given up on.

A unit handed back counts one more return (its tail level; probes' leftovers do not count). A unit whose
job was lost twice runs alone; one lost ``max_crashes`` times (the last while alone), or blamed for
``max_unit_failures`` failures, is quarantined with the last reason. When that last loss left no report
and the pool itself loses jobs, the losses must also be too many for chance, up to twice ``max_crashes``
(:meth:`AccountingMixin._losses_by_chance`).
"""

from __future__ import annotations

import numpy as np

from autosplit.scheduler.book import ASSIGNED, PENDING
from autosplit.scheduler.jobs import SchedJob, SchedulerError

#: A job of several units lost without a report after running this many times its predicted payload held a
#: unit far longer than predicted: its units run alone next (a site 2x slower than the mean, with the node
#: spread, stays below it). On ``grid``/``heavy-tail`` with failures a job of four units predicted at 3.7 h
#: was lost after 12.5 h (one unit cost 12.5 h, predicted 0.8 h); its four units were bound together again,
#: that job was lost after 24 h, and the long unit started a third time at 1.26x the bound.
OVERRUN = 3.0

#: A unit's losses while alone are blamed on it only when the pool's observed loss hazard makes that many
#: losses of its alone jobs less likely than this by chance (a task has ~30,000 units; a few hundred run
#: alone after two shared losses when the pool loses jobs).
LOSSES_BY_CHANCE = 1e-6


def duplicate_call() -> dict:
    """What a second call for a job that already ended returns: nothing changed."""
    return {"done": np.zeros(0, np.int64), "returned": np.zeros(0, np.int64), "duplicate": True}


class AccountingMixin:
    """Job accounting of :class:`~autosplit.scheduler.Scheduler` (see the module docstring)."""

    def _rows_of(self, job: SchedJob, pairs: list, what: str) -> np.ndarray:
        """Rows of ``job`` for (run, lumi) pairs; a pair outside the job is an error naming it."""
        if not pairs:
            return np.zeros(0, dtype=np.int64)
        all_keys = getattr(self._book, "keys", None)
        if all_keys is not None:
            keys = np.asarray(all_keys[job.rows], dtype=np.int64)
        else:  # a state saved before the book kept the keys
            units = self.dataset.units
            runs = units["run"].to_numpy()[job.rows].astype(np.int64)
            lumis = units["lumi"].to_numpy()[job.rows].astype(np.int64)
            keys = (runs << 32) | lumis
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        wanted = np.array([(int(r) << 32) | int(lu) for r, lu in pairs], dtype=np.int64)
        pos = np.minimum(np.searchsorted(sorted_keys, wanted), max(sorted_keys.size - 1, 0))
        found = sorted_keys.size > 0 and (sorted_keys[pos] == wanted)
        if not np.all(found):
            bad = pairs[int(np.argmin(found))]
            raise SchedulerError(
                f"job {job.job_id}: the {what} unit run {bad[0]} lumi {bad[1]} was not assigned to it"
            )
        return job.rows[order[pos]]

    def _hand_back(
        self,
        job: SchedJob,
        rows: np.ndarray,
        reason: str | None,
        *,
        give_up: np.ndarray | None = None,
        without_report: bool = False,
        now: float | None = None,
    ) -> np.ndarray:
        """Units of an ended job not done: pending again (queued), or quarantined when given up on
        (``give_up``: units quarantined at once with ``reason``, whatever their failure count).
        ``without_report``: the job was lost at ``now`` (the pool's loss hazard may explain it)."""
        book = self._book
        if rows.size == 0:
            return rows
        self._release(rows)
        if job.kind != "probe":  # a probe's leftovers were only sampled, not handed back
            book.returns[rows] += 1
        book.set_alone(rows[book.crashes[rows] >= 2])
        given_up = rows[np.isin(rows, give_up)] if give_up is not None and give_up.size else rows[:0]
        failed = rows[(book.failures[rows] >= self.max_unit_failures) & ~np.isin(rows, given_up)]
        # A loss is blamed on a unit only when it ran by itself: a node lost under a shared job says nothing
        # about which of its units (if any) was at fault.
        lost = rows[book.crashes[rows] >= self.max_crashes] if job.rows.size == 1 else rows[:0]
        if lost.size and without_report:
            lost = lost[~self._losses_by_chance(lost, job, now)]
        quarantined = []
        if given_up.size:
            quarantined.append(given_up)
            self._quarantine(given_up, reason or "unknown")
        if failed.size:
            quarantined.append(failed)
            self._quarantine(
                failed, f"failed {self.max_unit_failures} time(s); last error: {reason or 'unknown'}"
            )
        if lost.size:
            lost = lost[book.state[lost] == PENDING]
            quarantined.append(lost)
            for count in np.unique(book.crashes[lost]).tolist():
                self._quarantine(
                    lost[book.crashes[lost] == count],
                    f"its job was lost {count} time(s); last: {reason or 'unknown'}",
                )
        if self._fresh_built:  # while probing, pending units are collected when processing starts
            book.push_returned(rows[book.state[rows] == PENDING])
        return np.concatenate(quarantined) if quarantined else np.zeros(0, np.int64)

    def _release(self, rows: np.ndarray) -> None:
        """Assigned ``rows`` back to pending (not yet queued), their predicted seconds back in the pending
        total."""
        self._book.release(rows)
        if self._predictions is not None:
            self._pending_mean += float(self._predictions.mean[rows].sum())

    def _ending(self, job_id: str, outcome: str) -> tuple[SchedJob | None, np.ndarray]:
        """Mark the running job ``job_id`` ended with ``outcome``: the job and its units still assigned, or
        ``(None, empty)`` when it already ended (a second call for it changes nothing)."""
        job = self._job(job_id)
        if job.outcome != "running":
            return None, np.zeros(0, np.int64)
        job.outcome = outcome
        return job, job.rows[self._book.state[job.rows] == ASSIGNED]

    def job_cancelled(self, job_id: str, now: float) -> dict:
        """Account for a job its user stopped that left no report: its units go back to pending as they
        were. Unlike :meth:`job_failed` nothing is blamed (no loss of the pool, no crash of its units, no
        run time remembered for them): a user's kill says nothing of the units or the pool. Its slot time
        still counts towards the pool's loss rate, as a job that ended without a loss. Returns what
        changed, as :meth:`job_failed` does."""
        now = self._time(now)
        job, rest = self._ending(job_id, "cancelled")
        if job is None:
            return duplicate_call()
        # Not _hand_back: that may give up on a unit by its earlier counts (a lone unit's losses spared by
        # the chance test); here nothing new is known of any unit.
        self._release(rest)
        if self._fresh_built:  # while probing, pending units are collected when processing starts
            self._book.push_returned(rest)
        self._observer.ended(now - job.requested_at, None, lost=False)  # slot time without a loss
        self._end(job, now)
        return {"done": np.zeros(0, np.int64), "returned": rest, "quarantined": np.zeros(0, np.int64)}

    def _judge_loss(
        self, job: SchedJob, rest: np.ndarray, now: float, reason: str
    ) -> tuple[str, np.ndarray | None]:
        """What a job lost without a report at ``now`` says of its units ``rest``, from how long its payload
        ran, when the driver said when it started (:meth:`job_started`; the pipeline reads it from the job
        event log): the reason to hand them back with, and the units to give up on at once (or ``None``).

        A job of several units that ran more than ``OVERRUN`` times its predicted payload held a far
        longer unit than predicted: each of its units runs alone next (with the model's alone limit). A
        one-unit job's unit is remembered to take at least that long (like a unit cut off by a kill: its
        next job alone gets twice that), and is given up on once that reaches ``give_up_fraction`` of
        ``max_job_seconds``."""
        if job.started_at is None:
            # Unknown start (a driver that does not call job_started): time spent waiting in a batch
            # queue would look like time the units ran.
            return reason, None
        book = self._book
        ran = max(now - job.started_at, 0.0)
        if rest.size > 1 and job.predicted and ran > OVERRUN * job.predicted:
            # One of its units is far longer than predicted (which one, no report says): each runs alone
            # next, so the others are not lost with it again.
            book.set_alone(rest)
        elif self._remember_lost_run(job, rest, ran):
            wall = self.max_job_seconds
            if ran >= self.give_up_fraction * wall:
                return (
                    f"ran {ran:.0f} s without finishing (then its job was lost; the longest allowed job is "
                    f"{wall:.0f} s); resubmit with a larger max runtime"
                ), rest
        return reason, None

    def _remember_lost_run(self, job: SchedJob, rest: np.ndarray, ran: float) -> bool:
        """A job of one unit (not a probe) lost after its payload ran ``ran`` seconds: its unit still to do
        (``rest``) takes at least that long, as if killed then (its next job alone gets twice that).
        Returns whether that applied. Also used when a scheduler is rebuilt from its ledger."""
        if not (job.rows.size == 1 and rest.size == 1 and job.kind != "probe"):
            return False
        self._book.note_spent(int(rest[0]), ran)
        return True

    def _losses_by_chance(self, rows: np.ndarray, job: SchedJob, now: float | None) -> np.ndarray:
        """Whether the losses of each of ``rows`` (units of ``job``, lost alone without a report at ``now``,
        ``max_crashes`` times or more) could still be the pool's doing: True while ``p ** k`` is above
        :data:`LOSSES_BY_CHANCE` and the unit has fewer than ``2 * max_crashes`` losses.

        ``p = 1 - exp(-hazard * seconds)`` is the chance that the pool loses the unit's alone job: its
        ``seconds`` are the slot overhead plus the unit's predicted seconds, or more when the unit was seen to
        run longer or this job was lost later. ``hazard`` is the pool's loss rate without the unit's own
        losses (a unit that takes its node down must not make them look like the pool's), zero until three
        other jobs were lost. ``k`` is the unit's count of losses and crashes without a culprit, less the
        first two (those may have been in shared jobs).

        With the ``grid`` profile's 48 h mean time between failures, a 2.3 h lumi's alone job is lost by
        chance 5 % of the time: it is given up on after 7 losses, not 4 (in ``run_quality``, 2 of 78 runs
        with failures had quarantined a good lumi after 4 losses). Where no loss hazard is seen,
        ``max_crashes`` losses are enough, as before."""
        book = self._book
        crashes = book.crashes[rows].astype(np.float64)
        hazard = self._hazard(now, excluding=crashes)
        seconds = np.full(rows.size, self._observer.slot_overhead(default=0.0))
        if self._predictions is not None:
            seconds += self._predictions.overhead + self._predictions.mean[rows]
        seen = np.array([book.spent.get(int(r), 0.0) for r in rows.tolist()])
        elapsed = now - job.requested_at if now is not None else 0.0
        seconds = np.maximum(np.maximum(seconds, seen), elapsed)
        p = -np.expm1(-hazard * seconds)
        chance = np.power(p, np.maximum(crashes - 2.0, 1.0))
        return (chance > LOSSES_BY_CHANCE) & (crashes < 2 * self.max_crashes)

    def _quarantine(self, rows: np.ndarray, reason: str) -> None:
        rows = np.asarray(rows, dtype=np.int64)
        pending = rows[self._book.state[rows] == PENDING]
        if self._predictions is not None and pending.size:
            self._pending_mean -= float(self._predictions.mean[pending].sum())
        self._book.quarantine(rows, reason)
