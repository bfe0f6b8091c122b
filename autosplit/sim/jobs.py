"""What a policy submits (:class:`SimJob`) and what the pool reports back (:class:`Attempt`).

A job runs its units in order. Its payload stops

* at the **soft limit** (seconds of payload): a unit that *started* before it completes, later units are
  left for someone else (the worker's semantics: stop at the next unit boundary);
* at the **hard limit**: SIGTERM, the unit in progress may still finish within the pool's grace period,
  else SIGKILL. With ``keep_on_kill`` the units finished before the kill count (autosplit's progress
  journal); without it the kill loses them all (a CMSSW job removed by the batch system writes no FJR);
* on a **crash** (the pool's failure hazard): nothing counts;
* on a **poison unit**: the user code fails half-way through it; nothing counts and the unit is named.

Outcomes are ``"ok"`` (every unit done), ``"soft"``, ``"killed"``, ``"crash"`` and ``"unit"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

OUTCOMES = ("ok", "soft", "killed", "crash", "unit")


@dataclass(eq=False)
class SimJob:
    """A job to run on the pool.

    Parameters
    ----------
    rows:
        Unit rows (positions in ``dataset.units``) in the order the job processes them.
    stage:
        Stage label (``probe``, ``processing``, ``tail-1``, ...): grouped in the metrics.
    soft_limit, hard_limit:
        Seconds of payload (``None``: no limit). The pool's ``max_wall_seconds`` also applies.
    retries:
        Times the pool re-runs the same job after an outcome listed in ``retry_on`` (DAGMan ``RETRY``).
    retry_on:
        Outcomes that trigger a retry (e.g. ``("crash",)``, or ``("crash", "unit", "killed")``).
    retry_delay:
        Seconds between a failed attempt and its retry being queued again (a cool-off).
    keep_results:
        False for work that is thrown away whatever happens (CRAB3's probes): no unit becomes done.
    keep_on_kill:
        Whether units finished before a hard kill count (the job's progress journal is trusted).
    graceful_stop:
        Whether a SIGTERM at the hard limit lets the job stop cleanly when its unit in progress ends within
        the grace period (autosplit's worker does; a job removed by the batch system does not). Its units
        then count even without ``keep_on_kill``.
    priority:
        Higher runs first among queued jobs (ties: submission order).
    name, meta:
        Free labels for the policy.
    on_done:
        Called with the final :class:`Attempt` when the job ends, before its event fires and before the
        freed slot is offered to the next job (dynamic policies update their queues here).
    """

    rows: np.ndarray
    stage: str = "processing"
    soft_limit: float | None = None
    hard_limit: float | None = None
    retries: int = 0
    retry_on: tuple[str, ...] = ("crash",)
    retry_delay: float = 0.0
    keep_results: bool = True
    keep_on_kill: bool = True
    graceful_stop: bool = False
    priority: float = 0.0
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    on_done: Callable[[Attempt], None] | None = field(default=None, repr=False)
    attempts: list[Attempt] = field(default_factory=list, repr=False)
    # Set by the engine at submission: cumulative reference seconds of the rows, first poison position.
    cum: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    poison_at: int = field(default=-1, repr=False)
    submitted: float = field(default=float("nan"), repr=False)
    event: Any = field(default=None, repr=False)  #: simpy event triggered with the final Attempt

    def __post_init__(self) -> None:
        self.rows = np.asarray(self.rows, dtype=np.int64)
        for outcome in self.retry_on:
            if outcome not in OUTCOMES:
                raise ValueError(f"unknown outcome {outcome!r} in retry_on; choose from {OUTCOMES}")

    @property
    def n_units(self) -> int:
        return int(self.rows.size)

    @property
    def result(self) -> Attempt | None:
        """The final attempt (``None`` while the job is queued, running or being retried)."""
        return self.attempts[-1] if self.attempts and self.attempts[-1].final else None


@dataclass(eq=False, slots=True)
class Attempt:
    """One run of a job on one slot; times in seconds of simulated time.

    ``n_run`` units (a prefix of ``job.rows``) were processed; ``n_kept`` of them count as done (0 after a
    crash, a poison unit, a discarded probe or a kill without ``keep_on_kill``). ``useful`` is the payload
    CPU seconds of the kept units, ``thrown`` the rest of the payload (partial units, lost work), and
    ``overhead`` the slot time before the payload. ``in_progress`` is the row of the unit cut off by a
    SIGKILL at the hard limit (-1 when the job stopped at a unit boundary or failed otherwise).
    """

    job: SimJob
    number: int
    slot: int
    site: int
    factor: float
    dispatched: float
    overhead: float
    payload: float
    end: float
    n_run: int
    n_kept: int
    outcome: str
    failed_unit: int
    useful: float
    thrown: float
    in_progress: int = -1
    final: bool = False
    duplicate: float = 0.0

    @property
    def wall(self) -> float:
        """Seconds the attempt held its slot."""
        return self.end - self.dispatched

    @property
    def soft_stopped(self) -> bool:
        return self.outcome == "soft"

    @property
    def hard_killed(self) -> bool:
        return self.outcome == "killed"

    @property
    def failed(self) -> bool:
        return self.outcome in ("crash", "unit")

    @property
    def done_rows(self) -> np.ndarray:
        """Rows whose results count."""
        return self.job.rows[: self.n_kept]

    @property
    def left_rows(self) -> np.ndarray:
        """Rows not done by this attempt (what goes back to pending when it is final)."""
        return self.job.rows[self.n_kept :]

    def unit_seconds(self, truth_seconds: np.ndarray) -> np.ndarray:
        """True seconds of every unit of the job on this attempt's slot (for the ones run and the rest)."""
        return truth_seconds[self.job.rows] * self.factor
