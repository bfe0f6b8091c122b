"""Pipeline pieces without the executor: submit, postjob verdicts, predag planning, finalize, status, report."""

from __future__ import annotations

import json
import stat

import numpy as np
import polars as pl
import pytest

from autosplit.datasets import LumiMask
from autosplit.jobreport import JobReport
from autosplit.pipeline.finalize import run_finalize
from autosplit.pipeline.postjob import run_postjob
from autosplit.pipeline.predag import PredagError, run_predag
from autosplit.pipeline.report import write_report
from autosplit.pipeline.status import task_status
from autosplit.pipeline.taskdir import PRE_SKIP_CODE
from autosplit.worker import JobSpec
from tests.pipeline_helpers import fake_report, make_task


def unit_states(task) -> dict[str, int]:
    with task.ledger() as ledger:
        return ledger.unit_counts()


def probes(task) -> list[str]:
    with task.ledger() as ledger:
        return ledger.jobs("probe")["node"].to_list()


def test_submit_lays_out_a_private_task(tmp_path) -> None:
    task = make_task(tmp_path)
    mode = stat.S_IMODE(task.root.stat().st_mode)
    assert mode == 0o700, "task directories are private to their owner"
    assert stat.S_IMODE(task.ledger_path.stat().st_mode) == 0o600
    text = task.top_dag.read_text()
    nodes = probes(task)
    assert nodes and all(f"JOB {n} " in text for n in nodes)
    assert "SUBDAG EXTERNAL processing" in text and "PRE_SKIP processing 99" in text
    assert "predag" in text and "FINAL finalize" in text and "$RETURN $RETRY $MAX_RETRIES" in text
    assert f"PARENT {' '.join(nodes)} CHILD processing" in text
    spec = JobSpec.read(task.spec_path(nodes[0]))
    assert spec.soft_limit_seconds == 1.0 and spec.hard_limit_seconds > spec.soft_limit_seconds
    assert all(u["files"] == [f.lfn] for f in spec.files for u in f.units)
    submit = (task.job_dir(nodes[0]) / "job.sub").read_text()
    assert "autosplit wrapper" in submit and "AUTOSPLIT_SOFT_LIMIT_SECONDS=1" in submit
    counts = unit_states(task)
    assert counts["total"] == 40 and counts["done"] == 0 and counts["pending"] == 40


def test_postjob_success_is_idempotent(tmp_path) -> None:
    task = make_task(tmp_path)
    node = probes(task)[0]
    report = fake_report(task, node)
    first = run_postjob(task, node, 0, 0, 1)
    again = run_postjob(task, node, 0, 0, 1)
    assert first.decision == again.decision == 0 and first.outcome == "ok"
    assert unit_states(task)["done"] == len(report.units)
    with task.ledger() as ledger:
        assert ledger.attempts().height == 1, "a re-run of the POST script changes nothing"


def test_postjob_soft_stop_returns_the_rest(tmp_path) -> None:
    task = make_task(tmp_path, probe_fraction=0.2)
    node = probes(task)[0]
    ids = ledger_ids(task, node)
    assert len(ids) >= 2
    fake_report(task, node, done=1, soft_stopped=True)
    result = run_postjob(task, node, 0, 0, 1)
    assert result.outcome == "soft-stopped" and f"{len(ids) - 1} unit(s) unfinished" in result.message
    with task.ledger() as ledger:
        mine = ledger.units().filter(ledger.units()["unit_id"].is_in(ids))
    assert mine["state"].to_list() == ["done"] + ["pending"] * (len(ids) - 1)
    assert (mine["failures"] == 0).all(), "a soft stop is not a failure"


def test_postjob_corrupt_report_returns_units_with_reason(tmp_path) -> None:
    task = make_task(tmp_path)
    node = probes(task)[0]
    task.report_path(node).write_text('{"format": "autosplit-jobreport/1", "job_id": "x", "units": [{"run": ')
    result = run_postjob(task, node, 0, 0, 1)
    assert result.decision == 0 and result.outcome == "rejected" and "not valid JSON" in result.message
    with task.ledger() as ledger:
        mine = ledger.units().filter(ledger.units()["unit_id"].is_in(ledger.job_unit_ids(node)))
    assert (mine["state"] == "pending").all() and (mine["failures"] == 1).all()
    assert all("report rejected" in r for r in mine["reason"].to_list())


def test_postjob_report_with_foreign_units_is_rejected(tmp_path) -> None:
    task = make_task(tmp_path)
    node = probes(task)[0]
    report = fake_report(task, node)
    data = json.loads(task.report_path(node).read_text())
    data["units"].append({"run": 1, "lumi": 999, "events": 1, "seconds": 0.1})
    task.report_path(node).write_text(json.dumps(data))
    result = run_postjob(task, node, 0, 0, 1)
    assert result.outcome == "rejected" and "lumi 999 was not assigned" in result.message
    assert unit_states(task)["done"] == 0 and len(report.units) > 0


