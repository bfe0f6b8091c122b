"""The scheduler's unit book: the state of every unit as numpy arrays, and the queues work is bound from.

States: ``PENDING`` (waiting for a job), ``ASSIGNED`` (in a running job), ``DONE``, ``QUARANTINED``. Per
unit it also counts how often the unit was handed back unfinished (``returns``: the tail level), how often
its job was lost or failed without naming a cause (``crashes``) and how often a failure was blamed on it
(``failures``); ``alone`` marks units that must run by themselves.

Pending units wait in three queues, bound in this order:

1. **alone**: units run by themselves (cut off by a kill, named as the cause of a failure, lost with their
   job twice, or predicted too long to share a job; only the last are ``oversized``, and a later model
   that says they fit puts them back with the returned units), longest predicted first;
2. **returned**: units handed back by soft stops, kills and failures, in planning order;
3. **fresh**: units never handed out, in planning order (location set, file, run, lumi), read from a
   cursor that only moves forward.
"""

from __future__ import annotations

import numpy as np

PENDING, ASSIGNED, DONE, QUARANTINED = 0, 1, 2, 3
STATE_NAMES = ("pending", "assigned", "done", "quarantined")


class UnitBook:
    """Unit states, counters and the three pending queues of one scheduler (see the module docstring).

    ``position`` is each unit's place in the planning order (``order[position[row]] == row``) and
    ``segment`` its planning segment (units of different segments never share a job).
    """

    def __init__(self, order: np.ndarray, segment_start: np.ndarray) -> None:
        n = int(order.size)
        self.n = n
        self.state = np.zeros(n, dtype=np.int8)
        self.job = np.full(n, -1, dtype=np.int64)
        self.returns = np.zeros(n, dtype=np.int16)
        self.crashes = np.zeros(n, dtype=np.int16)
        self.failures = np.zeros(n, dtype=np.int16)
        self.alone = np.zeros(n, dtype=bool)
        # Alone only because the model predicted them too long to share a job: freed when a refit disagrees.
        self.oversized = np.zeros(n, dtype=bool)
        self.order = np.asarray(order, dtype=np.int64)
        self.position = np.empty(n, dtype=np.int64)
        self.position[self.order] = np.arange(n)
        seg = np.cumsum(np.asarray(segment_start, dtype=np.int64)) - 1 if n else np.zeros(0, np.int64)
        self.segment = np.empty(n, dtype=np.int64)
        self.segment[self.order] = seg
        self.reasons: dict[str, int] = {}
        self.reason_of: dict[int, str] = {}
        # Units cut off by a kill or lost while alone: the most seconds one ran without finishing (a lower
        # bound on its cost; see note_spent).
        self.spent: dict[int, float] = {}
        # Queues of pending rows. ``fresh`` is a view of the planning order from ``cursor`` on.
        self.fresh = self.order.copy()
        self.cursor = 0
        self.returned = np.zeros(0, dtype=np.int64)  # sorted by planning position
        self.alone_queue: list[int] = []
        self._dirty: list[np.ndarray] = []

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        if "oversized" not in state:  # books pickled before it existed: every alone unit stays alone
            self.oversized = np.zeros(self.n, dtype=bool)
        if "spent" not in state:
            self.spent = {}

    # ------------------------------------------------------------------ change tracking
    def mark(self, rows: np.ndarray) -> None:
        """Note that these units changed (state, counters or flags) since the last :meth:`take_dirty`."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size:
            self._dirty.append(rows.copy())

    def take_dirty(self) -> np.ndarray:
        """The units changed since the last call (sorted, unique), and forget them."""
        if not self._dirty:
            return np.zeros(0, dtype=np.int64)
        rows = np.unique(np.concatenate(self._dirty))
        self._dirty = []
        return rows

    # ------------------------------------------------------------------ counts
    def counts(self) -> dict[str, int]:
        numbers = np.bincount(self.state, minlength=4)
        return {name: int(numbers[i]) for i, name in enumerate(STATE_NAMES)}

    def n_pending(self) -> int:
        return int(np.count_nonzero(self.state == PENDING))

    # ------------------------------------------------------------------ queues
    def note_spent(self, row: int, seconds: float) -> None:
        """Unit ``row`` ran ``seconds`` without finishing (killed, or lost while alone): it takes at least
        that long (the longest such run is kept)."""
        self.spent[int(row)] = max(self.spent.get(int(row), 0.0), float(seconds))

    def rebuild_fresh(self, rows: np.ndarray | None = None) -> None:
        """Fresh queue = ``rows`` (default: every pending unit never handed out), in planning order."""
        if rows is None:
            candidates = self.order
            keep = (self.state[candidates] == PENDING) & (self.returns[candidates] == 0)
            keep &= ~self.alone[candidates]
            rows = candidates[keep]
        else:
            rows = rows[np.argsort(self.position[rows], kind="stable")]
        self.fresh = np.asarray(rows, dtype=np.int64)
        self.cursor = 0

    def fresh_left(self) -> np.ndarray:
        return self.fresh[self.cursor :]

    def push_returned(self, rows: np.ndarray) -> None:
        """Queue units handed back (pending again) for rebinding, keeping planning order."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        solo = self.alone[rows]
        for row in rows[solo].tolist():
            self.alone_queue.append(row)
        rows = rows[~solo]
        if rows.size:
            merged = np.concatenate([self.returned, rows])
            self.returned = merged[np.argsort(self.position[merged], kind="stable")]

    def pop_returned(self, count: int) -> np.ndarray:
        taken, self.returned = self.returned[:count], self.returned[count:]
        return taken

    def drop_from_queues(self, rows: np.ndarray) -> None:
        """Remove rows (quarantined while pending) from the returned and alone queues."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        if self.returned.size:
            self.returned = self.returned[~np.isin(self.returned, rows)]
        if self.alone_queue:
            gone = set(rows.tolist())
            self.alone_queue = [r for r in self.alone_queue if r not in gone]

    # ------------------------------------------------------------------ transitions
    def set_alone(self, rows: np.ndarray) -> None:
        """These units run by themselves from now on, whatever later predictions say (a cause, not a size)."""
        self.alone[rows] = True
        self.oversized[rows] = False

    def set_oversized(self, rows: np.ndarray) -> None:
        """These units run by themselves while the model predicts them too long to share a job."""
        self.alone[rows] = self.oversized[rows] = True
        self.mark(rows)

    def release_oversized(self, rows: np.ndarray) -> None:
        """Oversized units a later model says fit in a job: back with the returned units."""
        if rows.size == 0:
            return
        self.alone[rows] = self.oversized[rows] = False
        self.mark(rows)
        self.push_returned(rows)

    def assign(self, rows: np.ndarray, job_index: int) -> None:
        self.state[rows] = ASSIGNED
        self.job[rows] = job_index
        self.mark(rows)

    def finish(self, rows: np.ndarray) -> None:
        """Units done (``job`` keeps the job that did them)."""
        self.state[rows] = DONE
        self.mark(rows)

    def release(self, rows: np.ndarray) -> None:
        """Assigned units back to pending (not yet queued: the caller decides where they go)."""
        self.state[rows] = PENDING
        self.job[rows] = -1
        self.mark(rows)

    def quarantine(self, rows: np.ndarray, reason: str) -> int:
        """Give up on pending or assigned units with a reason; returns how many changed."""
        rows = np.asarray(rows, dtype=np.int64)
        rows = rows[(self.state[rows] == PENDING) | (self.state[rows] == ASSIGNED)]
        if rows.size == 0:
            return 0
        self.drop_from_queues(rows)
        self.state[rows] = QUARANTINED
        self.job[rows] = -1
        self.mark(rows)
        self.reasons[reason] = self.reasons.get(reason, 0) + int(rows.size)
        for row in rows.tolist():
            self.reason_of[row] = reason
        return int(rows.size)
