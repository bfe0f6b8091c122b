"""``autosplit postjob TASK NODE $RETURN $RETRY $MAX_RETRIES`` — the POST script of every job node.

It reads the job's report, checks it against the job's assignment, classifies the attempt
(:mod:`autosplit.pipeline.failures`) and applies the verdict to the ledger in one transaction:

* ``ok`` / ``wall-time``: processed units become done; unfinished ones go back to pending for the next
  tail stage (in the last stage they are quarantined with the reason);
* ``unit-failure``: nothing is done, the culprit unit is blamed (the next tail runs it alone), the rest go
  back to pending;
* ``rejected`` (a corrupt report, or one claiming units the job was not given): the units go back to
  pending with the reason;
* ``recoverable``: while retries remain, exit 1 so DAGMan re-runs the job with the same units; after the
  last retry the units go back to pending with one more failure;
* ``fatal``: exit 2 (no retry), units back to pending.

Exit codes (CRAB3's, kept): 0 accounted for, 1 retry, 2 fatal, 3 abort the DAG, 4 defer (the job's
stage-out is still in flight: DAGMan re-runs this script later; it never sleeps holding a POST slot).
The script is idempotent: a (node, attempt) already decided returns the stored decision.
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass

from autosplit.jobreport import JobReport, JobReportError
from autosplit.ledger import Ledger
from autosplit.pipeline.failures import Verdict, classify, describe_return
from autosplit.pipeline.outputs import OutputCommitError, commit_outputs
from autosplit.pipeline.stages import ABORT, FATAL
from autosplit.pipeline.taskdir import TaskDir

OK, RETRY, DEFER = 0, 1, 4


@dataclass
class PostjobResult:
    decision: int
    outcome: str
    message: str


def last_stage(task: TaskDir, stage: str) -> bool:
    """True for the stage after which no tail follows (its leftovers are quarantined)."""
    max_tails = task.config.splitting.max_tails
    if stage.startswith("resubmit-"):
        return True
    if stage.startswith("tail-"):
        return int(stage.removeprefix("tail-")) >= max_tails
    return stage == "processing" and max_tails == 0


def _log(task: TaskDir, text: str) -> None:
    task.logs_dir.mkdir(parents=True, exist_ok=True)
    with open(task.logs_dir / "postjob.log", "a") as log:
        log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {text}\n")


def _read_report(task: TaskDir, node: str, attempt: int, assignment: list[tuple[int, int]]):
    """The attempt's report (archived as report.<attempt>.json) or (None, why it cannot be used)."""
    live, archived = task.report_path(node), task.archived_report(node, attempt)
    if live.exists() and not archived.exists():
        shutil.copyfile(live, archived)
    if not archived.exists():
        return None, "the job left no report"
    try:
        return JobReport.from_json(archived).validate(assignment), None
    except JobReportError as exc:
        return None, str(exc)


def run_postjob(task: TaskDir, node: str, return_code: int, retry: int, max_retries: int) -> PostjobResult:
    """Decide one job attempt; see the module docstring."""
    task.require()
    with task.ledger() as ledger:
        recorded = ledger.recorded_attempt(node, retry)
        if recorded is not None:
            return PostjobResult(recorded.decision, recorded.outcome, recorded.message)
        job = ledger.job(node)
        if job is None:
            return PostjobResult(FATAL, "unknown-node", f"node {node} is not a job of this task")
        assignment = ledger.job_assignment(node)
        report, problem = _read_report(task, node, retry, assignment)
        verdict = classify(return_code, report, problem, task.archived_report(node, retry).exists())
        result = _apply(task, ledger, job, retry, max_retries, return_code, report, verdict)
        if result.decision == OK and result.outcome in _FAILED_OUTCOMES:
            result = _maybe_abort(task, ledger, job["stage"], node, retry, result)
    if result.decision == DEFER:
        return result  # nothing decided yet: DAGMan runs this script again later
    _log(
        task,
        f"{node} attempt {retry}: $RETURN={return_code} -> {result.outcome} (exit {result.decision}): "
        f"{result.message}",
    )
    return result


