"""The HTCondor backend: submit a DAG with ``htcondor2`` and control it through the schedd.

Everything up to the pool is done without one: the DAG text and submit descriptions are files, and the
schedd is contacted first, so with no reachable schedd the submission stops with a clear message before
anything is written outside the task directory (``Submit.from_dag`` writes ``<dag>.condor.sub`` next to
the DAG, inside the task directory).

* DAGMan runs in the DAG's directory (its ``initialdir``), never in the caller's: its scripts see the
  task, not whatever the submitting shell's directory holds.
* :func:`submit_dag` with ``resume=True`` lets DAGMan run the newest rescue DAG (``-AutoRescue 1``
  without ``-force``): nodes done before are not run again.
* :func:`act` checks the schedd's answer and raises :class:`CondorError` when nothing was acted on.
* :func:`dagman_job`, :func:`task_jobs`: the DAGMan job and the task's node jobs from ``Schedd.query``.
* :func:`stop_jobs`: ``autosplit kill --jobs`` sets ``AutosplitStopRequested`` on the chosen jobs; their
  job-side wrapper reads it over chirp and stops at the next unit boundary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autosplit._condor import condor_module
from autosplit.errors import AutosplitError

JOB_STATUS = {
    1: "idle",
    2: "running",
    3: "removed",
    4: "completed",
    5: "held",
    6: "transferring",
    7: "suspended",
}
JOB_PROJECTION = [
    "ClusterId",
    "ProcId",
    "JobStatus",
    "AutosplitNode",
    "AutosplitStage",
    "AutosplitUnitsDone",
    "AutosplitEventsDone",
    "AutosplitProgressTime",
    "AutosplitSite",
    "AutosplitStopRequested",
    "HoldReason",
    "HoldReasonCode",
    "HoldReasonSubCode",
    "RemoteHost",
    "JobCurrentStartDate",
    "EnteredCurrentStatus",
    "DAGManJobId",
]


class CondorError(AutosplitError):
    """No schedd can be reached, or the schedd refused an action."""


def _htcondor2(purpose: str) -> Any:
    return condor_module("htcondor2", purpose)


def _quote(text: str) -> str:
    """A ClassAd string literal (never a hand-built one from user data)."""
    return condor_module("classad2", "talking to the schedd").quote(str(text))


def _schedd() -> Any:
    htcondor2 = _htcondor2("the condor backend")

    try:
        schedd = htcondor2.Schedd()
    except Exception as exc:  # htcondor2.HTCondorException, without importing the class eagerly
        raise CondorError(
            f"no HTCondor schedd is reachable ({' '.join(str(exc).split())}); use --backend local on a "
            "machine without a pool"
        ) from None
    return schedd


def dag_submit_description(
    dag: str | os.PathLike[str], options: dict[str, Any] | None = None, *, resume: bool = False
) -> Any:
    """``htcondor2.Submit.from_dag`` for the DAG (writes ``<dag>.condor.sub``), run in the DAG's directory.

    A new DAG is submitted with ``force`` (files of an earlier submission are overwritten); ``resume``
    drops the old ``.condor.sub`` instead and lets DAGMan pick up the newest rescue DAG."""
    htcondor2 = _htcondor2("submitting a DAG to HTCondor")

    dag = Path(dag).resolve()
    opts = dict(options or {})
    if resume:
        Path(f"{dag}.condor.sub").unlink(missing_ok=True)
    else:
        opts["force"] = True
    submit = htcondor2.Submit.from_dag(str(dag), opts)
    submit["initialdir"] = str(dag.parent)
    return submit


def submit_dag(
    dag: str | os.PathLike[str],
    *,
    max_jobs: int | None = None,
    batch_name: str | None = None,
    resume: bool = False,
    attributes: dict[str, str] | None = None,
) -> int:
    """Submit the DAG to the local schedd; returns the DAGMan job's cluster id.

    ``max_jobs`` (the task's ``[backend] max_jobs``) caps submitted node jobs; None: no cap (a pool has
    no per-host limit). ``attributes``: extra ``My.*`` attributes of the DAGMan job (values are
    ClassAd expressions)."""
    schedd = _schedd()  # first: fail before writing anything
    options: dict[str, Any] = {"maxpost": 10, "maxpre": 10}
    if max_jobs:
        options["maxjobs"] = int(max_jobs)
    if batch_name:
        options["batch-name"] = batch_name
    submit = dag_submit_description(dag, options, resume=resume)
    for key, value in (attributes or {}).items():
        submit[f"My.{key}"] = value
    try:
        return int(schedd.submit(submit).cluster())
    except Exception as exc:  # noqa: BLE001 - the schedd's refusal, one line
        raise CondorError(f"the schedd refused the DAG {dag}: {' '.join(str(exc).split())}") from None


def act(cluster: int, action: str, reason: str = "autosplit") -> dict[str, Any]:
    """Hold, release or remove the DAGMan job (and so its node jobs); :class:`CondorError` unless the
    schedd acted on it."""
    htcondor2 = _htcondor2("controlling a DAG on HTCondor")

    actions = {
        "hold": htcondor2.JobAction.Hold,
        "release": htcondor2.JobAction.Release,
        "remove": htcondor2.JobAction.Remove,
    }
    if action not in actions:
        raise CondorError(f"unknown action {action!r}; one of {', '.join(actions)}")
    try:
        result = dict(_schedd().act(actions[action], f"ClusterId == {int(cluster)}", reason))
    except CondorError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CondorError(
            f"the schedd refused to {action} cluster {cluster}: {' '.join(str(exc).split())}"
        ) from None
    if int(result.get("TotalSuccess", 0)) < 1:
        why = {
            "TotalNotFound": "no such job",
            "TotalPermissionDenied": "permission denied",
            "TotalBadStatus": "the job is in the wrong state",
            "TotalAlreadyDone": "already done",
            "TotalError": "error",
        }
        reasons = [text for key, text in why.items() if int(result.get(key, 0))] or ["no job matched"]
        raise CondorError(f"could not {action} DAGMan job {cluster}: {', '.join(reasons)}")
    return result


def dagman_job(cluster: int) -> dict[str, Any] | None:
    """The DAGMan job's state in the queue (``JobStatus``, its name), or None when it left the queue."""
    ads = _schedd().query(
        constraint=f"ClusterId == {int(cluster)}", projection=["ClusterId", "JobStatus", "HoldReason"]
    )
    if not ads:
        return None
    ad = ads[0]
    status = int(ad.get("JobStatus", 0))
    return {
        "cluster": int(cluster),
        "status": JOB_STATUS.get(status, str(status)),
        "hold_reason": ad.get("HoldReason"),
    }


