"""Submit descriptions of job nodes, as ``htcondor2.Submit`` objects.

Time limits on HTCondor: the job gets its soft limit in the environment (``AUTOSPLIT_SOFT_LIMIT_SECONDS``;
the worker stops at the next unit boundary after it) and the hard limit as a ``periodic_remove`` on wall
time in the running state, with a reason the postjob recognises. The wrapper also enforces the hard limit
itself (SIGTERM, grace, SIGKILL) where no batch system does.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autosplit._condor import condor_module

HARD_LIMIT_REASON = "autosplit: wall time above the hard limit"


def hard_limit_expression(hard_limit_seconds: float) -> str:
    """ClassAd expression that is true once a running job has run longer than the hard limit (seconds)."""
    limit = int(round(hard_limit_seconds))
    return f"(JobStatus == 2) && (time() - EnteredCurrentStatus > {limit})"


def job_submit(
    *,
    node: str,
    python: str,
    spec_path: str | os.PathLike[str],
    report_path: str | os.PathLike[str],
    job_dir: str | os.PathLike[str],
    event_log: str | os.PathLike[str],
    soft_limit_seconds: float | None,
    hard_limit_seconds: float | None,
    grace_seconds: float,
    memory_mb: int,
    site: str,
    task: str,
    stage: str,
    batch_enforces_hard_limit: bool = False,
    batch_backstop: bool = True,
    stdout: str | os.PathLike[str] = "job.out",
    stderr: str | os.PathLike[str] = "job.err",
) -> Any:
    """The submit description of one job node: runs ``python -m autosplit wrapper SPEC``.

    ``batch_backstop`` adds the ``periodic_remove`` hard limit for HTCondor (the local executor runs the
    wrapper, which enforces the limit itself, and refuses policy expressions it cannot evaluate).
    """
    # htcondor2 for Submit (importing it sets CONDOR_CONFIG=/dev/null when unset)
    Submit = condor_module("htcondor2", "writing a job's submit description").Submit

    arguments = [
        "-m",
        "autosplit",
        "wrapper",
        str(spec_path),
        "--report",
        str(report_path),
        "--grace",
        f"{grace_seconds:g}",
        "--attempt",
        "$(RETRY)",
    ]
    if batch_enforces_hard_limit:
        arguments.append("--no-hard-limit")
    environment = {"AUTOSPLIT_SITE": site, "PYTHONUNBUFFERED": "1"}
    if soft_limit_seconds is not None:
        environment["AUTOSPLIT_SOFT_LIMIT_SECONDS"] = f"{soft_limit_seconds:.0f}"
    description = {
        "universe": "vanilla",
        "executable": str(python),
        "arguments": " ".join(arguments),
        "initialdir": str(Path(job_dir)),
        "output": str(stdout),
        "error": str(stderr),
        "log": str(event_log),
        "environment": '"' + " ".join(f"{k}={v}" for k, v in environment.items()) + '"',
        "request_memory": str(int(memory_mb)),
        "My.AutosplitTask": f'"{task}"',
        "My.AutosplitStage": f'"{stage}"',
        "My.AutosplitNode": f'"{node}"',
    }
    if hard_limit_seconds is not None and batch_backstop:
        # The batch system's limit sits behind the wrapper's own (hard limit + grace), as a backstop.
        backstop = hard_limit_seconds + grace_seconds + 60
        description["periodic_remove"] = hard_limit_expression(backstop)
        description["My.PeriodicRemoveReason"] = f'"{HARD_LIMIT_REASON}"'
        description["My.AutosplitHardLimitSeconds"] = f"{hard_limit_seconds:.0f}"
    return Submit(description)
