"""How a node's job becomes processes: where its submit description comes from, output redirection for
submit-description jobs, and the command line of a SUBDAG node (this executor run as ``python -m
autosplit.backends.local`` in the node's DIR, as DAGMan runs ``condor_dagman`` for a sub-DAG)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from autosplit._io import InputProblem, decode_bytes, read_regular_bytes
from autosplit.backends.local.errors import SubmitError
from autosplit.backends.local.model import Node
from autosplit.backends.local.processes import ProcessWatcher
from autosplit.backends.local.submit import JobSpec, ProcSpec


def submit_text(node: Node, node_dir: Path, descriptions: dict[str, str], quiet: bool = False) -> str | None:
    """The node's submit description: inline, a SUBMIT-DESCRIPTION of the DAG, or its submit file (read
    now: a PRE script may have written it). With ``quiet`` an unreadable file gives None instead of
    :class:`SubmitError`."""
    if node.inline_submit is not None:
        return node.inline_submit
    if node.submit in descriptions:
        return descriptions[node.submit]
    path = node_dir / node.submit
    try:
        return decode_bytes(read_regular_bytes(path, "submit description"), "submit description")
    except InputProblem as problem:
        if quiet:
            return None
        raise SubmitError(f"node {node.name}: submit file {path}: {problem.reason}") from None


def subdag_spec(
    dag_file: str, cwd: Path, cluster: int, env: dict[str, str], options: list[str], kill_grace: float
) -> JobSpec:
    """The job of a SUBDAG EXTERNAL node. Its output goes to ``<dag>.lib.out`` / ``<dag>.lib.err``.

    Removing it sends SIGUSR1 (DAGMan's ``remove_kill_sig``): the sub-DAG then removes its own jobs, writes
    its rescue DAG and exits 2; SIGKILL follows only if it has not finished after ``2 * kill_grace + 5``
    seconds.
    """
    path = Path(dag_file)
    full = path if path.is_absolute() else cwd / path
    if not os.path.isfile(full):  # False, not OSError, for an over-long name
        raise SubmitError(f"sub-DAG file {full} does not exist")
    argv = [
        sys.executable,
        "-m",
        "autosplit.backends.local",
        "run",
        dag_file,
        "--workdir",
        str(cwd),
        *options,
    ]
    proc = ProcSpec(0, argv, dict(env), cwd, None, Path(f"{full}.lib.out"), Path(f"{full}.lib.err"))
    spec = JobSpec(cluster, [proc], None)
    spec.kill_sig = signal.SIGUSR1
    spec.vacate_time = 2 * kill_grace + 5.0
    return spec


def spawn_job_proc(watcher: ProcessWatcher, token: Any, ps: ProcSpec) -> subprocess.Popen:
    """Start one job process with its input/output/error files (each attempt truncates its output)."""
    files = []
    try:
        stdin: Any = subprocess.DEVNULL
        if ps.stdin is not None:
            stdin = open(ps.stdin, "rb")  # noqa: SIM115 - closed below, once the child has it
            files.append(stdin)
        stdout: Any = subprocess.DEVNULL
        stderr: Any = subprocess.DEVNULL
        if ps.stdout is not None:
            ps.stdout.parent.mkdir(parents=True, exist_ok=True)
            stdout = open(ps.stdout, "wb")  # noqa: SIM115
            files.append(stdout)
        if ps.stderr is not None:
            if ps.stderr == ps.stdout:
                stderr = stdout
            else:
                ps.stderr.parent.mkdir(parents=True, exist_ok=True)
                stderr = open(ps.stderr, "wb")  # noqa: SIM115
                files.append(stderr)
        return watcher.spawn(
            token, ps.argv, cwd=ps.cwd, env=ps.env, stdin=stdin, stdout=stdout, stderr=stderr
        )
    finally:
        for fh in files:
            fh.close()
