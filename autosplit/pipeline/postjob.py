"""``python -I -m autosplit.pipeline.postjob TASK NODE $RETURN $RETRY $MAX_RETRIES`` — every job's POST script.

It reads the job's report, checks it against the job's assignment in the ledger (a report is untrusted
input: it may only speak of the job's own units), classifies the attempt
(:mod:`autosplit.pipeline.failures`), commits the outputs of an accepted attempt, and hands the outcome to
the task's scheduler (:meth:`autosplit.Scheduler.job_finished` / :meth:`~autosplit.Scheduler.job_failed`),
whose decisions — units done, units back to pending for the next free chain node, the unit cut off by a
kill or blamed for a failure set to run alone, units given up on quarantined — are recorded in the ledger in
one transaction:

* ``ok`` / ``soft-stopped`` / ``wall-time``: the units the job processed and committed are done; the rest go
  back (a report the wrapper rebuilt from the progress journal after a kill counts no unit as done: their
  outputs were never written, but their timings still teach the cost model);
* ``unit-failure``: the unit the user code failed on is blamed, the rest go back;
* ``failed`` (a report with an error and no culprit), ``rejected`` (a report that cannot be trusted),
  ``lost`` (no report): the units go back with one more crash each;
* ``killed`` by the user (``autosplit kill --jobs``) with no report: the units of its last checkpoint are
  done, the rest go back as they were (:meth:`~autosplit.Scheduler.job_cancelled`, or a soft stop at the
  checkpoint: no crash, no loss of the pool).

Exit codes (CRAB3's, kept): 0 accounted for, 2 fatal (a node this task does not know), 3 abort the DAG
(most of a stage's jobs failed), 4 defer (stage-out still in flight: DAGMan re-runs this script later; it
never sleeps holding a POST slot). A job that failed is not retried on the same node: its units are bound
again by the next chain node that asks. The script is idempotent: a (node, attempt) already decided
returns the stored decision. ``$RETURN`` may be negative (DAGMan's codes for signals and removals).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass

# One BLAS thread in this script (it does no linear algebra): numpy otherwise starts one per core when it is
# imported, about 0.06 CPU-s of every POST script. Set before anything below imports numpy.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import msgspec

from autosplit.jobreport import JobReport, JobReportError
from autosplit.ledger import Ledger
from autosplit.pipeline.failures import Verdict, classify, describe_return
from autosplit.pipeline.outputs import OutputCommitError, commit_outputs, discard_outputs, output_relpath
from autosplit.pipeline.scheduling import session
from autosplit.pipeline.stages import ABORT, FATAL
from autosplit.pipeline.taskdir import TaskDir
from autosplit.pipeline.wrapper import EXIT_NO_REPORT
from autosplit.worker import checkpoint_path

OK, RETRY, DEFER = 0, 1, 4


@dataclass
class PostjobResult:
    decision: int
    outcome: str
    message: str


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


def _from_payload(report: JobReport) -> bool:
    """True for a report the user's code wrote (its outputs cover its units), not one rebuilt from the
    progress journal after a kill."""
    return report.meta.get("report_source") is None


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
        if job["state"] != "planned":  # ended without this attempt (its node was given up on): commit nothing
            return PostjobResult(
                OK, "duplicate", f"job {node} already ended ({job['outcome']}); nothing kept"
            )
        assignment = ledger.job_assignment(node)
    report, problem = _read_report(task, node, retry, assignment)
    verdict = classify(return_code, report, problem, task.archived_report(node, retry).exists())
    ran = None
    if report is None and task.config.backend.kind == "condor":  # a held job removed: say why it was held
        from autosplit.backends.condor import hold_reason, last_run

        held = hold_reason(task.event_log, node)
        if held:
            verdict = Verdict(verdict.kind, f"{verdict.reason}; the job was held: {held}")
        ran = last_run(task.event_log, node, time.time())
    checkpoint = None
    if report is None or not _from_payload(report):
        checkpoint = _commit_checkpoint(task, node, retry, assignment)
    committed = True
    if (
        verdict.kind in ("ok", "wall-time")
        and report is not None
        and report.outputs
        and _from_payload(report)
    ):
        if task.config.output.stage_out == "aso":
            waiting, verdict = _transfers(task, node, retry, report, verdict)
            if waiting is not None:
                return waiting
        else:
            try:
                commit_outputs(report, task.output_dir(node), task.destination, node)
            except OutputCommitError as exc:
                verdict = Verdict("recoverable", f"stage-out failed: {exc}")
            except OSError as exc:  # the destination is full, read-only, ...
                verdict = Verdict("recoverable", f"stage-out failed: {exc.strerror or exc}")
        committed = verdict.kind in ("ok", "wall-time")
    if (
        task.config.output.stage_out != "aso"
        and checkpoint is None
        and not (
            committed
            and verdict.kind in ("ok", "wall-time")
            and report is not None
            and report.outputs
            and _from_payload(report)
        )
    ):
        # Nothing of this attempt is committed: what an earlier attempt of the node left at the destination
        # (its postjob killed between commit and record) must not stay there, unaccounted for.
        discard_outputs(task.destination, node)
    with session(task) as s:
        recorded = s.ledger.recorded_attempt(node, retry)
        if recorded is not None:
            return PostjobResult(recorded.decision, recorded.outcome, recorded.message)
        result = _account(
            s, s.ledger.job(node), retry, return_code, report, verdict, committed, checkpoint, ran
        )
        s.save()
        if result.outcome in _FAILED_OUTCOMES:
            result = _maybe_abort(task, s.ledger, job["stage"], node, retry, result)
    _log(
        task,
        f"{node} attempt {retry}: $RETURN={return_code} -> {result.outcome} (exit {result.decision}): "
        f"{result.message}",
    )
    return result


_FAILED_OUTCOMES = ("failed", "unit-failure", "rejected", "lost")


def _read_checkpoint(task: TaskDir, node: str, attempt: int, assignment: list[tuple[int, int]]):
    """The attempt's last checkpoint report (archived as report.<attempt>.checkpoint.json), or None."""
    live = checkpoint_path(task.report_path(node))
    archived = task.archived_report(node, attempt).with_suffix(".checkpoint.json")
    if live.exists() and not archived.exists():
        try:
            written_by = JobReport.from_json(live).attempt
        except JobReportError:
            written_by = attempt  # archived, so that the check below says why it is ignored
        if written_by != attempt:  # an earlier attempt's, left on the access point (condor uploads)
            _log(task, f"{node} attempt {attempt}: checkpoint of attempt {written_by} ignored")
            return None
        shutil.copyfile(live, archived)
    if not archived.exists():
        return None
    try:
        report = JobReport.from_json(archived).validate(assignment)
    except JobReportError as exc:
        _log(task, f"{node} attempt {attempt}: checkpoint ignored: {exc}")
        return None
    if report.attempt != attempt:
        return None
    return report if report.meta.get("checkpoint") and report.units and report.exit_code == 0 else None


