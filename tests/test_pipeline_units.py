"""Pipeline pieces without the executor: submit, bind (PRE), postjob verdicts, tail DAGs, finalize, status,
report."""

from __future__ import annotations

import json
import re
import stat
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from autosplit.datasets import LumiMask
from autosplit.jobreport import JobReport
from autosplit.pipeline import postjob
from autosplit.pipeline.bind import DEFER, PRE_SKIP, bind
from autosplit.pipeline.finalize import run_finalize
from autosplit.pipeline.postjob import run_postjob
from autosplit.pipeline.predag import run_predag
from autosplit.pipeline.report import write_report
from autosplit.pipeline.status import task_status
from autosplit.worker import JobSpec
from tests.pipeline_helpers import fake_report, make_task


def unit_states(task) -> dict[str, int]:
    with task.ledger() as ledger:
        return ledger.unit_counts()


def job_units(task, node):
    with task.ledger() as ledger:
        return ledger.units().filter(pl.col("unit_id").is_in(ledger.job_unit_ids(node)))


def pairs_of(task, node):
    with task.ledger() as ledger:
        return ledger.job_assignment(node)


class Nodes:
    """Names chain nodes the way DAGMan would run them: each bind asks for the next node."""

    def __init__(self) -> None:
        self.count = 0

    def bind(self, task) -> tuple[int, str]:
        self.count += 1
        node = f"c1-{self.count}"
        code, _ = bind(str(task.root), node)
        return code, node

    def bound(self, task, n: int) -> list[str]:
        nodes = []
        for _ in range(n):
            code, node = self.bind(task)
            assert code == 0, f"{node} was not bound (exit {code})"
            nodes.append(node)
        return nodes


def test_submit_lays_out_a_private_task_and_binds_nothing_yet(tmp_path) -> None:
    task = make_task(tmp_path)
    assert stat.S_IMODE(task.root.stat().st_mode) == 0o700, "task directories are private to their owner"
    assert stat.S_IMODE(task.ledger_path.stat().st_mode) == 0o600
    text = task.top_dag.read_text()
    assert "JOB c1-1 " in text and "JOB c2-1 " in text, "one chain per allowed running job (max_jobs = 2)"
    assert "PARENT c1-1 CHILD c1-2" in text and "SUBDAG EXTERNAL tail-1" in text
    assert re.search(r"SCRIPT DEFER 98 2 .*PRE c1-1 ", text) and "PRE_SKIP c1-1 99" in text
    assert "-I -m autosplit.pipeline.bind" in text, "DAG scripts run isolated from the caller's directory"
    assert "$RETURN $RETRY $MAX_RETRIES" in text and "FINAL finalize" in text
    counts = unit_states(task)
    assert counts["total"] == 40 and counts["pending"] == 40 and counts["assigned"] == 0
    with task.ledger() as ledger:
        assert ledger.jobs().height == 0, "work is bound when a node is about to run, not at submit"


def test_bind_hands_out_probes_then_waits_for_them(tmp_path) -> None:
    task = make_task(tmp_path, probes=2, probe_fraction=0.2)
    nodes = Nodes()
    probe_nodes = nodes.bound(task, 2)
    spec = JobSpec.read(task.spec_path(probe_nodes[0]))
    assert spec.soft_limit_seconds == 1.0 and spec.hard_limit_seconds > spec.soft_limit_seconds
    assert all(u["files"] == [f.lfn] for f in spec.files for u in f.units)
    assert "AUTOSPLIT_SOFT_LIMIT_SECONDS=1" in (task.job_dir(probe_nodes[0]) / "job.sub").read_text()
    code, _ = nodes.bind(task)
    assert code == DEFER, "no processing job before the probes measured the cost"
    again, _ = bind(str(task.root), probe_nodes[0])
    assert again == 0 and len(pairs_of(task, probe_nodes[0])) > 0, "re-binding a node gives it the same job"
    for node in probe_nodes:
        fake_report(task, node, seconds_per_event=0.002)
        assert run_postjob(task, node, 0, 0, 1).outcome == "ok"
    processing = nodes.bound(task, 1)[0]
    with task.ledger() as ledger:
        job = ledger.job(processing)
    assert job["stage"] == "processing" and job["soft_limit_seconds"] == 4.0
    assert job["hard_limit_seconds"] > 4.0


