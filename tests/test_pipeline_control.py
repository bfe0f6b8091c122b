"""kill and resubmit through the ledger, on the local backend."""

from __future__ import annotations

import time

import polars as pl
import pytest

from autosplit.pipeline.control import active_dags, kill, resubmit, start
from autosplit.pipeline.runner import follow, resolve_task, run, submit_or_resume
from autosplit.pipeline.status import task_status
from autosplit.pipeline.taskdir import TaskError
from tests.test_pipeline_e2e import assert_consistent, ledger_tables, setup_task

pytestmark = pytest.mark.slow


def wait_until(condition, timeout: float = 120.0, poll: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError("condition not reached in time")


def test_kill_then_resubmit_finishes_the_task(tmp_path) -> None:
    config = setup_task(tmp_path, n_units=40, target="3s", seconds_per_event=0.004)
    task, created = submit_or_resume(config)
    assert created
    start(task)

    def processing_running():
        units, _, jobs = ledger_tables(task)
        return jobs.height and (jobs["stage"] == "processing").any() and (units["state"] == "done").sum() >= 2

    wait_until(processing_running)
    kill(task)
    wait_until(lambda: not active_dags(task))
    status = task_status(task)
    assert status["state"] == "killed"
    units, _, _ = ledger_tables(task)
    assert set(units["state"].unique().to_list()) <= {"done", "quarantined"}
    killed = units.filter(pl.col("state") == "quarantined")
    assert killed.height > 0 and all("killed" in r for r in killed["reason"].to_list())
    done_before = set(units.filter(pl.col("state") == "done")["unit_id"].to_list())

    result = resubmit(task)
    assert result["released"] == killed.height and result["stage"] == "resubmit-1"
    final = follow(task, poll=0.5, timeout=240)
    assert final["state"] == "completed", final
    units, _, _ = ledger_tables(task)
    assert (units["state"] == "done").all()
    assert done_before <= set(units["unit_id"].to_list())
    _, _, jobs = ledger_tables(task)
    assert jobs.filter(pl.col("node").str.starts_with("r1c")).height > 0, "the resubmission's chains ran"
    assert_consistent(task, tmp_path)


def test_resubmit_with_fixed_code_and_refusal_while_running(tmp_path) -> None:
    config = setup_task(tmp_path, crash=(297050, 5), n_units=20, target="3s", tails=1)
    status = run(config, poll=0.5, timeout=240)
    task = resolve_task(config)
    assert status["units"]["quarantined"] == 1
    # The physicist fixes the code, then asks for the quarantined lumi again with a new target.
    code = (tmp_path / "payload.py").read_text().replace("CRASH = (297050, 5)", "CRASH = None")
    (tmp_path / "payload.py").write_text(code)
    result = resubmit(task, max_runtime=5.0)
    assert result["released"] == 1
    with pytest.raises(TaskError, match="still running"):
        resubmit(task)
    final = follow(task, poll=0.5, timeout=240)
    assert final["state"] == "completed" and final["units"]["done"] == 20
    assert task.config.target_seconds == 5.0, "the new limit is stored with the task"
    assert_consistent(task, tmp_path)


def test_kill_one_job_stops_it_at_a_unit_boundary(tmp_path) -> None:
    config = setup_task(tmp_path, n_units=40, target="6s", seconds_per_event=0.004, max_jobs=1)
    task, _ = submit_or_resume(config)
    start(task)

    def running_job():
        with task.ledger() as ledger:
            processing = set(ledger.jobs().filter(pl.col("kind") != "probe")["node"].to_list())
        wrappers = [p.parent.name for p in (task.root / "jobs").glob("*/wrapper.pid")]
        wrappers = [w for w in wrappers if w in processing]
        return wrappers[0] if wrappers else None

    node = wait_until(running_job, timeout=180, poll=0.1)
    time.sleep(0.5)
    outcome = kill(task, [node])
    assert outcome["marked"] == [node] and outcome["signalled"] == [node]
    final = follow(task, poll=0.5, timeout=240)
    assert final["state"] == "completed", final
    _, attempts, jobs = ledger_tables(task)
    assert jobs.filter(pl.col("node") == node)["state"].to_list() == ["killed"]
    assert attempts.filter(pl.col("node") == node)["outcome"].to_list() == ["killed"]
    assert_consistent(task, tmp_path)