def _commit_checkpoint(task: TaskDir, node: str, attempt: int, assignment: list[tuple[int, int]]):
    """Commit the outputs of a lost or killed attempt's last checkpoint; returns the checkpoint report when
    its units may be credited (outputs committed), else None. Not with asynchronous stage-out (a
    checkpoint's outputs are not registered for transfer)."""
    if task.config.output.stage_out == "aso":
        return None
    checkpoint = _read_checkpoint(task, node, attempt, assignment)
    if checkpoint is None:
        return None
    try:
        commit_outputs(checkpoint, task.output_dir(node), task.destination, node)
    except OutputCommitError as exc:
        _log(task, f"{node} attempt {attempt}: checkpoint outputs not committed: {exc}")
        return None
    return checkpoint


def _account(
    s,
    job: dict,
    retry: int,
    return_code: int,
    report,
    verdict: Verdict,
    committed: bool,
    checkpoint=None,
    ran: float | None = None,
):
    """Hand the attempt to the scheduler and record its decisions in the ledger. ``checkpoint``: the last
    checkpoint of an attempt that was lost or killed, its outputs committed: its units are done.
    ``ran``: seconds a job that left no report ran in its last run (the event log), if known."""
    node = job["node"]
    sched = s.scheduler
    now = time.time()
    killed = bool(job["kill_requested"])
    task = s.task
    details = {
        "exit_code": report.exit_code if report else return_code,
        "site": report.site if report else None,
        # Without a report: the seconds it ran in its last run on a slot (the event log), if known.
        "wall_seconds": report.wall_seconds if report else ran,
        "cpu_seconds": report.cpu_seconds if report else None,
        "peak_rss_bytes": report.peak_rss_bytes if report else None,
        "events": report.total_events if report else None,
        "soft_stopped": report.soft_stopped if report else False,
        "hard_killed": (report.hard_killed if report else False) or verdict.kind == "wall-time",
        "report_path": str(task.archived_report(node, retry)) if report else None,
        "usable_report": report is not None
        and (report.has_unit_seconds or report.processing_seconds is not None),
        "elapsed_seconds": max(now - float(job["created"] or now), 0.0),
    }
    kind = verdict.kind
    saved = [(u["run"], u["lumi"]) for u in checkpoint.units] if checkpoint is not None else []
    if report is None and checkpoint is not None:
        outcome = "rejected" if kind == "rejected" else "lost"
        message = f"{verdict.reason}; {len(saved)} unit(s) kept from its last checkpoint"
        if killed:  # stopped by the user: a soft stop at its last checkpoint, nothing blamed
            ended = {
                "exit_code": 0,
                "exit_message": "stopped by the user",
                "soft_stopped": True,
                "hard_killed": False,
                "in_progress": None,
            }
        else:
            ended = {"exit_code": EXIT_NO_REPORT, "exit_message": verdict.reason}
        lost = msgspec.structs.replace(checkpoint, meta={}, unfinished=[], **ended)
        result = sched.job_finished(lost, now, done=saved)
        job_state = "failed"
    elif report is None and killed:
        # Stopped by the user: its units go back as they were. A user's kill says nothing of them or of the
        # pool (as a loss, a lone unit would be remembered as taking that long, or given up on).
        outcome, message = "killed", verdict.reason
        result = sched.job_cancelled(node, now)
        job_state = "killed"
    elif report is None:
        outcome = "rejected" if kind == "rejected" else "lost"
        message = verdict.reason
        if ran is not None:  # how long its units ran, not how long it waited in the queue or was held
            sched.job_started(node, now - ran)  # the scheduler judges it by now - start
        result = sched.job_failed(node, now, reason=message)
        job_state = "failed"
    else:
        # Units are credited only with this attempt's outputs committed. A failed payload (exit 80 after a
        # kill, a unit failure) may list units it processed, but nothing of it was staged out.
        credited = committed and kind in ("ok", "wall-time") and _from_payload(report)
        done = [(u["run"], u["lumi"]) for u in report.units] if credited else saved
        if kind in ("ok", "wall-time") and committed:
            failure = None
        elif kind == "unit-failure":
            failure = None  # the report names the culprit; the scheduler blames it
        else:
            failure = verdict.reason
        if failure is not None and report.exit_code == 0:
            report = msgspec.structs.replace(report, exit_code=1, exit_message=failure)
        result = sched.job_finished(report, now, done=done)
        if kind == "wall-time":
            outcome = "wall-time"
        elif kind == "ok":
            outcome = "soft-stopped" if report.soft_stopped else "ok"
        elif kind == "unit-failure":
            outcome = "unit-failure"
        else:
            outcome = "failed"
        message = verdict.reason
        job_state = "finished" if outcome in ("ok", "soft-stopped", "wall-time") else "failed"
    if killed:
        outcome, job_state = "killed", "killed"
    n_done, n_back = len(result.get("done", ())), len(result.get("returned", ()))
    if n_back:
        message = f"{message}; {n_back} unit(s) back to pending"
    record = s.ledger.record_outcome(
        node,
        retry,
        decision=OK,
        outcome=outcome,
        message=message,
        details=details,
        units=s.changes(),
        done=n_done,
        returned=n_back,
        job_state=job_state,
    )
    return PostjobResult(record.decision, record.outcome, record.message)