def test_every_unit_is_bound_once_and_the_task_closes(tmp_path) -> None:
    task = make_task(tmp_path, n_units=60, probes=2, probe_fraction=0.1)
    nodes = Nodes()
    seen: list[int] = []
    for _ in range(200):
        code, node = nodes.bind(task)
        if code == PRE_SKIP:
            break
        if code == DEFER:
            continue
        with task.ledger() as ledger:
            seen += ledger.job_unit_ids(node)
        fake_report(task, node, seconds_per_event=0.001)
        run_postjob(task, node, 0, 0, 1)
    assert code == PRE_SKIP and task.closed_marker.exists()
    assert sorted(seen) == list(range(60)), "every unit in exactly one job"
    assert unit_states(task)["done"] == 60


def test_postjob_success_is_idempotent(tmp_path) -> None:
    task = make_task(tmp_path)
    node = Nodes().bound(task, 1)[0]
    report = fake_report(task, node)
    first = run_postjob(task, node, 0, 0, 1)
    again = run_postjob(task, node, 0, 0, 1)
    assert first.decision == again.decision == 0 and first.outcome == "ok"
    assert unit_states(task)["done"] == len(report.units)
    with task.ledger() as ledger:
        assert ledger.attempts().height == 1, "a re-run of the POST script changes nothing"


def test_postjob_soft_stop_returns_the_rest(tmp_path) -> None:
    task = make_task(tmp_path, probe_fraction=0.2)
    node = Nodes().bound(task, 1)[0]
    n = len(pairs_of(task, node))
    assert n >= 2
    fake_report(task, node, done=1, soft_stopped=True)
    result = run_postjob(task, node, 0, 0, 1)
    assert result.outcome == "soft-stopped" and f"{n - 1} unit(s) back to pending" in result.message
    mine = job_units(task, node)
    assert sorted(mine["state"].to_list()) == ["done"] + ["pending"] * (n - 1)
    assert (mine["failures"] == 0).all() and (mine["crashes"] == 0).all(), "a soft stop is not a failure"


def test_postjob_corrupt_report_returns_units_with_a_crash(tmp_path) -> None:
    task = make_task(tmp_path)
    node = Nodes().bound(task, 1)[0]
    task.report_path(node).write_text('{"format": "autosplit-jobreport/1", "job_id": "x", "units": [{"run": ')
    result = run_postjob(task, node, 0, 0, 1)
    assert result.decision == 0 and result.outcome == "rejected" and "not valid JSON" in result.message
    mine = job_units(task, node)
    assert (mine["state"] == "pending").all()
    assert (mine["failures"] == 0).all(), "a broken report is not the units' fault"
    with task.ledger() as ledger:
        assert ledger.job(node)["state"] == "failed"


def test_postjob_report_with_foreign_units_is_rejected(tmp_path) -> None:
    task = make_task(tmp_path)
    node = Nodes().bound(task, 1)[0]
    report = fake_report(task, node)
    data = json.loads(task.report_path(node).read_text())
    data["units"].append({"run": 1, "lumi": 999, "events": 1, "seconds": 0.1})
    task.report_path(node).write_text(json.dumps(data))
    result = run_postjob(task, node, 0, 0, 1)
    assert result.outcome == "rejected" and "lumi 999 was not assigned" in result.message
    assert unit_states(task)["done"] == 0 and len(report.units) > 0