def dag_is_active(cluster: int | str | None) -> bool:
    """True while the DAGMan job is in the queue and not removed or completed."""
    if not cluster:
        return False
    job = dagman_job(int(cluster))
    return job is not None and job["status"] not in ("removed", "completed")


def task_jobs(task_name: str) -> list[dict[str, Any]]:
    """The task's node jobs in the queue (idle, running, held), as plain dicts."""
    ads = _schedd().query(constraint=f"AutosplitTask == {_quote(task_name)}", projection=JOB_PROJECTION)
    jobs = []
    for ad in ads:
        status = int(ad.get("JobStatus", 0))
        job = {key: _plain(ad.get(key)) for key in JOB_PROJECTION if ad.get(key) is not None}
        job["state"] = JOB_STATUS.get(status, str(status))
        jobs.append(job)
    return jobs


def _plain(value: Any) -> Any:
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def stop_jobs(task_name: str, nodes: list[str]) -> list[str]:
    """Ask the chosen node jobs to stop at their next unit boundary; returns the nodes the schedd marked."""
    htcondor2 = _htcondor2("controlling jobs on HTCondor")
    schedd = _schedd()
    marked = []
    for node in nodes:
        constraint = (
            f"AutosplitTask == {_quote(task_name)} && AutosplitNode == {_quote(node)} && JobStatus =!= 3"
        )
        try:
            # SetDirty (condor_qedit -forward): the schedd forwards the edit to the running job's shadow,
            # where the job's chirp get_job_attr reads it; a plain edit reaches a running job only at restart.
            schedd.edit(
                constraint, "AutosplitStopRequested", "true", flags=htcondor2.TransactionFlag.SetDirty
            )
        except Exception:  # noqa: BLE001 - htcondor2 raises when no job matched (the node is not in the queue)
            continue
        marked.append(node)
    return marked


def remove_node_jobs(task_name: str, nodes: list[str], reason: str) -> list[str]:
    """Remove idle or held node jobs outright (they have not started; nothing to stop cleanly)."""
    htcondor2 = _htcondor2("controlling jobs on HTCondor")
    schedd = _schedd()
    removed = []
    for node in nodes:
        constraint = (
            f"AutosplitTask == {_quote(task_name)} && AutosplitNode == {_quote(node)} && "
            "(JobStatus == 1 || JobStatus == 5)"
        )
        result = dict(schedd.act(htcondor2.JobAction.Remove, constraint, reason))
        if int(result.get("TotalSuccess", 0)):
            removed.append(node)
    return removed


def _finalize_killed_task(task: Any) -> None:
    """Close a killed task whose DAGMan left the queue without running its FINAL node.

    DAGMan 25.14 can die on removal (``Assertion ERROR on (! _finalNodeRun)`` when a POST script ends in
    the cycle that starts FINAL); the ledger then never hears that the task ended. ``finalize`` is
    idempotent, so running it here, once the schedd no longer has the DAG, is safe.
    """
    with task.ledger() as ledger:
        killed = ledger.get_meta("killed") is not None
        finished = ledger.get_meta("finished") is not None
    if killed and not finished:
        from autosplit.pipeline.finalize import run_finalize

        run_finalize(task, 4)


