"""``autosplit dagman``: run (DAGMan exit codes, JSON), status, halt/resume/rm, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from autosplit.cli.dagman_cmd import dagman


def invoke(*args: str):
    return CliRunner().invoke(dagman, list(args))


def make(tmp_path: Path, fail: bool = False) -> Path:
    (tmp_path / "ok.sub").write_text("executable = /bin/true\nqueue\n")
    (tmp_path / "bad.sub").write_text("executable = /bin/false\nqueue\n")
    dag = tmp_path / "c.dag"
    dag.write_text(
        f"NODE_STATUS_FILE c.status\nJOB A ok.sub\nJOB B {'bad' if fail else 'ok'}.sub\nPARENT A CHILD B\n"
    )
    return dag


def test_run_success_json_and_status(tmp_path: Path) -> None:
    dag = make(tmp_path)
    result = invoke("run", str(dag), "--json", "--poll-interval", "0.02")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["exit_code"] == 0 and payload["counts"] == {"DONE": 2} and payload["dag_status"] == "OK"
    status = invoke("status", str(dag), "--json", "--nodes")
    assert status.exit_code == 0, status.output
    info = json.loads(status.output)
    assert info["dag"]["DagStatus"] == 5 and info["nodes"]["B"]["status"] == "DONE"
    table = invoke("status", str(tmp_path / "c.status"))
    assert table.exit_code == 0 and "NodesDone" in table.output


def test_run_failure_exit_1_with_rescue_and_table(tmp_path: Path) -> None:
    dag = make(tmp_path, fail=True)
    result = invoke("run", str(dag), "--poll-interval", "0.02")
    assert result.exit_code == 1
    assert "rescue DAG" in result.output and "Failed nodes" in result.output and "B" in result.output
    assert (tmp_path / "c.dag.rescue001").exists()


def test_bad_dag_is_one_line_and_exit_1(tmp_path: Path) -> None:
    dag = tmp_path / "bad.dag"
    dag.write_text("JOB A a.sub\nSERVICE S s.sub\n")
    result = invoke("run", str(dag))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"autosplit: error: {dag}:2: SERVICE: SERVICE nodes are not supported by the local executor"
    ]
    assert "Traceback" not in result.output


def test_control_commands_on_a_dag_that_is_not_running(tmp_path: Path) -> None:
    dag = make(tmp_path)
    for command in ("rm", "halt", "resume"):
        result = invoke(command, str(dag))
        assert result.exit_code == 2 and result.output.startswith("autosplit: error:"), (
            command,
            result.output,
        )


def test_rm_and_halt_a_dag_running_in_another_process(tmp_path: Path) -> None:
    (tmp_path / "slow.sub").write_text("executable = /bin/sleep\narguments = 30\nqueue\n")
    dag = tmp_path / "s.dag"
    dag.write_text("JOB A slow.sub\nJOB B slow.sub\nPARENT A CHILD B\n")
    argv = [sys.executable, "-m", "autosplit.backends.local", "run", str(dag), "--poll-interval", "5"]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 20
    while not Path(str(dag) + ".nodes.log").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    halted = invoke("halt", str(dag))
    assert halted.exit_code == 0 and "Halted" in halted.output and Path(str(dag) + ".halt").exists()
    removed = invoke("rm", str(dag))
    assert removed.exit_code == 0 and f"pid {proc.pid}" in removed.output
    # SIGUSR1 makes the executor react at once, not at its next 5 s poll.
    assert proc.wait(timeout=4) == 2
    assert (tmp_path / "s.dag.rescue001").exists()


def test_help_explains(tmp_path: Path) -> None:
    result = invoke("run", "--help")
    assert result.exit_code == 0 and "DAGMan's exit status" in result.output and "--max-jobs" in result.output
