"""Checkpointed outputs: a long job commits finished units as it goes; a lost or killed attempt keeps them."""

from __future__ import annotations

import json

import pytest

from autosplit.jobreport import JobReport
from autosplit.pipeline.bind import bind
from autosplit.pipeline.postjob import run_postjob
from autosplit.worker import FileUnits, Job, JobSpec, JobSpecError, checkpoint_path
from tests.pipeline_helpers import fake_report, make_task


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spec(tmp_path, n: int = 6, **fields) -> JobSpec:
    units = [{"run": 1, "lumi": lumi, "events": 10} for lumi in range(1, n + 1)]
    return JobSpec(
        task="t",
        job_id="c1-1",
        output_dir=str(tmp_path / "out"),
        files=[FileUnits(lfn="/store/a.root", units=units)],
        **fields,
    )


def test_automatic_checkpoints_cover_exactly_the_closed_outputs(tmp_path) -> None:
    clock = Clock()
    job = Job(
        spec(tmp_path, checkpoint_seconds=25.0), tmp_path / "report.json", clock=clock, handle_sigterm=False
    )
    state = {"part": 0, "lines": []}

    def close_part() -> None:
        path = job.output_path(f"part{state['part']}.txt")
        path.write_text("\n".join(state["lines"]))
        job.add_output(path)
        state["part"] += 1
        state["lines"] = []

    job.on_checkpoint(close_part)
    checkpoints = []
    for unit in job.iter_units():
        clock.now += 10.0
        state["lines"].append(str(unit.lumi))
        if checkpoint_path(job.report_path).exists():
            checkpoints.append(JobReport.from_json(checkpoint_path(job.report_path)))
        if unit.lumi == 4:
            break  # the job dies here: lumi 4 was never committed
    last = JobReport.from_json(checkpoint_path(job.report_path))
    assert last.meta["checkpoint"] is True and last.exit_code == 0 and last.in_progress is None
    committed = [line for out in last.outputs for line in open(out.name).read().split()]
    assert committed == [str(u["lumi"]) for u in last.units] == ["1", "2", "3"], (
        "a checkpoint credits exactly the units its outputs hold"
    )
    assert [len(c.units) for c in checkpoints][0] == 3


def test_checkpoint_refuses_a_half_done_lumi(tmp_path) -> None:
    job = Job(spec(tmp_path), tmp_path / "report.json", handle_sigterm=False)
    unit = job.units[0]
    job._parts_left[unit.key] = {"/store/b.root"}  # one file's part done, one to go
    with pytest.raises(JobSpecError, match="spans files"):
        job.checkpoint()


@pytest.mark.parametrize("written_by_attempt", [0, 1])
def test_a_lost_job_keeps_the_units_of_its_last_checkpoint_once(tmp_path, written_by_attempt) -> None:
    """Attempt 0 was lost after a checkpoint of two units: they are kept, their output committed once. A
    checkpoint another attempt left in the job's directory (a condor upload) credits nothing."""
    task = make_task(tmp_path, probe_fraction=0.2)
    node = "c1-1"
    assert bind(str(task.root), node)[0] == 0
    with task.ledger() as ledger:
        pairs = ledger.job_assignment(node)
    assert len(pairs) >= 3
    # The job wrote a checkpoint after two units (their output committed there), then its node died.
    out = task.output_dir(node)
    out.mkdir(parents=True, exist_ok=True)
    part = out / "part0.txt"
    part.write_text("two lumis")
    fake_report(task, node, done=2, attempt=written_by_attempt)
    data = json.loads(task.report_path(node).read_text())
    data["meta"] = {"checkpoint": True}
    data["outputs"] = [{"name": str(part), "bytes": part.stat().st_size}]
    checkpoint_path(task.report_path(node)).write_text(json.dumps(data))
    task.report_path(node).unlink()
    result = run_postjob(task, node, -1001, 0, 2)
    kept = 2 if written_by_attempt == 0 else 0
    assert result.outcome == "lost" and ("2 unit(s) kept from its last checkpoint" in result.message) == bool(
        kept
    )
    with task.ledger() as ledger:
        units = ledger.units()
        done = units.filter(units["state"] == "done")
        assert sorted(zip(done["run"].to_list(), done["lumi"].to_list(), strict=True)) == sorted(pairs[:kept])
        assert ledger.attempts()["units_done"].to_list() == [kept]
    committed = list(task.destination.rglob("part0.txt"))
    assert len(committed) == (1 if kept else 0), "the checkpoint's output is committed once"
    again = run_postjob(task, node, -1001, 0, 2)
    assert again.outcome == "lost" and len(list(task.destination.rglob("part0.txt"))) == len(committed)


def test_a_job_its_user_killed_keeps_its_checkpoint_and_blames_nothing(tmp_path) -> None:
    """Killed by the user (no report, a checkpoint of two units): those two are done, the rest go back
    with no crash counted (as a soft stop at the checkpoint), where a lost job counts one on each."""
    from autosplit.pipeline.scheduling import session

    task = make_task(tmp_path, probe_fraction=0.2)
    node = "c1-1"
    assert bind(str(task.root), node)[0] == 0
    with task.ledger() as ledger:
        pairs = ledger.job_assignment(node)
        ledger.request_kill([node])
    fake_report(task, node, done=2, attempt=0)
    data = json.loads(task.report_path(node).read_text())
    data["meta"] = {"checkpoint": True}
    checkpoint_path(task.report_path(node)).write_text(json.dumps(data))
    task.report_path(node).unlink()
    assert run_postjob(task, node, -1001, 0, 2).outcome == "killed"
    with task.ledger() as ledger:
        units = ledger.units()
        done = units.filter(units["state"] == "done")
        assert sorted(zip(done["run"].to_list(), done["lumi"].to_list(), strict=True)) == sorted(pairs[:2])
    with session(task) as s:
        assert s.scheduler._book.crashes.sum() == 0 and s.scheduler._observer.n_lost == 0


def test_the_task_setting_reaches_the_scheduler_and_the_job_spec(tmp_path) -> None:
    from autosplit.pipeline.config import load_config
    from autosplit.pipeline.scheduling import scheduler_options
    from autosplit.pipeline.submit import create_task_from_config
    from tests.pipeline_helpers import write_config

    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("[limits]\n", '[limits]\ncheckpoint_interval = "2m"\n'))
    task = create_task_from_config(load_config(path), path)
    assert scheduler_options(task)["checkpoint_seconds"] == 120.0
    assert bind(str(task.root), "c1-1")[0] == 0
    assert JobSpec.read(task.spec_path("c1-1")).checkpoint_seconds == 120.0
