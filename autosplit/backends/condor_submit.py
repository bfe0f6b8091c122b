"""Submit descriptions of condor jobs: no shared filesystem, sites, live progress.

A condor job gets everything by HTCondor file transfer (``should_transfer_files = YES``) and runs in the
execute host's scratch directory:

* in: the job spec (``spec.json``, written for the scratch directory: outputs in ``out/``, local input
  files by their transferred names), the user's code (``sandbox.tar.gz``), the job's local input files
  (``[backend] transfer_inputs``), and the executable ``autosplit-job.pyz`` (see
  :mod:`autosplit.pipeline.sandbox`), started by the execute host's ``python3``;
* out: ``report.json`` and ``out/`` come back into the job's directory of the task (``initialdir``),
  ``report.json`` by an explicit remap; stdout/stderr are the job's ``job.out``/``job.err``.

Sites: the job's ``DESIRED_Sites`` are the sites holding all of its files (else any of them), within the
whitelist and outside the blacklist; the job matches slots whose ``[backend] site_attribute`` (default
``GLIDEIN_CMSSite``) is one of them. With ``overflow_after``, a job idle that long may also run on any
other allowed site (CRAB3/glideinWMS overflow). ``+WantIOProxy`` lets the job publish its progress with
chirp; ``AutosplitStopRequested`` (set through the schedd by ``autosplit kill --jobs``) stops it at a unit
boundary.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autosplit._condor import condor_module
from autosplit.backends.condor_requests import requests_for
from autosplit.dagbuilder.submit import HARD_LIMIT_REASON, hard_limit_expression

SANDBOX_NAME = "sandbox.tar.gz"
ZIPAPP_NAME = "autosplit-job.pyz"
STOP_ATTR = "AutosplitStopRequested"


def sandbox_dir(task: Any) -> Path:
    return task.root / "sandbox"


def zipapp_path(task: Any) -> Path:
    return sandbox_dir(task) / ZIPAPP_NAME


def sandbox_path(task: Any) -> Path:
    return sandbox_dir(task) / SANDBOX_NAME


def prepare_sandbox(task: Any, *, rebuild: bool = False) -> tuple[Path, Path]:
    """Build the task's sandbox and zipapp (once; ``rebuild`` to pack the code again)."""
    from autosplit.pipeline.sandbox import build_sandbox, build_zipapp

    folder = sandbox_dir(task)
    folder.mkdir(mode=0o700, exist_ok=True)
    backend = task.config.backend
    if rebuild or not sandbox_path(task).exists():
        exclude = list(backend.sandbox_exclude)
        code = Path(task.config.code.path).resolve()
        for inside in (Path(task.config.task.workdir).resolve(), task.root):
            if inside.is_relative_to(code) and inside != code:  # task directories never travel
                exclude.append(inside.relative_to(code).as_posix())
        build_sandbox(code, sandbox_path(task), limit_mb=backend.sandbox_limit_mb, exclude=exclude)
    if rebuild or not zipapp_path(task).exists():
        build_zipapp(zipapp_path(task))
    return sandbox_path(task), zipapp_path(task)


def _local_input(lfn: str) -> bool:
    """A local file HTCondor can transfer (its list is comma-separated: names with commas, blanks or
    quotes are read in place)."""
    if any(ch in lfn for ch in ",\"'") or any(ch.isspace() for ch in lfn):
        return False
    return "://" not in lfn and os.path.isabs(lfn) and os.path.isfile(lfn)


def localize_spec(task: Any, spec: Any) -> tuple[Any, list[str]]:
    """The spec as the job sees it in its scratch directory, and the local input files to transfer.

    Outputs go to ``out/``; the site is left to the job (from its machine ad); local input files are
    named by their base names when they are transferred (remote LFNs and URLs are read in place)."""
    spec.output_dir = "out"
    spec.site = None
    inputs: list[str] = []
    if not task.config.backend.transfer_inputs:
        return spec, inputs
    names: dict[str, str] = {}
    for file in spec.files:
        for name in [file.lfn, *(f for u in file.units for f in u.get("files", []))]:
            if name not in names and _local_input(name):
                names[name] = os.path.basename(name)
    if len(set(names.values())) != len(names):  # two inputs share a base name: keep paths as they are
        return spec, inputs
    for file in spec.files:
        for unit in file.units:
            if "files" in unit:
                unit["files"] = [names.get(f, f) for f in unit["files"]]
        file.lfn = names.get(file.lfn, file.lfn)
    return spec, sorted(names)


