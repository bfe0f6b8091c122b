"""End to end on the local backend: probes, processing with soft stops, tails, faults, kill and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import psutil
import pytest

from autosplit.backends.background import running_pid
from autosplit.datasets import LumiMask
from autosplit.pipeline.report import write_report
from autosplit.pipeline.runner import resolve_task, run
from autosplit.pipeline.status import task_status
from tests.pipeline_helpers import write_config

pytestmark = pytest.mark.slow

PAYLOAD = """
import time

SLOWDOWN = {slowdown!r}   # stage -> factor: the code runs slower than the probes measured
CRASH = {crash!r}         # (run, lumi) on which the code always fails, or None


def run(job):
    factor = SLOWDOWN.get(job.spec.stage, 1.0)
    done = 0
    for unit in job.iter_units():
        if CRASH is not None and (unit.run, unit.lumi) == tuple(CRASH):
            raise ValueError(f"cannot process run {{unit.run}} lumi {{unit.lumi}}")
        time.sleep(unit.events * {seconds_per_event} * factor)
        done += 1
    out = job.output_path("count.txt")
    out.write_text(str(done))
    job.add_output(out)
"""


def setup_task(tmp_path, *, slowdown=None, crash=None, seconds_per_event=0.002, **config):
    (tmp_path / "payload.py").write_text(
        PAYLOAD.format(slowdown=slowdown or {}, crash=crash, seconds_per_event=seconds_per_event)
    )
    return write_config(tmp_path, code="payload:run", **config)


def ledger_tables(task):
    with task.ledger() as ledger:
        return ledger.units(), ledger.attempts(), ledger.jobs()


def assert_consistent(task, tmp_path) -> dict:
    """Every unit done or quarantined; none counted twice; status and report agree with the ledger."""
    units, attempts, _ = ledger_tables(task)
    assert set(units["state"].unique().to_list()) <= {"done", "quarantined"}
    done = units.filter(pl.col("state") == "done")
    assert int(attempts["units_done"].sum()) == done.height, "no unit is done by two accepted attempts"
    status = task_status(task)
    summary = write_report(task, tmp_path / "results")
    assert status["units"]["done"] == summary["units"]["done"] == done.height
    assert status["units"]["quarantined"] == summary["units"]["quarantined"]
    processed = LumiMask.from_json(tmp_path / "results" / "processedLumis.json")
    assert processed == LumiMask.from_pairs(done["run"].to_numpy(), done["lumi"].to_numpy())
    return status


def test_soft_stops_and_tails_cover_dataset_and_mask_exactly(tmp_path) -> None:
    # Processing runs 4x slower than the probes saw: its jobs hit the soft limit and tails finish the work.
    config = setup_task(tmp_path, slowdown={"processing": 4.0}, n_units=60, target="3s")
    text = config.read_text().replace(
        'source = "ds.parquet"', 'source = "ds.parquet"\nmask = "297050:1-297050:50"'
    )
    config.write_text(text)
    status = run(config, poll=0.5, timeout=240)
    task = resolve_task(config)
    assert status["state"] == "completed", status
    assert status["units"] == {"total": 50, "done": 50, "pending": 0, "quarantined": 0, "in_jobs": 0}
    assert_consistent(task, tmp_path)
    assert LumiMask.from_json(tmp_path / "results" / "processedLumis.json") == LumiMask.from_cmssw(
        "297050:1-297050:50"
    ), "processed = dataset ∩ mask, exactly"
    stages = status["stages"]
    assert stages["processing"]["states"].get("soft-stopped", 0) >= 1, stages
    assert "tail-1" in stages and stages["tail-1"]["jobs"] >= 1, "the tail stage ran"
    committed = {p.parent.name for p in task.destination.rglob("count.txt")}
    accepted = {n for n, state in _job_states(task).items() if state in ("done", "soft-stopped")}
    assert committed == accepted, "every accepted job's output is at the destination, and only those"


def diagnostics(task) -> str:
    """The task's logs, for an assertion message (what the executors and scripts said)."""
    parts = []
    for path in sorted(
        [
            *task.dag_dir.glob("*.dagman.out"),
            *task.dag_dir.glob("*.executor.log"),
            *task.logs_dir.glob("*.log"),
        ]
    ):
        parts.append(f"== {path.name}\n" + "\n".join(path.read_text().splitlines()[-25:]))
    return "\n".join(parts)


