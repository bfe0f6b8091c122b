"""The HTCondor backend: submit a DAG with ``htcondor2`` and control it through the schedd.

Everything up to the pool is done without one: the DAG text and submit descriptions are files, and the
schedd is contacted first, so with no reachable schedd the submission stops with a clear message before
anything is written outside the task directory (``Submit.from_dag`` writes ``<dag>.condor.sub`` next to
the DAG, inside the task directory).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autosplit._condor import condor_module
from autosplit.errors import AutosplitError


class CondorError(AutosplitError):
    """No schedd can be reached, or the schedd refused an action."""


def _htcondor2(purpose: str) -> Any:
    return condor_module("htcondor2", purpose)


def _schedd() -> Any:
    htcondor2 = _htcondor2("the condor backend")

    try:
        return htcondor2.Schedd()
    except Exception as exc:  # htcondor2.HTCondorException, without importing the class eagerly
        raise CondorError(
            f"no HTCondor schedd is reachable ({' '.join(str(exc).split())}); use --backend local on a "
            "machine without a pool"
        ) from None


def dag_submit_description(dag: str | os.PathLike[str], options: dict[str, Any] | None = None) -> Any:
    """``htcondor2.Submit.from_dag`` for the DAG (writes ``<dag>.condor.sub``)."""
    htcondor2 = _htcondor2("submitting a DAG to HTCondor")

    opts = {"force": True, **(options or {})}
    return htcondor2.Submit.from_dag(str(Path(dag)), opts)


def submit_dag(
    dag: str | os.PathLike[str], *, max_jobs: int | None = None, batch_name: str | None = None
) -> int:
    """Submit the DAG to the local schedd; returns the DAGMan job's cluster id."""
    schedd = _schedd()  # first: fail before writing anything
    options: dict[str, Any] = {"maxpost": 10, "maxpre": 10}
    if max_jobs:
        options["maxjobs"] = max_jobs
    if batch_name:
        options["batch-name"] = batch_name
    submit = dag_submit_description(dag, options)
    return int(schedd.submit(submit).cluster())


def act(cluster: int, action: str, reason: str = "autosplit") -> dict[str, Any]:
    """Hold, release or remove the DAGMan job (and so its node jobs)."""
    htcondor2 = _htcondor2("controlling a DAG on HTCondor")

    actions = {
        "hold": htcondor2.JobAction.Hold,
        "release": htcondor2.JobAction.Release,
        "remove": htcondor2.JobAction.Remove,
    }
    if action not in actions:
        raise CondorError(f"unknown action {action!r}; one of {', '.join(actions)}")
    result = _schedd().act(actions[action], str(cluster), (reason, 0))
    return dict(result)
