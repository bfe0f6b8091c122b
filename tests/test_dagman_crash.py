"""Crash safety: SIGKILL the executor in the middle of a DAG; running it again resumes without re-running
nodes that were done (and kills the jobs the dead executor left running)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

from autosplit.backends.local import NodeStatus, run_dag

JOB = """#!{py}
import sys, time
node = sys.argv[1]
with open("runs.log", "a") as fh:
    fh.write(f"start {{node}}\\n")
time.sleep(float(sys.argv[2]))
with open("runs.log", "a") as fh:
    fh.write(f"end {{node}}\\n")
"""


def make_dag(tmp_path: Path, seconds: float = 0.25) -> Path:
    (tmp_path / "job.py").write_text(JOB.format(py=sys.executable))
    (tmp_path / "job.py").chmod(0o755)
    (tmp_path / "job.sub").write_text(f"executable = job.py\narguments = $(JOB) {seconds}\nqueue\n")
    lines = ["NODE_STATUS_FILE crash.status 0"]
    names = ["A"] + [f"B{i}" for i in range(1, 7)] + ["C"]
    lines += [f"JOB {n} job.sub" for n in names]
    lines += ["PARENT A CHILD " + " ".join(names[1:-1]), "PARENT " + " ".join(names[1:-1]) + " CHILD C"]
    dag = tmp_path / "crash.dag"
    dag.write_text("\n".join(lines) + "\n")
    return dag


def start_executor(dag: Path) -> subprocess.Popen:
    argv = [sys.executable, "-m", "autosplit.backends.local", "run", str(dag), "--max-jobs", "2"]
    argv += ["--poll-interval", "0.05", "--kill-grace", "1"]
    return subprocess.Popen(argv, cwd=dag.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def done_in_journal(dag: Path) -> set[str]:
    path = dag.with_name(dag.name + ".journal")
    if not path.exists():
        return set()
    out = set()
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("e") == "done":
            out.add(record["n"])
    return out


def wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def runs(tmp_path: Path) -> list[str]:
    path = tmp_path / "runs.log"
    return path.read_text().splitlines() if path.exists() else []


def started(tmp_path: Path) -> set[str]:
    return {r.split()[1] for r in runs(tmp_path) if r.startswith("start")}


def test_sigkill_twice_then_resume_runs_each_finished_node_once(tmp_path: Path) -> None:
    dag = make_dag(tmp_path)
    # First run: kill it once A and at least one B have finished, while other B jobs are running.
    proc = start_executor(dag)
    wait_for(lambda: len(done_in_journal(dag)) >= 2 and started(tmp_path) - done_in_journal(dag))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = done_in_journal(dag)
    mark_1 = len(runs(tmp_path))
    in_flight = started(tmp_path) - done_before
    assert done_before and in_flight, (done_before, runs(tmp_path))
    assert dag.with_name("crash.dag.lock").exists()  # left behind: the next run recovers

    # Second run (recovery), killed again after it finished at least one more node.
    proc = start_executor(dag)
    wait_for(lambda: len(done_in_journal(dag)) > len(done_before))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_second = done_in_journal(dag)
    mark_2 = len(runs(tmp_path))

    # Third run completes the DAG.
    result = run_dag(dag, max_jobs=2, poll_interval=0.05, kill_grace=1.0)
    assert result.exit_code == 0 and result.recovered
    assert all(n.status == NodeStatus.DONE for n in result.nodes.values())
    log = runs(tmp_path)
    for node in result.nodes:
        # A job that ended just before a kill, before the executor recorded it, may run again.
        assert log.count(f"end {node}") >= 1, (node, log)
    # Nodes done before a crash never started again afterwards.
    assert not [x for x in log[mark_1:] if x.startswith("start") and x.split()[1] in done_before]
    assert not [x for x in log[mark_2:] if x.startswith("start") and x.split()[1] in done_second]
    assert log.count("start A") == 1
    # Jobs orphaned by the killed executors were killed by the recovering run, not left running.
    leftovers = [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(tmp_path / "job.py") in " ".join(p.info["cmdline"] or [])
    ]
    assert not leftovers
    assert not dag.with_name("crash.dag.lock").exists()
    # A status file from the recovering run reports every node done.
    assert "DagStatus = 5;" in (tmp_path / "crash.status").read_text()


def test_sigterm_stops_for_restart_and_resume_reruns_only_interrupted_nodes(tmp_path: Path) -> None:
    dag = make_dag(tmp_path)
    proc = start_executor(dag)
    wait_for(lambda: "A" in done_in_journal(dag) and any(r.startswith("start B") for r in runs(tmp_path)))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 3  # DAGMan's "stopped, restart me" status; no rescue DAG
    assert not list(tmp_path.glob("crash.dag.rescue*"))
    interrupted = {r.split()[1] for r in runs(tmp_path) if r.startswith("start")} - done_in_journal(dag)
    result = run_dag(dag, max_jobs=2, poll_interval=0.05)
    assert result.exit_code == 0 and result.recovered
    log = runs(tmp_path)
    assert log.count("start A") == 1
    for node in interrupted:  # stopped mid-run (or just finished but not yet recorded): run again
        assert log.count(f"start {node}") == 2 and log.count(f"end {node}") >= 1


def test_post_script_rerun_alone_after_crash_between_job_and_post(tmp_path: Path) -> None:
    """A job that finished before the crash is not re-run; only its POST script runs again ($RETURN kept)."""
    (tmp_path / "job.sh").write_text("#!/bin/sh\necho job >> runs.log\nexit 7\n")
    (tmp_path / "post.sh").write_text(
        '#!/bin/sh\necho "post $1" >> runs.log\nif [ ! -e second ]; then touch second; sleep 30; fi\nexit 0\n'
    )
    for name in ("job.sh", "post.sh"):
        (tmp_path / name).chmod(0o755)
    (tmp_path / "job.sub").write_text("executable = job.sh\nqueue\n")
    dag = tmp_path / "p.dag"
    dag.write_text("JOB A job.sub\nSCRIPT POST A post.sh $RETURN\n")
    proc = start_executor(dag)
    wait_for(lambda: (tmp_path / "second").exists())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    result = run_dag(dag, poll_interval=0.05, kill_grace=1.0)
    assert result.exit_code == 0 and result.recovered
    assert (tmp_path / "runs.log").read_text().splitlines() == ["job", "post 7", "post 7"]