def test_postjob_unit_failure_blames_the_unit(tmp_path) -> None:
    task = make_task(tmp_path)
    node = probes(task)[0]
    with task.ledger() as ledger:
        first_lumi = ledger.job_assignment(node)[0][1]
    fake_report(task, node, done=0, exit_code=80, failed_lumi=first_lumi)
    result = run_postjob(task, node, 80, 0, 1)
    assert result.outcome == "unit-failure" and result.decision == 0, "no retry of the whole job"
    with task.ledger() as ledger:
        units = ledger.units()
    blamed = units.filter(units["blamed"] == 1)
    assert blamed["lumi"].to_list() == [first_lumi] and blamed["failures"].to_list() == [1]
    assert units.filter(units["unit_id"].is_in(ledger_ids(task, node)))["state"].unique().to_list() == [
        "pending"
    ]


def ledger_ids(task, node):
    with task.ledger() as ledger:
        return ledger.job_unit_ids(node)


def test_postjob_retries_then_gives_up(tmp_path) -> None:
    task = make_task(tmp_path, retries=1)
    node = probes(task)[0]
    first = run_postjob(task, node, 81, 0, 1)  # no report at all
    assert first.decision == 1 and first.outcome == "retry"
    assert unit_states(task)["assigned"] > 0, "units stay with the job for its retry"
    second = run_postjob(task, node, 81, 1, 1)
    assert second.decision == 0 and second.outcome == "failed"
    with task.ledger() as ledger:
        mine = ledger.units().filter(ledger.units()["unit_id"].is_in(ledger.job_unit_ids(node)))
    assert (mine["state"] == "pending").all() and (mine["failures"] == 1).all()


def test_postjob_wall_time_kill_keeps_finished_units(tmp_path) -> None:
    task = make_task(tmp_path)
    node = probes(task)[0]
    fake_report(task, node, done=1, hard_killed=True, exit_code=82)
    result = run_postjob(task, node, 82, 0, 1)
    assert result.outcome == "wall-time" and result.decision == 0
    assert unit_states(task)["done"] == 1


def finish_probes(task, seconds_per_event=0.002):
    for node in probes(task):
        fake_report(task, node, seconds_per_event=seconds_per_event)
        run_postjob(task, node, 0, 0, 1)


def test_predag_plans_processing_from_probe_reports(tmp_path) -> None:
    task = make_task(tmp_path, n_units=80, probes=3, probe_fraction=0.2)
    finish_probes(task)
    result = run_predag(task, "processing")
    assert result.exit_code == 0
    with task.ledger() as ledger:
        stages = [s["name"] for s in ledger.stages()]
        jobs = ledger.jobs(result.stage)
        counts = ledger.unit_counts()
    assert result.stage in ("processing", "probe-r2") and stages[-1] == result.stage
    dag = task.stage_dag("processing").read_text()
    assert all(f"JOB {n} " in dag for n in jobs["node"].to_list())
    if result.stage == "processing":
        assert "SUBDAG EXTERNAL tail-1" in dag and counts["pending"] - counts["assigned"] == 0
        assert (jobs["soft_limit_seconds"] == 4.0).all() and (jobs["hard_limit_seconds"] > 4.0).all()
    again = run_predag(task, "processing")
    assert again.stage == result.stage and "already planned" in again.message, (
        "a re-run rewrites, not replans"
    )


def test_predag_without_probe_results_fails_with_a_reason(tmp_path) -> None:
    task = make_task(tmp_path)
    for node in probes(task):
        run_postjob(task, node, 81, 0, 0)  # no report, no retries left
    with pytest.raises(PredagError, match="probe attempt"):
        run_predag(task, "processing")
    status = task_status(task)
    assert "cost per event cannot be estimated" in status["error"]


def test_predag_skips_when_nothing_is_pending(tmp_path) -> None:
    task = make_task(tmp_path, n_units=10, probes=2, probe_fraction=0.5)
    with task.ledger() as ledger:
        ids = ledger.pending_unit_ids()
        ledger.quarantine(ids.tolist(), "test")
    finish_probes(task)
    assert run_predag(task, "processing").exit_code == PRE_SKIP_CODE
    assert run_predag(task, "processing").exit_code == PRE_SKIP_CODE


