"""Executor behaviour beyond the conformance set: the library API, files other tools read (node status
file, job event logs), throttles, halt/remove from outside, locking, and the DAG shape autosplit builds."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

import classad2
import htcondor2
import pytest

from autosplit.backends.local import (
    DagLockedError,
    DagParseError,
    DagStatus,
    NodeStatus,
    read_node_status,
    request_halt,
    request_remove,
    request_resume,
    run_dag,
    running_pid,
)

FAST = {"poll_interval": 0.02, "kill_grace": 1.0, "defer_factor": 0.01}


def script(path: Path, body: str) -> Path:
    path.write_text(body if body.startswith("#!") else "#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def sleeper(tmp_path: Path, seconds: float = 0.2) -> None:
    """job.sub runs ``stamp.sh $(JOB)``: records start and end times, sleeps ``seconds``."""
    script(
        tmp_path / "stamp.sh",
        f'echo "start $1 $(date +%s.%N)" >> stamps\nsleep {seconds}\necho "end $1 $(date +%s.%N)" >> stamps\n',
    )
    (tmp_path / "job.sub").write_text("executable = stamp.sh\narguments = $(JOB)\nqueue\n")


def peak_concurrency(tmp_path: Path) -> int:
    events = []
    for line in (tmp_path / "stamps").read_text().splitlines():
        kind, _node, when = line.split()
        events.append((float(when), 0 if kind == "end" else 1))
    running = peak = 0
    for _, starts in sorted(events):
        running += 1 if starts else -1
        peak = max(peak, running)
    return peak


def wait_for(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


# ------------------------------------------------------------------------------------------ files
def test_status_file_readable_by_classad2_during_and_after_the_run(tmp_path: Path) -> None:
    sleeper(tmp_path, 0.3)
    dag = tmp_path / "s.dag"
    dag.write_text(
        "NODE_STATUS_FILE s.status 0 ALWAYS-UPDATE\nDOT g.dot UPDATE\nJOB A job.sub\nJOB B job.sub\nPARENT A CHILD B\n"
    )
    seen: list[dict] = []

    def watch() -> None:
        while not (tmp_path / "stamps").exists() or "start B" not in (tmp_path / "stamps").read_text():
            if (tmp_path / "s.status").exists():
                ads = list(classad2.parseAds((tmp_path / "s.status").read_text()))
                seen.append(
                    {ad["Type"]: ad for ad in ads if ad["Type"] != "NodeStatus"}
                    | {ad["Node"]: ad["NodeStatus"] for ad in ads if ad["Type"] == "NodeStatus"}
                )
            time.sleep(0.02)

    watcher = threading.Thread(target=watch)
    watcher.start()
    result = run_dag(dag, **FAST)
    watcher.join()
    assert result.exit_code == 0
    running = [s for s in seen if s["DagStatus"]["DagStatus"] == 3 and s.get("A") == NodeStatus.SUBMITTED]
    assert running and running[0]["B"] == NodeStatus.NOT_READY and running[0]["StatusEnd"]["NextUpdate"] > 0
    report = read_node_status(tmp_path / "s.status")
    assert report.finished and report.dag["DagStatus"] == 5 and report.counts() == {"DONE": 2}
    assert report.end["NextUpdate"] == 0 and report.dag["DagFiles"] == [str(dag)]
    # The fast reader and classad2 agree.
    via_classad = {
        ad["Node"]: dict(ad)
        for ad in classad2.parseAds((tmp_path / "s.status").read_text())
        if ad["Type"] == "NodeStatus"
    }
    assert via_classad == report.nodes
    dot = (tmp_path / "g.dot").read_text()
    assert '"A" [shape=ellipse label="A (Done)"];' in dot and '"A" -> "B";' in dot


def test_job_event_logs_parse_with_htcondor2(tmp_path: Path) -> None:
    script(tmp_path / "exit.sh", 'exit "$1"\n')
    (tmp_path / "multi.sub").write_text(
        "executable = exit.sh\narguments = $(Process)\nlog = multi.log\nqueue 2\n"
    )
    (tmp_path / "xml.sub").write_text(
        "executable = exit.sh\narguments = 0\nlog = x.log\nlog_xml = true\nqueue\n"
    )
    script(tmp_path / "post.sh", "exit 0\n")
    dag = tmp_path / "l.dag"
    dag.write_text("JOB M multi.sub\nSCRIPT POST M post.sh\nJOB X xml.sub\n")
    assert run_dag(dag, **FAST).exit_code == 0
    types = htcondor2.JobEventType
    user = list(htcondor2.JobEventLog(str(tmp_path / "multi.log")).events(stop_after=0))
    assert [e.type for e in user].count(types.SUBMIT) == 2
    terminated = {e.proc: e for e in user if e.type == types.JOB_TERMINATED}
    evicted = [e for e in user if e.type == types.JOB_ABORTED]
    # Proc 1 exits 1: the node fails; proc 0 either finished (return 0) or was removed with the cluster.
    assert terminated[1]["ReturnValue"] == 1 and (0 in terminated or evicted)
    nodes = list(htcondor2.JobEventLog(str(dag) + ".nodes.log").events(stop_after=0))
    post = [e for e in nodes if e.type == types.POST_SCRIPT_TERMINATED]
    assert len(post) == 1 and post[0]["DAGNodeName"] == "M" and post[0]["ReturnValue"] == 0
    assert {e["LogNotes"] for e in nodes if e.type == types.SUBMIT} == {"DAG Node: M", "DAG Node: X"}
    xml = list(htcondor2.JobEventLog(str(tmp_path / "x.log")).events(stop_after=0))
    assert [e.type for e in xml] == [types.SUBMIT, types.EXECUTE, types.JOB_TERMINATED]
    assert xml[-1]["ReturnValue"] == 0 and (tmp_path / "x.log").read_text().startswith("<c>")


def test_script_macros_and_always_run_post(tmp_path: Path) -> None:
    script(
        tmp_path / "rec.sh",
        f"#!{sys.executable}\nimport sys\nopen('argv.log', 'a').write('|'.join(sys.argv[1:]) + '\\n')\n",
    )
    script(tmp_path / "exit.sh", 'exit "$1"\n')
    (tmp_path / "j.sub").write_text("executable = exit.sh\narguments = $(Process)\nqueue 3\n")
    (tmp_path / "ok.sub").write_text("executable = exit.sh\narguments = 0\nqueue\n")
    script(tmp_path / "badpre.sh", "exit 9\n")
    macros = "$NoDe $RETRY $MAX_RETRIES $DAG_STATUS $FAILED_COUNT $DONE_COUNT $QUEUED_COUNT $NODE_COUNT $JOB_COUNT "
    macros += (
        "$SUCCESS $RETURN $EXIT_CODES $EXIT_CODE_COUNTS $PRE_SCRIPT_RETURN $JOB_ABORT_COUNT $UNKNOWN $JOBID"
    )
    dag = tmp_path / "m.dag"
    dag.write_text(
        f"JOB A ok.sub\nJOB B j.sub\nSCRIPT POST B rec.sh {macros}\nRETRY B 2 UNLESS-EXIT 1\nPARENT A CHILD B\n"
        f"JOB C ok.sub\nSCRIPT PRE C badpre.sh\nSCRIPT POST C rec.sh {macros}\nPARENT B CHILD C\n"
    )
    result = run_dag(dag, config={"DAGMAN_ALWAYS_RUN_POST": "True"}, **FAST)
    assert result.exit_code == 0  # both POST scripts succeeded
    lines = sorted((tmp_path / "argv.log").read_text().splitlines())
    b = next(x for x in lines if x.startswith("B|")).split("|")
    c = next(x for x in lines if x.startswith("C|")).split("|")
    # B's procs exit 0, 1, 2; the first failure removes the rest of the cluster.
    assert b[:9] == ["B", "0", "2", "0", "0", "1", "0", "3", "3"] and b[9] == "False"
    assert b[10] in ("1", "2") and b[10] in b[11].split(",")  # the first proc to fail gives $RETURN
    assert b[15] == "$UNKNOWN" and b[16].endswith(".2")
    # C: PRE failed with 9, POST still ran (ALWAYS_RUN_POST) with $RETURN -1004 and $PRE_SCRIPT_RETURN 9.
    assert c[10] == "-1004" and c[13] == "9" and c[9] == "False" and c[11] == "" and c[14] == "0"


def test_script_debug_output_and_missing_script(tmp_path: Path) -> None:
    script(tmp_path / "talk.sh", "echo to-stdout\necho to-stderr >&2\n")
    (tmp_path / "ok.sub").write_text("executable = /bin/true\nqueue\n")
    dag = tmp_path / "d.dag"
    dag.write_text(
        "JOB A ok.sub\nSCRIPT DEBUG dbg.txt ALL PRE A talk.sh\nJOB B ok.sub\nSCRIPT PRE B nope.sh\n"
    )
    result = run_dag(dag, **FAST)
    debug = (tmp_path / "dbg.txt").read_text()
    assert "Node=A Type=PRE Status=0" in debug and "to-stdout" in debug and "to-stderr" in debug
    # A script that cannot be started counts as exit status 1 (DAGMan), and PATH is not searched.
    assert result.exit_code == 1 and result.nodes["B"].details.startswith("PRE Script failed with status 1")
    assert "PATH is not searched" in Path(str(dag) + ".dagman.out").read_text()


# ------------------------------------------------------------------------------------------ throttles
def test_max_jobs_and_category_throttles(tmp_path: Path) -> None:
    sleeper(tmp_path, 0.15)
    names = [f"N{i}" for i in range(6)]
    dag = tmp_path / "t.dag"
    dag.write_text("".join(f"JOB {n} job.sub\n" for n in names))
    assert run_dag(dag, max_jobs=3, **FAST).exit_code == 0
    assert peak_concurrency(tmp_path) == 3
    (tmp_path / "stamps").unlink()
    dag2 = tmp_path / "c.dag"
    dag2.write_text("".join(f"JOB {n} job.sub\nCATEGORY {n} heavy\n" for n in names) + "MAXJOBS heavy 2\n")
    assert run_dag(dag2, max_jobs=0, **FAST).exit_code == 0
    assert peak_concurrency(tmp_path) == 2


def test_default_max_jobs_is_the_number_of_cores(tmp_path: Path) -> None:
    sleeper(tmp_path, 0.2)
    dag = tmp_path / "t.dag"
    n = (os.cpu_count() or 1) + 2
    dag.write_text("".join(f"JOB N{i} job.sub\n" for i in range(n)))
    assert run_dag(dag, **FAST).exit_code == 0
    assert peak_concurrency(tmp_path) == os.cpu_count()


# ------------------------------------------------------------------------------------------ control
def test_cycle_rejected_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "ok.sub").write_text("executable = /bin/true\noutput = ran.$(JOB)\nqueue\n")
    dag = tmp_path / "c.dag"
    dag.write_text(
        "JOB A ok.sub\nJOB B ok.sub\nJOB C ok.sub\nPARENT A CHILD B\nPARENT B CHILD C\nPARENT C CHILD B\n"
    )
    with pytest.raises(DagParseError, match="cycle: (B -> C -> B|C -> B -> C)"):
        run_dag(dag, **FAST)
    assert not list(tmp_path.glob("ran.*")) and not (tmp_path / "c.dag.lock").exists()


def _run_in_thread(dag: Path, **kw) -> tuple[threading.Thread, dict]:
    box: dict = {}
    thread = threading.Thread(target=lambda: box.setdefault("result", run_dag(dag, **FAST, **kw)))
    thread.start()
    wait_for(lambda: running_pid(dag) is not None)
    return thread, box


def test_halt_lets_running_jobs_finish_then_exits_halted_with_final(tmp_path: Path) -> None:
    sleeper(tmp_path, 0.3)
    script(tmp_path / "post.sh", "echo post >> posts\n")
    dag = tmp_path / "h.dag"
    dag.write_text(
        "JOB A job.sub\nSCRIPT POST A post.sh\nJOB B job.sub\nPARENT A CHILD B\nFINAL F job.sub\n"
        "NODE_STATUS_FILE h.status 0\n"
    )
    thread, box = _run_in_thread(dag)
    wait_for(lambda: (tmp_path / "stamps").exists())
    request_halt(dag)
    thread.join()
    result = box["result"]
    # A finished and its POST ran; B never started; the FINAL node ran and succeeded: exit 0, status HALTED.
    assert result.exit_code == 0 and result.dag_status == DagStatus.HALTED
    assert result.nodes["A"].status == NodeStatus.DONE and (tmp_path / "posts").read_text() == "post\n"
    assert "start B" not in (tmp_path / "stamps").read_text() and "end F" in (tmp_path / "stamps").read_text()
    assert "DONE A" in (tmp_path / "h.dag.rescue001").read_text()


def test_halt_then_resume_before_the_dag_drains_completes(tmp_path: Path) -> None:
    sleeper(tmp_path, 0.6)
    dag = tmp_path / "r.dag"
    dag.write_text("JOB A job.sub\nJOB B job.sub\nPARENT A CHILD B\n")
    thread, box = _run_in_thread(dag)
    wait_for(lambda: (tmp_path / "stamps").exists())
    request_halt(dag)
    out = Path(str(dag) + ".dagman.out")
    wait_for(lambda: "DAG is halted" in out.read_text())
    assert request_resume(dag)  # A still runs: the DAG has not drained, so it continues
    thread.join()
    assert box["result"].exit_code == 0 and box["result"].counts() == {"DONE": 2}
    assert "DAG going from halted to running state" in out.read_text()


def test_remove_an_embedded_run_and_lock_against_a_second_run(tmp_path: Path) -> None:
    sleeper(tmp_path, 30)
    dag = tmp_path / "x.dag"
    dag.write_text("JOB A job.sub\nJOB B job.sub\nPARENT A CHILD B\n")
    thread, box = _run_in_thread(dag)
    with pytest.raises(DagLockedError):
        run_dag(dag, **FAST)
    wait_for(lambda: (tmp_path / "stamps").exists())
    assert request_remove(dag) is not None  # no signal for an embedded run: the file is polled
    thread.join(timeout=15)
    result = box["result"]
    assert result.exit_code == 2 and result.dag_status == DagStatus.RM
    assert (
        result.nodes["A"].status == NodeStatus.ERROR and result.nodes["A"].details == "Was STATUS_SUBMITTED"
    )
    assert "end A" not in (tmp_path / "stamps").read_text()
    assert running_pid(dag) is None and request_remove(dag) is None


def test_rescue_keeps_retries_when_configured_and_is_applied(tmp_path: Path) -> None:
    script(tmp_path / "flaky.sh", "if [ -e ok ]; then exit 0; fi\nexit 1\n")
    (tmp_path / "f.sub").write_text("executable = flaky.sh\nqueue\n")
    (tmp_path / "ok.sub").write_text("executable = /bin/true\noutput = ran.$(JOB)\nqueue\n")
    dag = tmp_path / "r.dag"
    dag.write_text("JOB A ok.sub\nJOB B f.sub\nRETRY B 3 UNLESS-EXIT 9\nPARENT A CHILD B\n")
    first = run_dag(dag, config={"DAGMAN_RESET_RETRIES_UPON_RESCUE": "False"}, **FAST)
    assert first.exit_code == 1 and first.nodes["B"].retries == 3
    text = (tmp_path / "r.dag.rescue001").read_text()
    assert "DONE A" in text and "# 3 of 3 retries already performed; 0 remaining" in text
    assert "RETRY B 0 UNLESS-EXIT 9" in text
    (tmp_path / "ran.A").unlink()
    (tmp_path / "ok").touch()
    second = run_dag(dag, **FAST)
    assert second.exit_code == 0 and not (tmp_path / "ran.A").exists()  # A was DONE in the rescue DAG
    assert second.nodes["A"].details == "User defined as DONE"
    json.dumps(second.to_dict())


# ------------------------------------------------------------------------------------------ autosplit's shape
def test_autosplit_pipeline_shape(tmp_path: Path) -> None:
    """task.dag: probes, then a SUBDAG whose PRE script writes it; job POSTs defer once and see $RETURN,
    $RETRY, $MAX_RETRIES; RETRY n UNLESS-EXIT 2; the tail SUBDAG's PRE exits with its PRE_SKIP code."""
    py = sys.executable
    script(tmp_path / "work.sh", 'echo "$1" >> worked\nexit "$2"\n')
    (tmp_path / "work.sub").write_text(
        "executable = work.sh\narguments = $(JOB) $(code)\noutput = $(JOB).out\nqueue\n"
    )
    script(
        tmp_path / "postjob.py",
        f"#!{py}\nimport os, sys\n"
        "node, ret, retry, maxr = sys.argv[1:5]\n"
        "marker = f'deferred.{node}.{retry}'\n"
        "if not os.path.exists(marker):\n    open(marker, 'w').close(); sys.exit(4)  # stage-out in flight\n"
        "open('postjob.log', 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
        "sys.exit(2 if ret == '2' else (1 if ret != '0' else 0))\n",
    )
    processing = (
        "NODE_STATUS_FILE processing.status 0\n"
        + "".join(
            f'JOB job-{i} work.sub\nVARS job-{i} code="{c}"\n'
            f"SCRIPT DEFER 4 1 POST job-{i} {tmp_path}/postjob.py $JOB $RETURN $RETRY $MAX_RETRIES\n"
            f"RETRY job-{i} 2 UNLESS-EXIT 2\n"
            for i, c in ((1, 0), (2, 0), (3, 0))
        )
        + "SUBDAG EXTERNAL tail-1 tail-1.dag\nSCRIPT PRE tail-1 predag.sh tail\nPRE_SKIP tail-1 3\n"
        + "PARENT job-1 job-2 job-3 CHILD tail-1\n"
    )
    script(
        tmp_path / "predag.sh",
        f"if [ \"$1\" = tail ]; then exit 3; fi\ncat > processing.dag <<'EOF'\n{processing}EOF\n",
    )
    dag = tmp_path / "task.dag"
    dag.write_text(
        "NODE_STATUS_FILE task.status 0\n"
        'JOB probe-1 work.sub\nVARS probe-1 code="0"\nJOB probe-2 work.sub\nVARS probe-2 code="0"\n'
        "SUBDAG EXTERNAL processing processing.dag\nSCRIPT PRE processing predag.sh processing\n"
        "PRE_SKIP processing 3\nPARENT probe-1 probe-2 CHILD processing\n"
    )
    result = run_dag(dag, **FAST)
    assert result.exit_code == 0, Path(str(dag) + ".dagman.out").read_text()
    assert sorted((tmp_path / "worked").read_text().split()) == [
        "job-1",
        "job-2",
        "job-3",
        "probe-1",
        "probe-2",
    ]
    assert sorted((tmp_path / "postjob.log").read_text().splitlines()) == [
        f"job-{i} 0 0 2" for i in (1, 2, 3)
    ]
    inner = read_node_status(tmp_path / "processing.status")
    assert inner.finished and inner.counts() == {"DONE": 4} and not (tmp_path / "tail-1.dag").exists()
    assert read_node_status(tmp_path / "task.status").counts() == {"DONE": 3}


def test_unless_exit_2_stops_retries_of_a_fatal_job(tmp_path: Path) -> None:
    script(tmp_path / "post.sh", 'echo "$@" >> post.log\nexit "$1"\n')
    script(tmp_path / "exit.sh", 'exit "$1"\n')
    (tmp_path / "j.sub").write_text("executable = exit.sh\narguments = $(code)\nqueue\n")
    dag = tmp_path / "u.dag"
    dag.write_text(
        'JOB fatal j.sub\nVARS fatal code="2"\nSCRIPT POST fatal post.sh $RETURN $RETRY\nRETRY fatal 3 UNLESS-EXIT 2\n'
        'JOB flaky j.sub\nVARS flaky code="1"\nSCRIPT POST flaky post.sh $RETURN $RETRY\nRETRY flaky 2 UNLESS-EXIT 2\n'
    )
    result = run_dag(dag, **FAST)
    assert result.exit_code == 1
    assert result.nodes["fatal"].retries == 0 and result.nodes["flaky"].retries == 2
    log = (tmp_path / "post.log").read_text().splitlines()
    assert log.count("2 0") == 1 and sorted(x for x in log if x.startswith("1")) == ["1 0", "1 1", "1 2"]