def desired_sites(locations: list[list[str]], whitelist: list[str], blacklist: list[str]) -> list[str]:
    """Sites for a job reading files at ``locations`` (one list per file; empty when unknown): where all
    of its files are (else where any is), within the whitelist, outside the blacklist."""
    known = [set(loc) for loc in locations if loc]
    if known:
        common = set.intersection(*known) or set.union(*known)
    else:
        common = set(whitelist)
    if whitelist:
        common &= set(whitelist)
    common -= set(blacklist)
    return sorted(common)


def site_requirements(
    attribute: str,
    desired: list[str],
    whitelist: list[str],
    blacklist: list[str],
    overflow_after: float | None,
) -> str | None:
    """The job's ``requirements`` over the machine's site attribute (None: any machine)."""
    attr = f"TARGET.{attribute}"
    allowed = []
    if whitelist:
        allowed.append(f'stringListMember({attr}, "{",".join(sorted(whitelist))}")')
    if blacklist:
        allowed.append(f'!stringListMember({attr}, "{",".join(sorted(blacklist))}")')
    allowed_expr = " && ".join(allowed)
    if desired:
        here = f"stringListMember({attr}, MY.DESIRED_Sites)"
        if overflow_after is not None:
            overflow = f"(isString({attr}) && (time() - MY.QDate) > {int(overflow_after)}"
            overflow += f" && {allowed_expr})" if allowed_expr else ")"
            return f"({here} || {overflow})"
        return f"({here})"
    if allowed_expr:
        return f"(isString({attr}) && {allowed_expr})"
    return None


def job_locations(task: Any, spec: Any) -> list[list[str]]:
    """Per-file site lists of the job's files, from the dataset (DBS listings carry them)."""
    files = task.dataset.files
    if "locations" not in files.columns or not files.height:
        return []
    where = dict(zip(files["lfn"].to_list(), files["locations"].to_list(), strict=True))
    wanted = {f.lfn for f in spec.files} | {
        n for f in spec.files for u in f.units for n in u.get("files", [])
    }
    return [list(where.get(lfn) or []) for lfn in sorted(wanted) if lfn in where]


def condor_job_submit(
    task: Any,
    node: str,
    *,
    stage: str,
    soft: float | None,
    hard: float | None,
    memory_mb: int,
    inputs: list[str],
    locations: list[list[str]],
    disk_kb: int | None = None,
) -> Any:
    """The submit description of one condor job (see the module docstring)."""
    Submit = condor_module("htcondor2", "writing a job's submit description").Submit
    config = task.config
    backend = config.backend
    job_dir = task.job_dir(node)
    arguments = [
        "boot",
        "--python",
        backend.job_python,
        "--spec",
        "spec.json",
        "--report",
        "report.json",
        "--site-attribute",
        backend.site_attribute,
        "--chirp-interval",
        f"{backend.chirp_interval:g}",
        "--grace",
        f"{config.grace_seconds:g}",
        "--attempt",
        "$(RETRY)",
    ]
    environment = {"PYTHONUNBUFFERED": "1", "PATH": "/usr/local/bin:/usr/bin:/bin"}
    if soft is not None:
        environment["AUTOSPLIT_SOFT_LIMIT_SECONDS"] = f"{soft:.0f}"
    transfer_in = [str(task.spec_path(node)), str(sandbox_path(task)), *inputs]
    desired = desired_sites(locations, list(backend.sites_whitelist), list(backend.sites_blacklist))
    description: dict[str, str] = {
        "universe": "vanilla",
        "executable": str(zipapp_path(task)),
        "transfer_executable": "true",
        "arguments": " ".join(arguments),
        "initialdir": str(job_dir),
        "should_transfer_files": "YES",
        "when_to_transfer_output": "ON_EXIT",
        "transfer_input_files": ",".join(transfer_in),
        "transfer_output_files": "report.json,out",
        "transfer_output_remaps": f'"report.json={task.report_path(node)}"',
        "output": "job.out",
        "error": "job.err",
        "log": str(task.event_log),
        "environment": '"' + " ".join(f"{k}={v}" for k, v in environment.items()) + '"',
        "request_cpus": "1",
        "request_memory": str(int(memory_mb)),
        "My.WantIOProxy": "true",
        f"My.{STOP_ATTR}": "false",
        "My.AutosplitTask": f'"{config.task.name}"',
        "My.AutosplitStage": f'"{stage}"',
        "My.AutosplitNode": f'"{node}"',
        "My.AutosplitTaskDir": f'"{task.root}"',
        "My.AutosplitUnitsDone": "0",
        "My.AutosplitEventsDone": "0",
    }
    if disk_kb:
        description["request_disk"] = str(int(disk_kb))
    if desired:
        description["My.DESIRED_Sites"] = f'"{",".join(desired)}"'
    requirements = site_requirements(
        backend.site_attribute,
        desired,
        list(backend.sites_whitelist),
        list(backend.sites_blacklist),
        backend.overflow_after,
    )
    if requirements:
        description["requirements"] = requirements
    description.update(held_job_policy(int(memory_mb)))
    removes = [HELD_TOO_LONG]
    if hard is not None:
        backstop = hard + config.grace_seconds + 60
        removes.insert(0, hard_limit_expression(backstop))
        description["My.PeriodicRemoveReason"] = (
            f'ifThenElse(JobStatus == 5, strcat("held too long: ", HoldReason), "{HARD_LIMIT_REASON}")'
        )
        description["My.AutosplitHardLimitSeconds"] = f"{hard:.0f}"
    description["periodic_remove"] = " || ".join(f"({r})" for r in removes)
    return Submit(description)