def _apply(
    task: TaskDir,
    ledger: Ledger,
    job: dict,
    retry: int,
    max_retries: int,
    return_code: int,
    report: JobReport | None,
    verdict: Verdict,
) -> PostjobResult:
    node, stage = job["node"], job["stage"]
    final = last_stage(task, stage)
    killed = bool(job["kill_requested"])
    details = {
        "exit_code": report.exit_code if report else return_code,
        "site": report.site if report else None,
        "wall_seconds": report.wall_seconds if report else None,
        "cpu_seconds": report.cpu_seconds if report else None,
        "peak_rss_bytes": report.peak_rss_bytes if report else None,
        "events": report.total_events if report else None,
        "soft_stopped": report.soft_stopped if report else False,
        "hard_killed": (report.hard_killed if report else False) or verdict.kind == "wall-time",
        "report_path": str(task.archived_report(node, retry)) if report else None,
        # Reports with per-unit timing teach the cost model even when the job failed.
        "usable_report": report is not None
        and (verdict.kind in ("ok", "wall-time") or report.has_unit_seconds),
    }
    kind = verdict.kind
    if kind in ("ok", "wall-time") and report is not None and report.outputs:
        if task.config.output.stage_out == "aso":
            waiting, verdict = _transfers(task, node, retry, report, verdict)
            if waiting is not None:
                return waiting
        else:
            try:
                commit_outputs(report, task.output_dir(node), task.destination, node)
            except OutputCommitError as exc:
                verdict = Verdict("recoverable", f"stage-out failed: {exc}")
        if verdict.kind not in ("ok", "wall-time"):
            details["usable_report"] = report.has_unit_seconds
        kind = verdict.kind

    def close(decision: int, outcome: str, message: str, **change: object) -> PostjobResult:
        record = ledger.close_attempt(
            node, retry, decision=decision, outcome=outcome, message=message, details=details, **change
        )
        return PostjobResult(record.decision, record.outcome, record.message)

    if kind == "wall-time" and verdict.blamed and not killed:
        # The job was killed while processing one unit. Units only its progress journal lists have no
        # committed outputs, so they are not done; the cut-off unit re-runs alone at once (no soft limit,
        # the last tail's hard limit) as this node's retry, or later alone in a tail when no retry is left.
        cut = verdict.blamed[0]
        if retry < max_retries:
            rewrite_job_for_unit(task, node, cut)
            return close(
                RETRY, "rescue", f"{verdict.reason}; run {cut[0]} lumi {cut[1]} re-runs alone", keep=[cut]
            )
        return close(
            OK,
            "wall-time",
            f"{verdict.reason}; run {cut[0]} lumi {cut[1]} will run alone",
            blamed=verdict.blamed,
            quarantine_returned=final,
            final_job_state="finished",
        )
    if kind in ("ok", "wall-time"):
        done = [(u["run"], u["lumi"]) for u in report.units] if report and _from_payload(report) else []
        unfinished = int(job["n_units"]) - len(done)
        message = verdict.reason
        if unfinished:
            where = "unfinished after the last stage" if final else "unfinished, back to pending"
            message = f"{verdict.reason}; {unfinished} unit(s) {where}"
        outcome = "killed" if killed else ("soft-stopped" if report and report.soft_stopped else kind)
        return close(
            OK,
            outcome,
            message,
            done=done,
            quarantine_returned=final and not killed,
            final_job_state="killed" if killed else "finished",
        )
    if kind == "unit-failure" or killed:
        return close(
            OK,
            "killed" if killed else "unit-failure",
            verdict.reason,
            blamed=verdict.blamed,
            final_job_state="killed" if killed else "failed",
        )
    if kind == "rejected":
        return close(
            OK,
            "rejected",
            verdict.reason,
            count_failure=True,
            quarantine_returned=final,
            final_job_state="failed",
        )
    if kind == "fatal":
        return close(FATAL, "fatal", verdict.reason, count_failure=True, final_job_state="failed")
    if retry < max_retries:  # recoverable, and the same job may try again with the same units
        return close(RETRY, "retry", verdict.reason, returned="none")
    return close(
        OK,
        "failed",
        f"{verdict.reason} (after {retry + 1} attempt(s))",
        count_failure=True,
        quarantine_returned=final,
        final_job_state="failed",
    )


_FAILED_OUTCOMES = ("failed", "unit-failure", "rejected")


def _from_payload(report: JobReport) -> bool:
    """True for a report the user's code wrote (its outputs cover its units), not one rebuilt from the
    progress journal after a SIGKILL."""
    return report.meta.get("report_source") is None


def rewrite_job_for_unit(task: TaskDir, node: str, unit: tuple[int, int]) -> None:
    """Turn a job into a one-unit job without soft limit and with the last tail's hard limit (its next
    retry runs just that unit)."""
    from autosplit.pipeline.stages import write_submit
    from autosplit.worker import JobSpec

    spec = JobSpec.read(task.spec_path(node))
    for file in spec.files:
        file.units = [u for u in file.units if (u["run"], u["lumi"]) == tuple(unit)]
    spec.files = [f for f in spec.files if f.units]
    spec.soft_limit_seconds = None
    spec.hard_limit_seconds = 3.0 * task.config.target_seconds + task.config.grace_seconds
    spec.write(task.spec_path(node))
    write_submit(task, node, spec.stage, None, spec.hard_limit_seconds, task.config.limits.memory_mb)