def test_tail_quarantines_repeat_failures_and_isolates_blamed_units(tmp_path) -> None:
    task = make_task(tmp_path, n_units=60, probes=2, probe_fraction=0.2)
    finish_probes(task)
    with task.ledger() as ledger:
        pending = ledger.units("pending")
        twice, once = pending["unit_id"][0], pending["unit_id"][1]
        ledger._db.execute("UPDATE units SET failures = 2, reason = 'boom' WHERE unit_id = ?", (int(twice),))
        ledger._db.execute("UPDATE units SET failures = 1, blamed = 1 WHERE unit_id = ?", (int(once),))
    result = run_predag(task, "tail-1")
    assert result.exit_code == 0 and result.stage == "tail-1"
    with task.ledger() as ledger:
        units = ledger.units()
        jobs = ledger.jobs("tail-1")
        alone = [n for n in jobs["node"].to_list() if ledger.job_unit_ids(n) == [int(once)]]
    row = units.filter(units["unit_id"] == twice).row(0, named=True)
    assert row["state"] == "quarantined" and "failed 2 time(s)" in row["reason"]
    assert len(alone) == 1, "the unit blamed for a failure runs alone"
    assert "SUBDAG EXTERNAL tail-2" in task.stage_dag("tail-1").read_text()


def test_finalize_status_and_report_agree(tmp_path) -> None:
    task = make_task(tmp_path)
    finish_probes(task)
    code, counts = run_finalize(task, 0)
    assert code == 1 and counts["done"] + counts["quarantined"] == counts["total"]
    status = task_status(task)
    summary = write_report(task, tmp_path / "results")
    assert status["units"]["done"] == summary["units"]["done"] == counts["done"]
    assert status["units"]["quarantined"] == summary["units"]["quarantined"]
    done = LumiMask.from_json(tmp_path / "results" / "processedLumis.json")
    quarantined = LumiMask.from_json(tmp_path / "results" / "quarantinedLumis.json")
    assert not (done & quarantined), "a unit is never both processed and quarantined"
    assert (done | quarantined) == task.dataset.lumi_mask()
    assert status["state"] == "completed-with-quarantine"
    assert status["stages"]["probe"]["states"] == {"done": len(probes(task))}
    report = JobReport.from_json(task.archived_report(probes(task)[0], 0))
    assert report.units and np.isfinite(status["units"]["total"])


def test_postjob_aborts_the_dag_when_most_jobs_of_a_stage_fail(tmp_path) -> None:
    task = make_task(tmp_path, n_units=40, probes=10, probe_fraction=0.5)
    nodes = probes(task)
    assert len(nodes) == 10
    results = []
    for node in nodes:
        with task.ledger() as ledger:
            lumi = ledger.job_assignment(node)[0][1]
        fake_report(task, node, done=0, exit_code=80, failed_lumi=lumi)
        results.append(run_postjob(task, node, 80, 0, 1))
    assert [r.decision for r in results[:9]] == [0] * 9
    assert results[9].decision == 3 and "10 of 10 jobs of stage probe failed" in results[9].message
    assert run_postjob(task, nodes[9], 80, 0, 1).decision == 3, "the abort is stored: a re-run repeats it"
    assert "aborted" in task_status(task)["error"]


def test_postjob_rescues_the_unit_a_hard_kill_cut_off(tmp_path) -> None:
    task = make_task(tmp_path, probe_fraction=0.2, retries=1)
    node = probes(task)[0]
    pairs = ledger_pairs(task, node)
    assert len(pairs) >= 3
    # SIGKILLed at the hard limit: the journal lists two units, the third was in progress.
    report = fake_report(task, node, done=2, hard_killed=True, exit_code=82)
    report.meta = {"report_source": "wrapper-journal", "in_progress_unit": list(pairs[2])}
    report.to_json(task.report_path(node))
    first = run_postjob(task, node, 82, 0, 1)
    assert first.decision == 1 and first.outcome == "rescue", "the node retries with just the cut-off unit"
    spec = JobSpec.read(task.spec_path(node))
    assert [(u["run"], u["lumi"]) for f in spec.files for u in f.units] == [pairs[2]]
    assert spec.soft_limit_seconds is None and spec.hard_limit_seconds > 3 * 4.0
    assert "AUTOSPLIT_SOFT_LIMIT_SECONDS" not in (task.job_dir(node) / "job.sub").read_text()
    with task.ledger() as ledger:
        units = ledger.units().filter(pl.col("unit_id").is_in(ledger.job_unit_ids(node)))
    states = dict(zip(units["lumi"].to_list(), units["state"].to_list(), strict=True))
    assert states[pairs[2][1]] == "assigned", "the cut-off unit stays with the node"
    assert states[pairs[0][1]] == "pending", "journal-only units have no committed outputs: not done"
    fake_report(task, node, done=None, attempt=1)  # the retry processes the single unit
    data = json.loads(task.report_path(node).read_text())
    data["units"] = [u for u in data["units"] if (u["run"], u["lumi"]) == pairs[2]]
    data["unfinished"] = []
    task.report_path(node).write_text(json.dumps(data))
    second = run_postjob(task, node, 0, 1, 1)
    assert second.outcome == "ok" and unit_states(task)["done"] == 1


def ledger_pairs(task, node):
    with task.ledger() as ledger:
        return ledger.job_assignment(node)