# Held jobs. A job held because it ran out of memory (HTCondor's hold code 34) comes back with half as much
# again as it used (request_memory follows MemoryUsage); one held by a file-transfer failure (codes 12, 13)
# is released after a minute, at most 3 times; a job held longer than HELD_SECONDS is removed, so DAGMan
# runs its POST script ($RETURN -1002) and the postjob hands its units back (the hold reason is in the
# event log and in 'autosplit status').
HELD_SECONDS = 1800
HELD_TOO_LONG = f"(JobStatus == 5) && (time() - EnteredCurrentStatus > {HELD_SECONDS})"
MEMORY_HOLD_CODES = (34,)
TRANSFER_HOLD_CODES = (12, 13)


def held_job_policy(memory_mb: int) -> dict[str, str]:
    memory_codes = " || ".join(f"HoldReasonCode =?= {c}" for c in MEMORY_HOLD_CODES)
    transfer_codes = " || ".join(f"HoldReasonCode =?= {c}" for c in TRANSFER_HOLD_CODES)
    return {
        "request_memory": (
            f"ifThenElse(MemoryUsage =!= undefined && ({memory_codes} || NumHoldsByReason.JobOutOfResources =!= undefined), "
            f"max({{{memory_mb}, int(MemoryUsage * 3 / 2)}}), {memory_mb})"
        ),
        "periodic_release": (
            f"((({memory_codes}) && (NumJobStarts < 4)) || (({transfer_codes}) && (NumHolds < 4) && "
            "(time() - EnteredCurrentStatus > 60)))"
        ),
    }


def write_condor_job(
    task: Any, node: str, spec: Any, *, stage: str, soft, hard, memory_mb: int, file_sites=None
) -> Path:
    """Write the job's spec (for the scratch directory) and its submit description; returns job.sub.
    ``file_sites``: the site list of each of the job's files (from the task's unit-column cache); read
    from the dataset when not given."""
    prepare_sandbox(task)
    locations = job_locations(task, spec) if file_sites is None else file_sites
    spec, inputs = localize_spec(task, spec)
    spec.write(task.spec_path(node))
    size = sum(os.path.getsize(p) for p in inputs) + sandbox_path(task).stat().st_size
    events = sum(int(u.get("events") or 0) for f in spec.files for u in f.units)
    memory_mb, output_bytes = requests_for(task, events, memory_mb)
    disk_kb = int((size * 3 + output_bytes * 1.5) / 1024) + 200_000  # inputs, unpacked code, outputs: KiB
    submit = condor_job_submit(
        task,
        node,
        stage=stage,
        soft=soft,
        hard=hard,
        memory_mb=memory_mb,
        inputs=inputs,
        locations=locations,
        disk_kb=disk_kb,
    )
    path = task.job_dir(node) / "job.sub"
    path.write_text(str(submit))
    return path