def backend_state(task: Any) -> dict[str, Any]:
    """``status``'s backend block on condor: the DAGMan job, the node jobs per stage and state, and the
    running jobs with the progress they published over chirp (best effort: no schedd, no live part)."""
    with task.ledger() as ledger:
        cluster = ledger.get_meta("condor_cluster")
    out: dict[str, Any] = {"kind": "condor", "running": False, "pid": None, "cluster": None}
    if not cluster:
        return out
    out["cluster"] = int(cluster)
    try:
        dagman = dagman_job(int(cluster))
        jobs = task_jobs(task.name) if dagman is not None else []
    except Exception as exc:  # noqa: BLE001 - CondorError, a schedd that went away: status still works
        out["schedd_error"] = " ".join(str(exc).split())
        return out
    out["dagman"] = dagman["status"] if dagman else "gone"
    if dagman is None:
        _finalize_killed_task(task)
    out["running"] = dagman is not None and dagman["status"] not in ("removed", "completed")
    per_stage: dict[str, dict[str, int]] = {}
    running, held = [], []
    for job in jobs:
        stage = str(job.get("AutosplitStage", "?"))
        per_stage.setdefault(stage, {})
        per_stage[stage][job["state"]] = per_stage[stage].get(job["state"], 0) + 1
        entry = {
            "node": job.get("AutosplitNode"),
            "stage": stage,
            "job_id": f"{job.get('ClusterId')}.{job.get('ProcId')}",
            "state": job["state"],
        }
        if job["state"] == "running":
            entry.update(
                units_done=int(job.get("AutosplitUnitsDone") or 0),
                events_done=int(job.get("AutosplitEventsDone") or 0),
                site=job.get("AutosplitSite") or None,
                progress_time=job.get("AutosplitProgressTime"),
                started=job.get("JobCurrentStartDate"),
                stop_requested=bool(job.get("AutosplitStopRequested")),
            )
            running.append(entry)
        elif job["state"] == "held":
            entry["hold_reason"] = job.get("HoldReason")
            held.append(entry)
    out["jobs_by_stage"] = per_stage
    out["running_jobs"] = sorted(running, key=lambda j: str(j["node"]))
    out["held_jobs"] = held
    return out


def _node_events(event_log: str | os.PathLike[str], node: str, kinds: tuple[str, ...]) -> list[Any]:
    """The events of ``kinds`` (``htcondor2.JobEventType`` names) of ``node``'s jobs in the task's job
    event log, in log order (best effort: a log being written is read as far as it goes)."""
    htcondor2 = _htcondor2("reading the job event log")
    path = Path(event_log)
    if not path.exists():
        return []
    wanted = {getattr(htcondor2.JobEventType, kind) for kind in kinds}
    clusters: set[int] = set()
    found: list[Any] = []
    try:
        for event in htcondor2.JobEventLog(str(path)).events(stop_after=0):
            kind = event.type
            if kind == htcondor2.JobEventType.SUBMIT:
                notes = event.get("StructuredNotes")
                name = notes.get("DAGNodeName") if notes is not None and hasattr(notes, "get") else None
                if name == node or str(event.get("LogNotes", "")).strip() == f"DAG Node: {node}":
                    clusters.add(event.cluster)
                    if kind in wanted:
                        found.append(event)
            elif kind in wanted and event.cluster in clusters:
                found.append(event)
    except Exception:  # noqa: BLE001 - a log being written: best effort
        pass
    return found


def hold_reason(event_log: str | os.PathLike[str], node: str) -> str | None:
    """The reason of the last hold of ``node``'s job in the task's job event log (None if it was never
    held): the postjob names it when a held job was removed, and status shows held jobs with it."""
    held = _node_events(event_log, node, ("JOB_HELD",))
    if not held:
        return None
    reason = str(held[-1].get("HoldReason", "")) or "held"
    code = held[-1].get("HoldReasonCode")
    return f"{reason} (hold code {code})" if code is not None else reason


#: Events that end a job's run on its slot.
_RUN_ENDS = ("JOB_HELD", "JOB_EVICTED", "JOB_ABORTED", "JOB_TERMINATED", "SHADOW_EXCEPTION")


def last_run(event_log: str | os.PathLike[str], node: str, now: float) -> float | None:
    """Seconds ``node``'s latest job ran in its last run, from the job event log: from its last EXECUTE
    event to the first event after it that ended the run (held, evicted, aborted, terminated, shadow
    exception), or to ``now`` (seconds since the epoch) when none is logged yet. None when that job never
    began executing: only the node's latest submitted job counts, so a retry that never ran is not given an
    earlier attempt's start.

    The postjob tells the scheduler how long a job that left no report ran, so time spent waiting in the
    queue or held does not count as time its units ran."""
    htcondor2 = _htcondor2("reading the job event log")
    events = _node_events(event_log, node, ("SUBMIT", "EXECUTE", *_RUN_ENDS))
    submitted = [event.cluster for event in events if event.type == htcondor2.JobEventType.SUBMIT]
    if not submitted:
        return None
    ends = {getattr(htcondor2.JobEventType, kind) for kind in _RUN_ENDS}
    start = end = None
    for event in events:
        if event.cluster != submitted[-1]:
            continue
        if event.type == htcondor2.JobEventType.EXECUTE:
            start, end = float(event.timestamp), None
        elif start is not None and end is None and event.type in ends:
            end = float(event.timestamp)
    if start is None:
        return None
    return max((end if end is not None else float(now)) - start, 0.0)
