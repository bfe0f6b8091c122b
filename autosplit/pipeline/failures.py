"""How a finished job attempt is classified, modelled on CRAB3's RetryJob table (crab3.md §3.3).

The postjob looks at the job's return value (``$RETURN``: the wrapper's exit code, or DAGMan's negative
codes) and at the report, and picks one of:

=================  ===================================================================  ==================
class              meaning                                                              what happens
=================  ===================================================================  ==================
``ok``             the job ran and reported (success or soft stop)                      units done, rest
                                                                                        back to pending
``wall-time``      stopped at the hard limit (wrapper SIGTERM/SIGKILL, batch removal)   finished units
                                                                                        done, rest back to
                                                                                        pending; a unit
                                                                                        cut off mid-way
                                                                                        re-runs alone at
                                                                                        once
``unit-failure``   the user code failed on a unit the report names                      that unit blamed,
                                                                                        all back to
                                                                                        pending (no retry)
``rejected``       the job left a report that cannot be trusted (corrupt, claims units  units back to
                   it was not given)                                                    pending, reason
                                                                                        kept (no retry)
``recoverable``    anything else that may pass on a second try (no report, user error   retry the job
                   without a culprit, signals, submit failures)                         while retries
                                                                                        remain
``fatal``          the job cannot run at all (bad spec, payload not startable)          node fails
=================  ===================================================================  ==================
"""

from __future__ import annotations

from dataclasses import dataclass

from autosplit.jobreport import JobReport
from autosplit.pipeline.wrapper import EXIT_HARD_KILLED, EXIT_NO_REPORT, EXIT_OK, EXIT_WRAPPER_ERROR
from autosplit.worker import EXIT_USER_ERROR

RETURN_SUBMIT_FAILED = -1001
RETURN_JOB_REMOVED = -1002
RETURN_PRE_FAILED = -1004


@dataclass(frozen=True)
class Verdict:
    """The class of one attempt and a one-line reason."""

    kind: str
    reason: str
    blamed: tuple[tuple[int, int], ...] = ()


def describe_return(code: int) -> str:
    names = {
        EXIT_OK: "success",
        EXIT_USER_ERROR: "user code failed",
        EXIT_NO_REPORT: "payload left no valid report",
        EXIT_HARD_KILLED: "killed at the hard limit",
        EXIT_WRAPPER_ERROR: "the wrapper could not run the job",
        RETURN_SUBMIT_FAILED: "submission failed",
        RETURN_JOB_REMOVED: "job removed by the batch system",
        RETURN_PRE_FAILED: "PRE script failed",
    }
    if code in names:
        return names[code]
    if code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


def classify(
    return_code: int, report: JobReport | None, report_problem: str | None, report_exists: bool = False
) -> Verdict:
    """Classify one attempt from ``$RETURN`` and its report (``None`` with ``report_problem`` when unusable;
    ``report_exists`` tells a corrupt report from a missing one)."""
    written_by_payload = report is not None and report.meta.get("report_source") is None
    if report is not None and report.hard_killed:
        cut = report.meta.get("in_progress_unit")
        blamed = ((int(cut[0]), int(cut[1])),) if isinstance(cut, list | tuple) and len(cut) == 2 else ()
        return Verdict("wall-time", report.exit_message or describe_return(EXIT_HARD_KILLED), blamed)
    if return_code == RETURN_JOB_REMOVED:
        return Verdict("wall-time", describe_return(return_code))
    if return_code == EXIT_WRAPPER_ERROR:
        return Verdict("fatal", report_problem or describe_return(return_code))
    if report is None and report_exists:
        return Verdict("rejected", f"report rejected: {report_problem}")
    if report is None:
        reason = describe_return(return_code)
        return Verdict(
            "recoverable", f"{reason}; report rejected: {report_problem}" if report_problem else reason
        )
    if return_code == EXIT_OK and report.exit_code == 0 and written_by_payload:
        return Verdict("ok", "soft stop" if report.soft_stopped else "success")
    if report.exit_code == EXIT_USER_ERROR or return_code == EXIT_USER_ERROR:
        culprit = report.meta.get("failed_unit")
        message = report.exit_message or describe_return(EXIT_USER_ERROR)
        if isinstance(culprit, list | tuple) and len(culprit) == 2:
            return Verdict("unit-failure", message, ((int(culprit[0]), int(culprit[1])),))
        return Verdict("recoverable", message)
    return Verdict("recoverable", report.exit_message or describe_return(return_code))
