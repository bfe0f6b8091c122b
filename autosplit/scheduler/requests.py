"""What the scheduler hands out: one :class:`JobRequest` per job to start now."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class JobRequest:
    """A job the driver should start now, on one free slot.

    Attributes
    ----------
    job_id:
        Unique name of the job (letters, digits, ``-``); the job's report must carry it as ``job_id``.
    stage:
        ``"probe"`` (measures the cost; a soft stop is expected), ``"processing"`` (units never handed out
        before) or ``"tail-K"`` (units handed back K times by soft stops, kills or failures).
    rows:
        Unit rows of the scheduler's dataset (positions in ``dataset.units``, int64), in the order the job
        should process them.
    soft_limit_seconds:
        Payload seconds after which the job stops at the next unit boundary and reports; ``None`` for none
        (the last tail, and units run alone). Payload seconds count from the start of the job's own work
        (after whatever the slot does before it), as the report's ``wall_seconds`` does.
    hard_limit_seconds:
        Payload seconds after which the job is killed (SIGTERM, then SIGKILL ``grace_seconds`` later). A
        bulk processing or tail job's is the wall-time limit (``max_job_seconds``) plus one
        ``grace_seconds`` (with ``kill_at_wall``); a unit run alone gets at least twice what a kill (or a
        loss of its job alone) saw it take; a probe's leaves room for a slow unit past the probe's soft limit.
    predicted_seconds:
        Predicted mean payload seconds (per-job set-up included); ``None`` for probes.
    alone:
        True for a unit run by itself: it was named as the cause of a failure, cut off by a kill, lost with
        its job twice or with a job that ran far past its prediction, or is predicted too long to share a
        job.
    meta:
        Free-form details (the job's predicted upper quantile, its tail level, and the ``site`` that
        ``next_jobs`` was given, for which the job was sized: run it there).
    """

    job_id: str
    stage: str
    rows: np.ndarray
    soft_limit_seconds: float | None
    hard_limit_seconds: float
    predicted_seconds: float | None = None
    alone: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_units(self) -> int:
        return int(self.rows.size)

    def __repr__(self) -> str:
        soft = "none" if self.soft_limit_seconds is None else f"{self.soft_limit_seconds:.0f}s"
        predicted = "" if self.predicted_seconds is None else f", predicted {self.predicted_seconds:.0f}s"
        return (
            f"JobRequest({self.job_id!r}, {self.stage}, {self.n_units} unit(s), soft {soft}, "
            f"hard {self.hard_limit_seconds:.0f}s{predicted})"
        )