def test_postjob_unit_failure_blames_only_that_unit(tmp_path) -> None:
    task = make_task(tmp_path, probe_fraction=0.2)
    node = Nodes().bound(task, 1)[0]
    culprit = pairs_of(task, node)[0][1]
    fake_report(task, node, done=0, exit_code=80, failed_lumi=culprit)
    result = run_postjob(task, node, 80, 0, 1)
    assert result.outcome == "unit-failure" and result.decision == 0, "no DAGMan retry of the whole job"
    mine = job_units(task, node)
    blamed = mine.filter(pl.col("failures") > 0)
    assert blamed["lumi"].to_list() == [culprit] and blamed["failures"].to_list() == [1]
    assert blamed["alone"].to_list() == [1], "a unit blamed for a failure runs alone next time"
    assert (mine["state"] == "pending").all()


def test_postjob_reads_negative_return_codes_of_signalled_jobs(tmp_path) -> None:
    """DAGMan passes -9, -1001, -1002 ... for signals and removals: never a fatal POST exit."""
    task = make_task(tmp_path, probe_fraction=0.2)
    nodes = Nodes().bound(task, 2)
    assert postjob.main([str(task.root), nodes[0], "-9", "0", "2"]) == 0
    assert postjob.main([str(task.root), nodes[1], "-1002", "0", "2"]) == 0
    with task.ledger() as ledger:
        outcomes = ledger.attempts()["outcome"].to_list()
        assert outcomes == ["lost", "lost"]
        assert ledger.unit_counts()["quarantined"] == 0
    assert (job_units(task, nodes[0])["crashes"] == 1).all()


def test_postjob_wall_time_kill_keeps_finished_units(tmp_path) -> None:
    task = make_task(tmp_path, probe_fraction=0.2)
    node = Nodes().bound(task, 1)[0]
    fake_report(task, node, done=1, hard_killed=True, exit_code=82)
    result = run_postjob(task, node, 82, 0, 1)
    assert result.outcome == "wall-time" and result.decision == 0
    assert unit_states(task)["done"] == 1


def test_the_unit_a_hard_kill_cut_off_runs_alone(tmp_path) -> None:
    task = make_task(tmp_path, probe_fraction=0.2)
    nodes = Nodes()
    node = nodes.bound(task, 1)[0]
    pairs = pairs_of(task, node)
    assert len(pairs) >= 3
    # SIGKILLed at the hard limit: the journal lists two units, the third was in progress.
    report = fake_report(task, node, done=2, hard_killed=True, exit_code=82)
    report.meta = {"report_source": "wrapper-journal", "in_progress_unit": list(pairs[2])}
    report.to_json(task.report_path(node))
    run_postjob(task, node, 82, 0, 1)
    units = job_units(task, node)
    states = dict(zip(units["lumi"].to_list(), units["state"].to_list(), strict=True))
    assert states[pairs[0][1]] == "pending", "journal-only units have no committed outputs: not done"
    alone = dict(zip(units["lumi"].to_list(), units["alone"].to_list(), strict=True))
    assert alone[pairs[2][1]] == 1 and alone[pairs[0][1]] == 0, "only the cut-off unit is suspect"
    assert (units["crashes"] == 0).all(), "a kill at the hard limit is not a crash of the units"


def test_tail_dag_is_written_only_while_units_wait(tmp_path) -> None:
    task = make_task(tmp_path, n_units=20, probes=2, probe_fraction=0.2)
    code, message = run_predag(task, "tail-1")
    assert code == 0 and "20 unit(s) pending" in message
    dag = task.stage_dag("tail-1").read_text()
    assert "JOB t1c1-1 " in dag and "SUBDAG EXTERNAL tail-2" in dag
    with task.ledger() as ledger:
        ledger.quarantine(ledger.pending_unit_ids().tolist(), "test")
    assert run_predag(task, "tail-2")[0] == PRE_SKIP
    assert run_predag(task, "tail-2")[0] == PRE_SKIP