def _maybe_abort(
    task: TaskDir, ledger: Ledger, stage: str, node: str, retry: int, result: PostjobResult
) -> PostjobResult:
    """Abort the DAG when most of a stage's jobs failed: something is wrong with the code or the data, and
    running the rest would only waste the pool. The reason is kept for ``status``."""
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
    staged = _trusted_staged(task, node, retry, report, info.get("staged"))
    if staged is None:
        return None, Verdict("recoverable", "the job's stage-out records do not match its outputs (refused)")
    db = task.transfer_db
    if not info.get("admitted"):
        staged_root = task.temp_root / task.config.backend.site
        registration = register_outputs(
            db,
            task.name,
            node,
            retry,
            staged,
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


def _trusted_staged(task: TaskDir, node: str, retry: int, report: JobReport, staged) -> list | None:
    """The report's stage-out records, if each names what the ledger allows: destination
    ``<node>/<output name>`` for an output of this report, staged as ``<task>/<node>/<attempt>/<destination>``
    (as :func:`autosplit.pipeline.wrapper.stage_out` writes them). A report is untrusted: any other name
    (another job's file, a path outside the areas) refuses them all."""
    if not isinstance(staged, list) or not staged:
        return None
    out_dir = task.output_dir(node)
    try:
        allowed = {f"{node}/{output_relpath(o.name, out_dir).as_posix()}" for o in report.outputs}
    except OutputCommitError:
        return None
    for record in staged:
        if not isinstance(record, dict):
            return None
        dest = record.get("dest_path")
        if dest not in allowed or record.get("source_path") != f"{task.name}/{node}/{retry}/{dest}":
            return None
    return staged


def ensure_agent(task: TaskDir) -> int:
    """Start the task's stage-out agent unless one is running (its pid is kept in the task directory)."""
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


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``TASK NODE RETURN RETRY MAX_RETRIES``, the strings DAGMan passes (``RETURN`` may be
    negative)."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 5:
        print(
            "usage: python -m autosplit.pipeline.postjob TASK NODE RETURN RETRY MAX_RETRIES", file=sys.stderr
        )
        return FATAL
    task_dir, node, return_code, retry, max_retries = args
    try:
        code = int(return_code)
    except ValueError:
        code = -1  # DAGMan passes a number; anything else is a broken DAG line
    try:
        attempt, retries = int(retry), int(max_retries)
    except ValueError:
        attempt, retries = 0, 0
    result = run_postjob(TaskDir(task_dir), node, code, attempt, retries)
    print(f"postjob {node}: {describe_return(code)} -> {result.outcome}: {result.message}", file=sys.stderr)
    return result.decision


__all__ = ["ABORT", "DEFER", "OK", "RETRY", "PostjobResult", "main", "run_postjob"]


if __name__ == "__main__":
    sys.exit(main())
