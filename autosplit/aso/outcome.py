"""What the postjob asks: are this job attempt's transfers finished, and how? Plus cancelling them.

:func:`job_transfer_outcome` is a pure read (safe to repeat: DAGMan re-runs postjobs after restarts) and
maps to the postjob exit codes (CRAB3's): 0 success, 1 recoverable (DAGMan retries the job), 2 fatal,
4 defer (``SCRIPT DEFER 4 <s>``: run again later without holding a POST slot).
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from autosplit.aso.db import TransferDB, using_db
from autosplit.aso.records import ACTIVE_STATES, State

POSTJOB_OK = 0
POSTJOB_RETRY = 1
POSTJOB_FATAL = 2
POSTJOB_DEFER = 4


class OutcomeKind(StrEnum):
    NONE = "none"  # nothing registered for this attempt
    IN_FLIGHT = "in_flight"
    DONE = "done"
    RECOVERABLE_FAILURE = "recoverable_failure"
    PERMANENT_FAILURE = "permanent_failure"


_EXIT_CODES = {
    OutcomeKind.NONE: POSTJOB_OK,
    OutcomeKind.DONE: POSTJOB_OK,
    OutcomeKind.IN_FLIGHT: POSTJOB_DEFER,
    OutcomeKind.RECOVERABLE_FAILURE: POSTJOB_RETRY,
    OutcomeKind.PERMANENT_FAILURE: POSTJOB_FATAL,
}


@dataclass(frozen=True)
class TransferOutcome:
    """State of one job attempt's transfers.

    Precedence: any permanent failure or killed transfer -> PERMANENT_FAILURE; else any recoverable failure
    (retries ran out) -> RECOVERABLE_FAILURE; else anything not final -> IN_FLIGHT; else DONE. A failure is
    reported at once, even while other files still move (the caller may :func:`kill_job_transfers` them).
    ``reason`` names the first failed file and why; ``oldest_registered_at`` (seconds since the epoch) lets
    the caller apply its own stage-out timeout.
    """

    kind: OutcomeKind
    files: int
    done: int
    in_flight: int
    failed: int
    killed: int
    bytes_total: int
    bytes_done: int
    reason: str | None
    oldest_registered_at: float | None

    @property
    def exit_code(self) -> int:
        """The postjob exit code for this outcome (0, 1, 2 or 4)."""
        return _EXIT_CODES[self.kind]

    @property
    def final(self) -> bool:
        return self.kind is not OutcomeKind.IN_FLIGHT

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["kind"] = self.kind.value
        out["exit_code"] = self.exit_code
        return out


def job_transfer_outcome(
    db: TransferDB | str | os.PathLike[str], task: str, job_id: str | int, attempt: int
) -> TransferOutcome:
    """The outcome of one job attempt's transfers (read-only; one query)."""
    with using_db(db, create=False) as handle:
        rows = handle.rows(task=task, job_id=job_id, attempt=attempt)
    done = [r for r in rows if r.state == State.DONE]
    active = [r for r in rows if r.state in ACTIVE_STATES]
    failed = [r for r in rows if r.state == State.FAILED]
    killed = [r for r in rows if r.state == State.KILLED]
    permanent = [r for r in failed if r.failure_kind == "permanent"] + killed
    recoverable = [r for r in failed if r.failure_kind != "permanent"]
    reason = None
    if not rows:
        kind = OutcomeKind.NONE
    elif permanent:
        kind = OutcomeKind.PERMANENT_FAILURE
        reason = _reason(permanent, "killed")
    elif recoverable:
        kind = OutcomeKind.RECOVERABLE_FAILURE
        reason = _reason(recoverable, "failed")
    elif active:
        kind = OutcomeKind.IN_FLIGHT
    else:
        kind = OutcomeKind.DONE
    return TransferOutcome(
        kind=kind,
        files=len(rows),
        done=len(done),
        in_flight=len(active),
        failed=len(failed),
        killed=len(killed),
        bytes_total=sum(r.size for r in rows),
        bytes_done=sum(r.size for r in done),
        reason=reason,
        oldest_registered_at=min((r.created_at for r in rows), default=None),
    )


def _reason(rows: list, default: str) -> str:
    first = rows[0]
    text = f"stage-out of {first.dest_path} failed: {first.failure_reason or default}"
    if len(rows) > 1:
        text += f" (and {len(rows) - 1} more file{'s' if len(rows) > 2 else ''})"
    return text


def kill_job_transfers(
    db: TransferDB | str | os.PathLike[str],
    task: str,
    job_id: str | int | None = None,
    attempt: int | None = None,
    *,
    reason: str = "killed",
) -> int:
    """Cancel the unfinished transfers of a task, a job, or one attempt (-> KILLED; idempotent).

    The agent then removes their temporary copies (freeing the site's temp budget). Returns rows changed.
    """
    with using_db(db, create=False) as handle:
        return handle.kill(task, job_id, attempt, reason=reason)