def test_finalize_status_and_report_agree(tmp_path) -> None:
    task = make_task(tmp_path)
    nodes = Nodes()
    done_nodes = nodes.bound(task, 2)
    for node in done_nodes:
        fake_report(task, node, seconds_per_event=0.002)
        run_postjob(task, node, 0, 0, 1)
    code, counts = run_finalize(task, 0)
    assert code == 1 and counts["done"] + counts["quarantined"] == counts["total"]
    status = task_status(task)
    summary = write_report(task, tmp_path / "results")
    assert status["units"]["done"] == summary["units"]["done"] == counts["done"] > 0
    assert status["units"]["quarantined"] == summary["units"]["quarantined"] > 0
    done = LumiMask.from_json(tmp_path / "results" / "processedLumis.json")
    quarantined = LumiMask.from_json(tmp_path / "results" / "quarantinedLumis.json")
    assert not (done & quarantined), "a unit is never both processed and quarantined"
    assert (done | quarantined) == task.dataset.lumi_mask()
    assert status["state"] == "completed-with-quarantine"
    report = JobReport.from_json(task.archived_report(done_nodes[0], 0))
    assert report.units and np.isfinite(status["units"]["total"])


def test_postjob_aborts_the_dag_when_most_jobs_of_a_stage_fail(tmp_path) -> None:
    task = make_task(tmp_path, n_units=40, probes=10, probe_fraction=0.5)
    nodes = Nodes()
    results = []
    for node in nodes.bound(task, 10):
        lumi = pairs_of(task, node)[0][1]
        fake_report(task, node, done=0, exit_code=80, failed_lumi=lumi)
        results.append(run_postjob(task, node, 80, 0, 1))
    assert [r.decision for r in results[:9]] == [0] * 9
    assert results[9].decision == 3 and "10 of 10 jobs of stage probe failed" in results[9].message
    assert run_postjob(task, f"c1-{nodes.count}", 80, 0, 1).decision == 3, "the abort is stored"
    assert "aborted" in task_status(task)["error"]


def _script_modules(tmp_path, module: str, *args: str) -> tuple[int, set[str]]:
    """Run ``python -I -m <module> <args>`` the way DAGMan does; returns its exit code and the top-level
    packages it imported."""
    out = tmp_path / f"modules.{module}.json"
    program = (
        "import atexit, json, runpy, sys\n"
        f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        f"sys.argv = [{module!r}, *{list(args)!r}]\n"
        f"runpy.run_module({module!r}, run_name='__main__', alter_sys=True)\n"
    )
    code = subprocess.run([sys.executable, "-I", "-c", program], check=False, capture_output=True).returncode
    return code, {name.split(".")[0] for name in json.loads(out.read_text())}


@pytest.mark.parametrize("backend", ["local", "condor"])
def test_job_scripts_of_a_running_task_import_neither_polars_nor_the_estimators(tmp_path, backend) -> None:
    """Past its probes, a task's PRE (bind) and POST (postjob) scripts import numpy but neither polars nor
    scipy nor scikit-learn: imports are most of a script's cost (about 0.1 of 0.15 s), paid once per job.
    On condor too: the job's file sites come from the unit-column cache, not the dataset."""
    extra = 'kind = "condor"\n' if backend == "condor" else ""
    task = make_task(tmp_path, n_units=200, probes=2, probe_fraction=0.05, extra=extra)
    nodes = Nodes()
    for n in (2, 1):  # the probes, then the first processing job
        for node in nodes.bound(task, n):
            fake_report(task, node, seconds_per_event=0.01)
            assert run_postjob(task, node, 0, 0, 1).outcome == "ok"
    if backend == "condor":  # the fit an earlier bind would have made (the next is due at 6 reports)
        from autosplit.backends.condor_requests import refresh_requests

        assert refresh_requests(task)
    nodes.count += 1
    node = f"c1-{nodes.count}"
    code, imported = _script_modules(tmp_path, "autosplit.pipeline.bind", str(task.root), node)
    assert code == 0 and task.spec_path(node).is_file()
    assert "numpy" in imported and not imported & {"polars", "scipy", "sklearn"}, sorted(imported)
    fake_report(task, node, seconds_per_event=0.01)
    code, imported = _script_modules(
        tmp_path, "autosplit.pipeline.postjob", str(task.root), node, "0", "0", "1"
    )
    assert code == 0 and unit_states(task)["done"] > 0
    assert "numpy" in imported and not imported & {"polars", "scipy", "sklearn"}, sorted(imported)