def _maybe_abort(
    task: TaskDir, ledger: Ledger, stage: str, node: str, retry: int, result: PostjobResult
) -> PostjobResult:
    """Abort the DAG when most of a stage's jobs failed: something is wrong with the code or the data, and
    running the rest (and its tails) would only waste the pool. The reason is kept for ``status``."""
    limits = task.config.limits
    ended, failed = ledger.stage_failure_counts(stage)
    if ended < limits.abort_min_jobs or failed < limits.abort_fraction * ended:
        return result
    message = (
        f"{failed} of {ended} jobs of stage {stage} failed (last: {result.message}); the task is aborted"
    )
    ledger.escalate_attempt(node, retry, ABORT, message)
    ledger.set_meta(error=message)
    return PostjobResult(ABORT, result.outcome, message)


def _transfers(task: TaskDir, node: str, retry: int, report: JobReport, verdict: Verdict):
    """Asynchronous stage-out: (DEFER result, verdict) while transfers move, else (None, updated verdict)."""
    from autosplit.aso import OutcomeKind, job_transfer_outcome, kill_job_transfers, register_outputs

    info = report.meta.get("stage_out")
    if not isinstance(info, dict):
        return None, Verdict("recoverable", "the job's outputs were not staged out")
    db = task.transfer_db
    if not info.get("admitted"):
        staged_root = task.temp_root / task.config.backend.site
        registration = register_outputs(
            db,
            task.name,
            node,
            retry,
            info["staged"],
            temp_root=staged_root,
            destination_root=task.destination,
            source_site=task.config.backend.site,
            dest_site="destination",
            temp_budget_bytes=task.config.output.temp_budget_bytes,
        )
        if not registration.admitted:
            ensure_agent(task)
            return PostjobResult(DEFER, "deferred", "waiting for room in the site's temporary area"), verdict
    outcome = job_transfer_outcome(db, task.name, node, retry)
    if outcome.kind is OutcomeKind.IN_FLIGHT:
        age = time.time() - (outcome.oldest_registered_at or time.time())
        if age <= task.config.output.transfer_timeout:
            ensure_agent(task)
            message = f"{outcome.done}/{outcome.files} file(s) transferred"
            return PostjobResult(DEFER, "deferred", message), verdict
        kill_job_transfers(db, task.name, node, retry, reason="stage-out timed out")
        return None, Verdict("recoverable", f"stage-out timed out after {age:.0f} s")
    if outcome.kind is OutcomeKind.RECOVERABLE_FAILURE:
        return None, Verdict("recoverable", outcome.reason or "stage-out failed")
    if outcome.kind is OutcomeKind.PERMANENT_FAILURE:
        return None, Verdict("fatal", outcome.reason or "stage-out failed permanently")
    if outcome.kind is OutcomeKind.NONE:
        return None, Verdict("recoverable", "no transfer was registered for the job's outputs")
    return None, verdict


def ensure_agent(task: TaskDir) -> int:
    """Start the task's stage-out agent unless one is running (its pid is kept in the task directory)."""
    import os

    from autosplit.aso import spawn_agent

    pid_file = task.root / "transfers.agent.pid"
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
        return pid
    except (OSError, ValueError):
        pass
    (task.root / "transfers.stop").unlink(missing_ok=True)  # left by an earlier end of the task
    proc = spawn_agent(
        task.transfer_db,
        log_path=task.logs_dir / "aso-agent.log",
        until="stopped",
        stop_file=task.root / "transfers.stop",
    )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def main(task_dir: str, node: str, return_code: str, retry: str, max_retries: str) -> int:
    """Entry point used by the CLI; argument strings come straight from DAGMan."""
    try:
        code = int(return_code)
    except ValueError:
        code = -1  # DAGMan passes a number; anything else is a broken DAG line
    result = run_postjob(TaskDir(task_dir), node, code, int(retry), int(max_retries))
    print(f"postjob {node}: {describe_return(code)} -> {result.outcome}: {result.message}", file=sys.stderr)
    return result.decision


__all__ = ["ABORT", "DEFER", "OK", "RETRY", "PostjobResult", "main", "run_postjob"]