def _job_states(task) -> dict[str, str]:
    from autosplit.pipeline.status import job_states

    _, attempts, jobs = ledger_tables(task)
    return job_states(task, jobs, attempts)


def test_code_crashing_on_one_lumi_quarantines_exactly_that_lumi(tmp_path) -> None:
    config = setup_task(tmp_path, crash=(297050, 17), n_units=40, target="3s", tails=2)
    status = run(config, poll=0.5, timeout=240)
    task = resolve_task(config)
    assert status["state"] == "completed-with-quarantine", status
    units, _, _ = ledger_tables(task)
    quarantined = units.filter(pl.col("state") == "quarantined")
    assert quarantined["lumi"].to_list() == [17]
    assert "cannot process run 297050 lumi 17" in quarantined["reason"][0]
    assert (units.filter(pl.col("lumi") != 17)["state"] == "done").all()
    assert_consistent(task, tmp_path)
    assert any("cannot process" in m for e in status["errors"] for m in e["messages"])


def _kill_tree(pid: int) -> None:
    try:
        root = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [root, *root.children(recursive=True)]
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)


def test_killing_run_and_starting_again_finishes_without_redoing_units(tmp_path) -> None:
    config = setup_task(tmp_path, n_units=60, target="2s", seconds_per_event=0.004)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    first = subprocess.Popen(
        [sys.executable, "-m", "autosplit", "run", str(config), "--poll", "0.3"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    task = None
    deadline = time.monotonic() + 120
    done_before: dict[int, str] = {}
    while time.monotonic() < deadline:
        time.sleep(0.3)
        try:
            task = resolve_task(config)
            units, attempts, _ = ledger_tables(task)
        except Exception:
            continue
        with task.ledger() as ledger:
            bulk = ledger.jobs().filter(pl.col("kind") != "probe")["node"].to_list()
        processing_done = units.filter((pl.col("state") == "done") & pl.col("node").is_in(bulk))
        if processing_done.height >= 3:
            done_before = dict(
                zip(
                    units.filter(pl.col("state") == "done")["unit_id"].to_list(),
                    units.filter(pl.col("state") == "done")["node"].to_list(),
                    strict=True,
                )
            )
            break
    assert task is not None and done_before, "processing never started"
    # Kill everything: the following command, the executor, its sub-DAG executors, jobs and scripts.
    executor = running_pid(task.top_dag)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    if executor:
        _kill_tree(executor)
    assert running_pid(task.top_dag) is None
    status = run(config, poll=0.5, timeout=240)
    assert status["state"] == "completed", f"{status}\n{diagnostics(task)}"
    units, _, _ = ledger_tables(task)
    after = dict(zip(units["unit_id"].to_list(), units["node"].to_list(), strict=True))
    assert all(after[u] == node for u, node in done_before.items()), (
        "units done before the kill were not redone"
    )
    assert_consistent(task, tmp_path)


def test_run_cli_reports_progress_and_exit_code(tmp_path) -> None:
    config = setup_task(tmp_path, n_units=16, target="3s")
    proc = subprocess.run(
        [sys.executable, "-m", "autosplit", "run", str(config), "--poll", "0.3", "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    status = json.loads(proc.stdout)
    assert status["units"]["done"] == 16 and status["state"] == "completed"
    assert {"probe", "processing"} <= set(status["stages"])
    listed = subprocess.run(
        [sys.executable, "-m", "autosplit", "status", str(config), "--json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(listed.stdout)["units"] == status["units"]


def test_asynchronous_stage_out_moves_outputs_and_postjobs_wait_for_it(tmp_path) -> None:
    config = setup_task(tmp_path, n_units=16, target="3s")
    config.write_text(config.read_text() + '\n[output]\nstage_out = "aso"\n')
    status = run(config, poll=0.5, timeout=240)
    task = resolve_task(config)
    assert status["state"] == "completed", status
    accepted = {n for n, state in _job_states(task).items() if state in ("done", "soft-stopped")}
    delivered = {p.parent.name for p in task.destination.rglob("count.txt")}
    assert delivered == accepted
    from autosplit.aso import TransferDB

    with TransferDB(task.transfer_db) as db:
        rows = db.rows(task=task.name)
    assert rows and all(r.state == "DONE" for r in rows)
    assert not [p for p in task.temp_root.rglob("*") if p.is_file()], (
        "temporary copies are removed after DONE"
    )
    assert status.get("transfers"), "status shows stage-out progress"
    assert_consistent(task, tmp_path)
