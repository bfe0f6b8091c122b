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
import pytest

from autosplit.backends.local import DagLockedError, NodeStatus, run_dag

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


# -------------------------------------------------------------------------- the lock and half-started children
HOLDER = """
import os, sys, time
from pathlib import Path
from autosplit.backends.local.journal import DagLock
lock = DagLock(Path(sys.argv[1]))
lock.acquire()
child = os.fork()
if child == 0:  # like a job between fork and exec: a copy of the executor, its descriptors included
    time.sleep(60)
    os._exit(0)
print(child, flush=True)
time.sleep(60)
"""


def test_lock_of_a_killed_executor_is_free_while_its_forked_child_lives(tmp_path: Path) -> None:
    """The flake of test_sigkill_twice_then_resume... (DagLockedError under load): an executor SIGKILLed while
    a job it was starting sat between fork and exec left its lock held by that child, which shared the
    flock-ed descriptor. The lock is now a POSIX record lock, which belongs to the process alone."""
    from autosplit.backends.local.journal import DagLock

    path = tmp_path / "x.dag.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True)
    child = int(proc.stdout.readline())
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert psutil.pid_exists(child)  # the forked copy still has the lock file open
        lock = DagLock(path)
        lock.acquire()  # DagLockedError with the flock-based lock
        assert lock.stale  # the killed run left it: the next run recovers
        lock.release()
    finally:
        os.kill(child, signal.SIGKILL)


def test_second_run_in_the_same_process_is_refused_and_status_queries_keep_the_lock(tmp_path: Path) -> None:
    from autosplit.backends.local.journal import DagLock, holder

    path = tmp_path / "y.dag.lock"
    first = DagLock(path)
    first.acquire()
    try:
        with pytest.raises(DagLockedError, match="this process"):
            DagLock(path).acquire()
        assert holder(path) == (os.getpid(), False)  # answered without opening the file
        # Another process sees the lock held (closing a descriptor here would have dropped it).
        probe = "import sys; from pathlib import Path; from autosplit.backends.local.journal import holder; "
        probe += "print(holder(Path(sys.argv[1])))"
        seen = subprocess.run([sys.executable, "-c", probe, str(path)], capture_output=True, text=True)
        assert seen.stdout.strip() == f"({os.getpid()}, False)", seen.stderr
    finally:
        first.release()
    assert holder(path) is None and not path.exists()


SLOW_ONCE = "#!/bin/sh\nif [ -e again ]; then exit 0; fi\ntouch again\nsleep 60\n"
UNRECORDED = "import time\nopen('child-started', 'w').close()\ntime.sleep(60)\n"


def test_recovery_kills_children_the_journal_never_recorded(tmp_path: Path) -> None:
    """A child started just before the executor died has no ``spawn`` record: it used to run on, unseen,
    next to the recovering run's own attempt of the same node. Children carry the DAG's lock path in their
    environment, and half-started ones (still the executor's image) hold its journal open: both are found."""
    from autosplit.backends.local.journal import RUN_MARKER

    (tmp_path / "slow.sh").write_text(SLOW_ONCE)
    (tmp_path / "slow.sh").chmod(0o755)
    (tmp_path / "job.sub").write_text("executable = slow.sh\nqueue\n")
    dag = tmp_path / "u.dag"
    dag.write_text("JOB A job.sub\n")
    proc = start_executor(dag)
    journal = dag.with_name("u.dag.journal")
    wait_for(lambda: journal.exists() and '"e":"spawn"' in journal.read_text())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    lock = os.path.realpath(dag.with_name("u.dag.lock"))
    # What the dead executor might have left without a record: a child that got as far as exec ...
    env = {**os.environ, RUN_MARKER: lock}
    marked = subprocess.Popen(
        [sys.executable, "-c", UNRECORDED], cwd=tmp_path, env=env, start_new_session=True
    )
    # ... one still between fork and exec (the journal open for writing), and a bystander only reading it.
    hold = "import sys, time\nf = open(sys.argv[1], sys.argv[2])\nopen(sys.argv[3], 'w').close()\ntime.sleep(60)\n"
    unborn = subprocess.Popen([sys.executable, "-c", hold, str(journal), "a", str(tmp_path / "u1")])
    reader = subprocess.Popen([sys.executable, "-c", hold, str(journal), "r", str(tmp_path / "u2")])
    wait_for(lambda: all((tmp_path / f).exists() for f in ("child-started", "u1", "u2")))
    try:
        result = run_dag(dag, poll_interval=0.05, kill_grace=1.0, handle_signals=False)
        assert result.exit_code == 0 and result.recovered
        assert marked.wait(timeout=10) != 0 and unborn.wait(timeout=10) == -signal.SIGKILL
        assert reader.poll() is None  # reading the journal is not a sign of being the executor's child
        out = dag.with_name("u.dag.dagman.out").read_text()
        assert "Killed 2 process(es) the interrupted run started but never recorded" in out
    finally:
        for p in (marked, unborn, reader):
            if p.poll() is None:
                p.kill()
                p.wait()
