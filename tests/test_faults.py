"""Faults: every defect of issue 14 that a kill, a race or a hostile job can cause, each pinned by a test,
and the fault-injection suite (``-m faults``): randomized kills of the runner, the executor, the wrapper,
the payload and the postjob at random moments of a small task, corrupted and forged reports, each followed
by an exact check of the ledger, the lumi lists and the committed outputs (:func:`check_invariants`).

``benchmarks/bench_faults.py`` runs the same campaign at a larger scale.
"""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

import pytest

from autosplit.pipeline.config import load_config
from autosplit.pipeline.submit import create_task_from_config
from autosplit.pipeline.taskdir import TaskDir, TaskError
from tests.pipeline_helpers import write_config


# ----------------------------------------------------------------------------- defect 3: task creation
def test_creation_never_adopts_or_deletes_a_directory_it_did_not_create(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    root = tmp_path / "tasks" / "t1"
    root.mkdir(parents=True, mode=0o755)
    (root / "thesis.tex").write_text("years of work")
    with pytest.raises(TaskError, match="not an autosplit task"):
        create_task_from_config(load_config(config), config)
    assert (root / "thesis.tex").read_text() == "years of work"
    assert stat.S_IMODE(root.stat().st_mode) == 0o755, "not chmod-ed either"
    # Even an empty directory is not adopted (another creation may be making it right now).
    (root / "thesis.tex").unlink()
    with pytest.raises(TaskError):
        create_task_from_config(load_config(config), config)
    assert root.is_dir()


def test_failed_creation_removes_only_what_it_made(tmp_path: Path, monkeypatch) -> None:
    import autosplit.pipeline.submit as submit

    config = write_config(tmp_path)

    def broken(task):
        raise OSError("disk full")

    monkeypatch.setattr(submit, "write_top_dag", broken)
    with pytest.raises(OSError, match="disk full"):
        create_task_from_config(load_config(config), config)
    assert not (tmp_path / "tasks" / "t1").exists(), "its own half-made directory is gone"
    assert (tmp_path / "tasks").is_dir()


def test_leftover_of_a_killed_creation_is_made_anew(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    root = tmp_path / "tasks" / "t1"
    root.mkdir(parents=True)
    (root / "config.json").write_text("{}")
    (root / ".creating").write_text("999999999 12.000")  # a creator that is gone
    task = create_task_from_config(load_config(config), config)
    assert task.exists() and not task.creating_marker.exists()
    # While a live process creates it, the directory is not a task and is not touched.
    (root / ".creating").write_text(f"{os.getpid()} 0")
    assert not TaskDir(root).exists()


def _create(config: str, barrier, results) -> None:
    barrier.wait()
    try:
        create_task_from_config(load_config(config), Path(config))
        results.put("created")
    except TaskError as exc:
        results.put(f"refused: {exc}")
    except BaseException as exc:  # noqa: BLE001
        results.put(f"crashed: {type(exc).__name__}: {exc}")


def test_concurrent_creations_make_one_task_and_delete_nothing(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    ctx = multiprocessing.get_context("spawn")  # polars threads make fork unsafe
    for trial in range(2):
        root = tmp_path / "tasks" / "t1"
        if root.exists():
            import shutil

            shutil.rmtree(root)
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_create, args=(str(config), barrier, results)) for _ in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(60)
        outcomes = sorted(results.get(timeout=5) for _ in procs)
        assert outcomes.count("created") == 1, (trial, outcomes)
        assert all(o == "created" or o.startswith("refused") for o in outcomes), outcomes
        task = TaskDir(root).require()
        assert task.top_dag.is_file() and task.ledger_path.is_file()


# ----------------------------------------------------------------------------- defect 4: forged reports
def _bound(task, node: str) -> None:
    from autosplit.pipeline.bind import bind

    code, message = bind(str(task.root), node)
    assert code == 0, message


def _job_output(task, node: str, name: str, text: str):
    from autosplit.jobreport import OutputFile
    from autosplit.worker import adler32_file

    path = task.output_dir(node) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return OutputFile(name=str(path), bytes=path.stat().st_size, checksum=adler32_file(path))


def _with_outputs(report, task, node, outputs):
    report.outputs = outputs
    report.to_json(task.report_path(node))
    return report


def test_report_naming_another_jobs_file_cannot_replace_it(tmp_path: Path) -> None:
    from autosplit.jobreport import JobReport, OutputFile
    from autosplit.pipeline.outputs import OutputCommitError, commit_outputs
    from autosplit.pipeline.postjob import run_postjob
    from tests.pipeline_helpers import fake_report, make_task

    task = make_task(tmp_path)
    _bound(task, "c1-1")
    _bound(task, "c2-1")
    good = _job_output(task, "c1-1", "result.txt", "honest")
    _with_outputs(fake_report(task, "c1-1"), task, "c1-1", [good])
    assert run_postjob(task, "c1-1", 0, 0, 1).outcome == "ok"
    committed = task.destination / "c1-1" / "result.txt"
    assert committed.read_text() == "honest"
    forged = _job_output(task, "c2-1", "result.txt", "forged")
    names = (
        "../../c1-1/out/result.txt",  # climbs out of its output directory
        str(task.destination / "c1-1" / "result.txt"),  # another job's committed file
        str(task.output_dir("c1-1") / "result.txt"),  # another job's output directory
        "../../../outputs/c1-1/result.txt",
    )
    for name in names:
        report = JobReport(job_id="c2-1", outputs=[OutputFile(name=name, bytes=forged.bytes)])
        with pytest.raises(OutputCommitError, match="outside"):
            commit_outputs(report, task.output_dir("c2-1"), task.destination, "c2-1")
    _with_outputs(fake_report(task, "c2-1"), task, "c2-1", [OutputFile(name=names[0], bytes=forged.bytes)])
    result = run_postjob(task, "c2-1", 0, 0, 1)
    assert result.outcome == "failed" and "outside" in result.message, result
    assert committed.read_text() == "honest"
    assert not (task.destination / "c2-1").exists()


def test_units_of_a_failed_payload_are_not_credited_without_their_outputs(tmp_path: Path) -> None:
    """Found by the fault campaign: a payload killed after its last unit (wrapper exit 80) leaves a report
    that lists the units and an output; nothing is staged out for a failed attempt, so crediting its units
    lost them. They go back to pending (the unit-failure case too), and nothing reaches the destination."""
    import polars as pl

    from autosplit.pipeline.postjob import run_postjob
    from tests.pipeline_helpers import fake_report, make_task

    task = make_task(tmp_path)
    for node, failed_lumi in (("c1-1", None), ("c2-1", "last")):
        _bound(task, node)
        with task.ledger() as ledger:
            pairs = ledger.job_assignment(node)
        culprit = pairs[-1][1] if failed_lumi else None
        report = fake_report(task, node, exit_code=80, failed_lumi=culprit, done=len(pairs) - bool(culprit))
        report.exit_message = "payload exited with -9"
        _with_outputs(report, task, node, [_job_output(task, node, "units.json", "[]")])
        result = run_postjob(task, node, 80, 0, 1)
        assert result.outcome in ("failed", "unit-failure"), result
        with task.ledger() as ledger:
            units = ledger.units().filter(pl.col("node") == node)
        assert units.filter(pl.col("state") == "done").height == 0, units
        assert not (task.destination / node).exists()


def _node_status_file(task, states: dict[str, int]) -> None:
    from autosplit.backends.local.statusfile import COUNT_KEYS, StatusRow, render_status

    rows = [StatusRow(name, status) for name, status in states.items()]
    text = render_status([str(task.top_dag)], 3, "", dict.fromkeys(COUNT_KEYS, 0), rows, None)
    (task.dag_dir / "task.status").write_text(text)


def test_units_of_a_node_dagman_gave_up_on_are_released_and_its_late_postjob_keeps_nothing(
    tmp_path: Path,
) -> None:
    """A node whose postjob was killed on every retry fails for good: its job stayed bound, so the other
    chains waited for its units for ever. A waiting PRE script now releases them; a postjob of that node
    coming late (a rescue DAG re-running it) commits nothing."""
    import os

    import polars as pl

    from autosplit.backends.local.model import NodeStatus
    from autosplit.pipeline.orphans import release_orphans
    from autosplit.pipeline.postjob import run_postjob
    from autosplit.pipeline.scheduling import session
    from tests.pipeline_helpers import fake_report, make_task

    task = make_task(tmp_path)
    _bound(task, "c1-1")
    _bound(task, "c2-1")
    _node_status_file(task, {"c1-1": NodeStatus.ERROR, "c2-1": NodeStatus.SUBMITTED})
    stale = task.dag_dir / "task.status"
    os.utime(stale, (1.0, 1.0))  # a file left by an earlier run of the DAG proves nothing
    with session(task) as s:
        assert release_orphans(s, force=True) == []
    _node_status_file(task, {"c1-1": NodeStatus.ERROR, "c2-1": NodeStatus.SUBMITTED})
    with session(task) as s:
        assert release_orphans(s, force=True) == ["c1-1"]
        assert release_orphans(s) == [], "at most one look per interval"
    with task.ledger() as ledger:
        units = ledger.units()
        job = ledger.job("c1-1")
    assert job["state"] == "failed" and job["outcome"] == "lost"
    assert (
        units.filter(pl.col("node") == "c1-1").height == 0
        or (units.filter(pl.col("node") == "c1-1")["state"] == "pending").all()
    )
    assert units.filter(pl.col("state") == "assigned")["node"].unique().to_list() == ["c2-1"]
    report = fake_report(task, "c1-1")
    _with_outputs(report, task, "c1-1", [_job_output(task, "c1-1", "units.json", "[]")])
    result = run_postjob(task, "c1-1", 0, 0, 1)
    assert result.outcome == "duplicate", result
    assert not (task.destination / "c1-1").exists()
    with task.ledger() as ledger:
        assert ledger.units().filter(pl.col("state") == "done").height == 0


def test_symlinked_output_directory_or_file_copies_nothing_from_outside(tmp_path: Path) -> None:
    from autosplit.jobreport import JobReport, OutputFile
    from autosplit.pipeline.outputs import OutputCommitError, commit_outputs

    secret_dir = tmp_path / "elsewhere"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("private key")
    job = tmp_path / "job"
    dest = tmp_path / "dest"
    report = JobReport(job_id="c1-1", outputs=[OutputFile(name=str(job / "out" / "secret.txt"))])
    # 1. out/ itself replaced by a link to a directory outside.
    job.mkdir()
    (job / "out").symlink_to(secret_dir)
    with pytest.raises(OutputCommitError, match="link"):
        commit_outputs(report, job / "out", dest, "c1-1")
    # 2. a link inside out/ (to a file, and through a directory link).
    (job / "out").unlink()
    (job / "out").mkdir()
    (job / "out" / "secret.txt").symlink_to(secret_dir / "secret.txt")
    (job / "out" / "sub").symlink_to(secret_dir)
    for name in ("secret.txt", "sub/secret.txt"):
        report = JobReport(job_id="c1-1", outputs=[OutputFile(name=name)])
        with pytest.raises(OutputCommitError):
            commit_outputs(report, job / "out", dest, "c1-1")
    assert not any(p.is_file() for p in dest.rglob("*")) if dest.exists() else True
    # 3. a plain file is committed, as before.
    (job / "out" / "ok.txt").write_text("fine")
    report = JobReport(job_id="c1-1", outputs=[OutputFile(name="ok.txt")])
    assert commit_outputs(report, job / "out", dest, "c1-1") == [dest / "c1-1" / "ok.txt"]
    assert (dest / "c1-1" / "ok.txt").read_text() == "fine"


def test_forged_stage_out_records_are_refused(tmp_path: Path) -> None:
    from autosplit.jobreport import JobReport, OutputFile
    from autosplit.pipeline.postjob import _trusted_staged
    from tests.pipeline_helpers import make_task

    task = make_task(tmp_path, extra='[output]\nstage_out = "aso"\n')
    out = task.output_dir("c2-1")
    report = JobReport(job_id="c2-1", outputs=[OutputFile(name=str(out / "result.txt"))])

    def record(dest, source=None):
        return {
            "source_path": source or f"{task.name}/c2-1/0/{dest}",
            "dest_path": dest,
            "size": 1,
            "checksum": "00000001",
        }

    assert _trusted_staged(task, "c2-1", 0, report, [record("c2-1/result.txt")]) is not None
    for forged in (
        [record("probe-2/result.txt")],  # another job's destination
        [record("c2-1/result.txt", source=f"{task.name}/probe-2/0/c2-1/result.txt")],
        [record("c2-1/other.txt")],  # not an output of the report
        [record("c2-1/result.txt"), record("c2-1/../probe-2/result.txt")],
        "not a list",
    ):
        assert _trusted_staged(task, "c2-1", 0, report, forged) is None, forged


def test_outputs_of_an_attempt_whose_postjob_was_killed_do_not_stay_committed(tmp_path: Path) -> None:
    """A postjob killed between the commit and the ledger record: the node is retried (DAGMan RETRY), and
    if the next attempt is not accepted its postjob removes the unaccounted files."""
    from autosplit.pipeline.outputs import commit_outputs
    from autosplit.pipeline.postjob import run_postjob
    from tests.pipeline_helpers import fake_report, make_task

    task = make_task(tmp_path)
    _bound(task, "c1-1")
    output = _job_output(task, "c1-1", "result.txt", "attempt 0")
    report = _with_outputs(fake_report(task, "c1-1"), task, "c1-1", [output])
    commit_outputs(report, task.output_dir("c1-1"), task.destination, "c1-1")  # ... and then killed
    _bound(task, "c1-1")  # the retry's PRE script: same job, files rewritten
    fake_report(task, "c1-1", exit_code=1, attempt=1)  # the retry fails
    result = run_postjob(task, "c1-1", 1, 1, 2)
    assert result.outcome in ("failed", "unit-failure"), result
    assert not (task.destination / "c1-1").exists(), "no committed output without an accepted attempt"


def test_postjob_killed_in_the_middle_of_a_commit_and_run_again_commits_each_file_once(
    tmp_path: Path,
) -> None:
    """Defect 6/8 of issue 14: the postjob's re-run (DAGMan re-runs it, or the node's RETRY) after a kill
    half-way through moving 200 outputs finishes the commit: every file once, nothing left behind."""
    from autosplit.pipeline.outputs import commit_outputs
    from autosplit.pipeline.postjob import run_postjob
    from tests.pipeline_helpers import fake_report, make_task

    task = make_task(tmp_path)
    _bound(task, "c1-1")
    outputs = [_job_output(task, "c1-1", f"part-{i:03d}.txt", f"payload {i}") for i in range(200)]
    report = _with_outputs(fake_report(task, "c1-1"), task, "c1-1", outputs)
    half = msgspec_replace(report, outputs=outputs[:100])
    commit_outputs(half, task.output_dir("c1-1"), task.destination, "c1-1")  # killed after 100 files
    first = run_postjob(task, "c1-1", 0, 0, 1)
    again = run_postjob(task, "c1-1", 0, 0, 1)  # and once more: the stored decision
    assert first.outcome == again.outcome == "ok", first
    committed = sorted(p.name for p in (task.destination / "c1-1").iterdir())
    assert committed == [f"part-{i:03d}.txt" for i in range(200)]
    assert (task.destination / "c1-1" / "part-150.txt").read_text() == "payload 150"
    assert not list(task.output_dir("c1-1").glob("part-*")), "moved, not copied"


@pytest.mark.slow
def test_commit_of_20000_outputs_is_fast(tmp_path: Path) -> None:
    """Defect 8 of issue 14: committing a report of 20,000 outputs took the postjob 77 s (a copy and an
    fsync per file). Now: checks, one sync, a rename per file (about 2 s here under load; 73 s before)."""
    import time

    from autosplit.jobreport import JobReport, OutputFile
    from autosplit.pipeline.outputs import commit_outputs

    out = tmp_path / "job" / "out"
    out.mkdir(parents=True)
    outputs = []
    for i in range(20_000):
        name = f"f{i:05d}.txt"
        (out / name).write_text(str(i))
        outputs.append(OutputFile(name=name, bytes=len(str(i)), checksum=f"{zlib_adler(str(i)):08x}"))
    report = JobReport(job_id="c1-1", outputs=outputs)
    started = time.perf_counter()
    committed = commit_outputs(report, out, tmp_path / "dest", "c1-1")
    seconds = time.perf_counter() - started
    assert len(committed) == 20_000 and (tmp_path / "dest" / "c1-1" / "f19999.txt").read_text() == "19999"
    assert seconds < 20, f"{seconds:.1f} s for 20,000 outputs"


def zlib_adler(text: str) -> int:
    import zlib

    return zlib.adler32(text.encode()) & 0xFFFFFFFF


def msgspec_replace(struct, **changes):
    import msgspec

    return msgspec.structs.replace(struct, **changes)


# ----------------------------------------------------------------------------- defect 6: restarts
class _FakeTask:
    def __init__(self, root: Path) -> None:
        from types import SimpleNamespace

        self.root = root
        self.dag_dir = root / "dag"
        self.top_dag = self.dag_dir / "task.dag"
        self.config = SimpleNamespace(backend=SimpleNamespace(kind="local"))


def test_run_restarts_a_dying_executor_as_long_as_the_task_progresses(tmp_path: Path, monkeypatch) -> None:
    """Defect 6 of issue 14: ``run`` restarted a crashed executor at most 3 times per invocation, even
    when each executor got the task further before it died."""
    import autosplit.pipeline.runner as runner

    starts = []
    done = {"n": 0}

    def fake_status(task):
        state = "completed" if done["n"] >= 8 else "running"
        return {"state": state, "units": {"done": done["n"]}, "stages": {}}

    def fake_start(task, dag):
        starts.append(dag)
        done["n"] += 1  # each executor gets one more unit done, then dies

    monkeypatch.setattr(runner, "task_status", fake_status)
    monkeypatch.setattr(runner, "active_dags", lambda task: [])
    monkeypatch.setattr(runner, "start", fake_start)
    final = runner.follow(_FakeTask(tmp_path), poll=0.0, timeout=30)
    assert final["state"] == "completed" and len(starts) == 8

    # Without progress, it still gives up after MAX_RESTARTS deaths in a row.
    starts.clear()
    monkeypatch.setattr(runner, "start", lambda task, dag: starts.append(dag))
    done["n"] = 0
    with pytest.raises(TaskError, match="stopped before the task ended"):
        runner.follow(_FakeTask(tmp_path), poll=0.0, timeout=30)
    assert len(starts) == runner.MAX_RESTARTS


# ----------------------------------------------------------------------------- defect 9 (small ones)
def test_summary_output_files_point_at_committed_outputs(tmp_path: Path) -> None:
    from autosplit.pipeline.postjob import run_postjob
    from autosplit.pipeline.report import write_report
    from tests.pipeline_helpers import fake_report, make_task

    task = make_task(tmp_path)
    _bound(task, "c1-1")
    output = _job_output(task, "c1-1", "sub/result.txt", "histogram")
    _with_outputs(fake_report(task, "c1-1"), task, "c1-1", [output])
    assert run_postjob(task, "c1-1", 0, 0, 1).outcome == "ok"
    summary = write_report(task, tmp_path / "results")
    [entry] = summary["output_files"]
    assert entry["name"] == str(task.destination / "c1-1" / "sub" / "result.txt") and entry["exists"]
    assert Path(entry["name"]).read_text() == "histogram"


def test_scripts_stderr_is_kept_in_the_task_logs(tmp_path: Path) -> None:
    """Defect 5 of issue 14: PRE/POST script stderr was discarded. Every SCRIPT line of the task's DAGs
    appends it to logs/scripts.err (DAGMan's SCRIPT DEBUG, honoured by the local executor too)."""
    from tests.pipeline_helpers import make_task

    task = make_task(tmp_path)
    scripts = [line for line in task.top_dag.read_text().splitlines() if line.startswith("SCRIPT")]
    assert scripts
    for line in scripts:
        assert f" DEBUG {task.logs_dir / 'scripts.err'} STDERR " in line, line


def test_dryrun_names_the_readme_command_and_checkout_files_are_ignored() -> None:
    import subprocess

    from autosplit.cli.dryrun_cmd import _submit_command

    assert _submit_command("task.toml") == "autosplit run task.toml"
    root = Path(__file__).resolve().parents[1]
    if (root / ".git").exists():
        ignored = subprocess.run(
            ["git", "check-ignore", "dryrun.png", "plan.json"], cwd=root, capture_output=True, text=True
        )
        assert ignored.stdout.split() == ["dryrun.png", "plan.json"]
    toml = (root / "examples" / "nanoaod" / "task.toml").read_text()
    assert "Build the data first" not in toml and "committed" in toml


# ----------------------------------------------------------------------------- found by the campaign
def test_probe_rounds_lost_to_kills_do_not_quarantine_the_task(tmp_path: Path) -> None:
    import polars as pl

    from autosplit.pipeline.bind import bind
    from autosplit.pipeline.postjob import run_postjob
    from tests.pipeline_helpers import make_task

    task = make_task(tmp_path, n_units=10, probes=1, max_jobs=1)
    for i in range(1, 4):
        code, message = bind(str(task.root), f"c1-{i}")
        assert code == 0, message
        assert run_postjob(task, f"c1-{i}", -9, 0, 2).outcome == "lost"  # SIGKILLed, no report
    with task.ledger() as ledger:
        units = ledger.units()
    assert units.filter(pl.col("state") == "quarantined").height == 0, units["reason"].unique().to_list()


# =============================================================================================================
# The fault-injection campaign: a small example-like task run by `autosplit run`, faults at random moments.
# =============================================================================================================
FAULT_PAYLOAD = """
import json
import time


def run(job):
    done = []
    for unit in job.iter_units():
        time.sleep(unit.events * {seconds_per_event})
        done.append([unit.run, unit.lumi])
    out = job.output_path("units.json")
    out.write_text(json.dumps(done))
    job.add_output(out)
"""

KILLS = ("runner", "executor", "wrapper", "payload", "postjob")
REPORT_FAULTS = ("corrupt-report", "forge-report", "symlink-out")
FAULTS = KILLS + REPORT_FAULTS


def _processes(kind: str, task_root: str) -> list:
    """This task's live processes of one kind (never anything else on the machine)."""
    import psutil

    needle = {
        "executor": "autosplit.backends.local",
        "wrapper": "wrapper",
        "payload": "autosplit.worker",
        "postjob": "autosplit.pipeline.postjob",
    }[kind]
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            cmd = proc.info["cmdline"] or []
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        if proc.info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        text = " ".join(cmd)
        if task_root in text and needle in text and (kind != "wrapper" or "autosplit.worker" not in text):
            found.append(proc)
    return found


def _start_runner(workdir: Path, config: Path):
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        [sys.executable, "-m", "autosplit", "run", str(config), "--poll", "0.2"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )


def _spoil_report(kind: str, task_root: Path, rng) -> bool:
    """Corrupt or forge one job's report (or its out/) at this moment; True when something was changed."""
    import json
    import shutil

    jobs = sorted(p for p in (task_root / "jobs").glob("*") if p.is_dir())
    if kind == "symlink-out":
        candidates = [j for j in jobs if (j / "out").is_dir() and not (j / "out").is_symlink()]
        others = [j for j in jobs if (j / "out").is_dir()]
        if not candidates or len(others) < 2:
            return False
        victim = rng.choice(candidates)
        target = rng.choice([j for j in others if j != victim])
        shutil.rmtree(victim / "out", ignore_errors=True)
        try:
            (victim / "out").symlink_to(target / "out")
        except OSError:
            return False
        return True
    reports = [j / "report.json" for j in jobs if (j / "report.json").is_file()]
    if not reports:
        return False
    path = rng.choice(reports)
    try:
        text = path.read_text()
    except OSError:
        return False
    if kind == "corrupt-report":
        variants = [
            text[: len(text) // 2],
            "",
            "\x00\xff" * 50,
            "[" * 100_000,
            json.dumps({"format": "nonsense"}),
        ]
        path.write_text(rng.choice(variants), errors="surrogateescape")
        return True
    try:  # forge-report: a report that passes for the job's but claims what is not its own
        report = json.loads(text)
    except (ValueError, RecursionError):  # an earlier corruption of the same report
        return False
    if not isinstance(report, dict):
        return False
    others = [j for j in jobs if j != path.parent and (j / "out").is_dir()]
    choice = rng.randrange(3)
    if choice == 0 and others:
        victim = rng.choice(others)
        report["outputs"] = [{"name": str(victim / "out" / "units.json")}]
    elif choice == 1:
        report["outputs"] = [{"name": str(task_root / "outputs" / "c1-1" / "units.json")}]
    else:
        units = list(report.get("units") or [])
        units.append({"run": 297050, "lumi": 10_000 + rng.randrange(100), "events": 1, "seconds": 0.1})
        report["units"] = units
    path.write_text(json.dumps(report))
    return True


def check_invariants(task, tmp: Path, *, final: bool = True) -> dict:
    """The exact checks after a run: the three lumi lists partition the input; no unit is in two committed
    outputs; each committed output's units are exactly the ledger's done units of that job. Returns counts
    (``units_lost``, ``units_double``) and the problems found.

    While the task runs (``final=False``) a job's postjob may be between moving its outputs and recording
    the attempt (or killed there, its node about to be retried with the same units): a committed output
    may then also hold units the ledger still has assigned to that same job, and no others."""
    import json

    import polars as pl

    from autosplit.datasets import LumiMask
    from autosplit.pipeline.report import write_report

    problems: list[str] = []
    summary = write_report(task, tmp / "results")
    lists = {
        name: LumiMask.from_json(tmp / "results" / f"{name}.json")
        for name in ("processedLumis", "notFinishedLumis", "quarantinedLumis")
    }
    input_units = {(int(r), int(lu)) for r, lu in task.dataset.units.select("run", "lumi").rows()}
    listed: dict[tuple[int, int], int] = {}
    for mask in lists.values():
        for pair in _mask_pairs(mask):
            listed[pair] = listed.get(pair, 0) + 1
    lost = input_units - set(listed)
    double = {p for p, n in listed.items() if n > 1}
    extra = set(listed) - input_units
    if lost or double or extra:
        problems.append(f"lumi lists: {len(lost)} missing, {len(double)} in two lists, {len(extra)} foreign")
    with task.ledger() as ledger:
        units = ledger.units()
    done = units.filter(pl.col("state") == "done")
    by_node: dict[str, set] = {}
    for r, lu, node in done.select("run", "lumi", "node").rows():
        by_node.setdefault(node, set()).add((int(r), int(lu)))
    in_flight: dict[str, set] = {}
    for r, lu, node in units.filter(pl.col("state") == "assigned").select("run", "lumi", "node").rows():
        in_flight.setdefault(node, set()).add((int(r), int(lu)))
    in_outputs: dict[tuple[int, int], int] = {}
    committed_nodes = set()
    for path in sorted(task.destination.glob("*/units.json")):
        node = path.parent.name
        committed_nodes.add(node)
        try:
            pairs = {(int(r), int(lu)) for r, lu in json.loads(path.read_text())}
        except (ValueError, TypeError):
            problems.append(f"{path}: unreadable committed output")
            continue
        for pair in pairs:
            in_outputs[pair] = in_outputs.get(pair, 0) + 1
        expected = by_node.get(node, set())
        if pairs != expected and (final or not expected <= pairs <= expected | in_flight.get(node, set())):
            problems.append(
                f"{node}: output holds {len(pairs)} unit(s), the ledger has {len(by_node.get(node, ()))} done"
            )
    for node in (set(by_node) - committed_nodes) if final else ():
        problems.append(f"{node}: {len(by_node[node])} unit(s) done in the ledger without a committed output")
    output_double = {p for p, n in in_outputs.items() if n > 1}
    if output_double:
        problems.append(f"{len(output_double)} unit(s) in two committed outputs")
    done_without_output = (
        {(int(r), int(lu)) for r, lu in done.select("run", "lumi").rows()} - set(in_outputs)
        if final
        else set()
    )
    return {
        "units_lost": len(lost | done_without_output),
        "units_double": len(double | output_double),
        "problems": problems,
        "summary": summary["units"],
    }


def _mask_pairs(mask) -> set[tuple[int, int]]:
    pairs = set()
    for run, ranges in mask.to_dict().items():
        for lo, hi in ranges:
            pairs.update((int(run), lumi) for lumi in range(int(lo), int(hi) + 1))
    return pairs


def fault_run(
    workdir: Path,
    seed: int,
    faults: list[str] | None = None,
    *,
    n_faults: int = 5,
    probes: int = 1,
    window: float = 25.0,
    timeout: float = 180.0,
) -> dict:
    """One small task (10 lumis in 3 files: probes, processing, a tail) under ``autosplit run``, with
    ``faults`` (else ``n_faults`` drawn from :data:`FAULTS`), each at a random moment of the task's life.

    Each applied fault is one *run*: right after it (before the next one) the invariants are checked as
    they must hold while the task runs, and once the task has ended, exactly (:func:`check_invariants`).
    The runs of one task share its work. Returns ``{seed, runs: [{fault, problems, ...}], kills, state,
    task_failed, units_lost, units_double, problems}``; ``task_failed`` is a task that did not complete
    although its only faults were kills of the infrastructure.
    """
    import random
    import signal
    import time

    from autosplit.pipeline.control import active_dags
    from autosplit.pipeline.status import FINAL_STATES, task_status
    from autosplit.pipeline.taskdir import TaskDir
    from tests.pipeline_helpers import write_dataset

    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "payload.py").write_text(FAULT_PAYLOAD.format(seconds_per_event=0.01))
    config = write_config(
        workdir,
        code="payload:run",
        name=f"f{seed}",
        n_units=10,
        target="1s",
        probe="0.5s",
        probes=probes,
        tails=1,
        max_jobs=2,
        probe_fraction=0.1,
    )
    write_dataset(workdir / "ds.parquet", n_units=10, lumis_per_file=4, events=50, seed=seed)
    if faults is None:
        faults = [rng.choice(FAULTS) for _ in range(n_faults)]
    # Random moments over the task's life (about 10-40 s here, most of it with jobs and scripts running).
    pending = sorted((rng.uniform(0.2, window), kind) for kind in faults)
    root = workdir / "tasks" / f"f{seed}"
    started = time.monotonic()
    runner = _start_runner(workdir, config)
    kills, runs = 0, []
    deadline = started + timeout
    runner_restarts = 0
    waiting_since: float | None = None

    def task_ended() -> bool:
        try:
            task = TaskDir(root)
            return task.exists() and task_status(task)["state"] in FINAL_STATES and not active_dags(task)
        except Exception:  # noqa: BLE001 - being created
            return False

    def record(kind: str) -> None:
        entry = {"fault": kind, "at": round(time.monotonic() - started, 2), "problems": []}
        task = TaskDir(root)
        if task.exists():
            checks = check_invariants(task, workdir / "mid", final=False)
            entry.update(units_lost=checks["units_lost"], units_double=checks["units_double"])
            entry["problems"] = checks["problems"]
        runs.append(entry)

    while time.monotonic() < deadline:
        now = time.monotonic() - started
        if pending and now >= pending[0][0]:
            kind = pending[0][1]
            done = False
            if kind == "runner":
                if runner.poll() is None:
                    os.killpg(runner.pid, signal.SIGKILL)
                    runner.wait()
                    kills += 1
                    done = True
                    time.sleep(rng.uniform(0.0, 1.0))  # the user starts it again
                    runner = _start_runner(workdir, config)
            elif kind in KILLS:
                procs = _processes(kind, str(root))
                if procs:
                    time.sleep(rng.uniform(0.0, 0.3))  # a random moment of its life
                    try:
                        rng.choice(procs).send_signal(signal.SIGKILL)
                        kills += 1
                        done = True
                    except Exception:  # noqa: BLE001 - it ended by itself meanwhile: try again
                        pass
            else:
                done = _spoil_report(kind, root, rng)
            if done:
                pending.pop(0)
                waiting_since = None
                time.sleep(0.2)
                record(kind)
            else:
                waiting_since = waiting_since if waiting_since is not None else now
                if now - waiting_since > 15:  # nothing of that kind came along
                    pending.pop(0)
                    waiting_since = None
        if runner.poll() is not None:
            if task_ended():
                break
            if runner_restarts < 3:  # `run` gave up: a user tries again
                runner_restarts += 1
                runner = _start_runner(workdir, config)
        time.sleep(0.05)
    if runner.poll() is None:
        os.killpg(runner.pid, signal.SIGKILL)
        runner.wait()
    task = TaskDir(root)
    result = {
        "seed": seed,
        "runs": runs,
        "kills": kills,
        "runner_restarts_by_user": runner_restarts,
        "seconds": round(time.monotonic() - started, 1),
    }
    if not task.exists():
        result.update(
            state="not-created",
            task_failed=True,
            units_lost=0,
            units_double=0,
            problems=["the task was never created"],
        )
        return result
    status = task_status(task)
    checks = check_invariants(task, workdir)
    killed_only = all(r["fault"] in KILLS for r in runs)
    problems = checks["problems"] + [p for r in runs for p in r["problems"]]
    if status["state"] not in FINAL_STATES:
        problems.append("the task did not end")
    with task.ledger() as ledger:
        reasons = ledger.units()["reason"].drop_nulls().unique().to_list()
    result.update(
        state=status["state"],
        units=status["units"],
        quarantine_reasons=[str(r)[:200] for r in reasons],
        task_failed=status["state"] != "completed" and killed_only,
        units_lost=max([checks["units_lost"], *(r.get("units_lost", 0) for r in runs)]),
        units_double=max([checks["units_double"], *(r.get("units_double", 0) for r in runs)]),
        problems=problems,
    )
    _stop_everything(str(root))
    return result


def _stop_everything(task_root: str) -> None:
    """Leave nothing of a run behind (an executor still running after a timeout)."""
    import signal

    for kind in ("executor", "postjob", "wrapper", "payload"):
        for proc in _processes(kind, task_root):
            try:
                proc.send_signal(signal.SIGKILL)
            except Exception:  # noqa: BLE001
                pass


CI_SEEDS = list(range(1, 9))  # 8 tasks, 5 faults each in the first 12 s: 30 fault runs or more


@pytest.mark.faults
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_fault_injection(tmp_path: Path, seed: int) -> None:
    import random

    rng = random.Random(1000 + seed)
    # Every kind comes up across the seeds (a fixed rotation), the rest drawn at random.
    faults = [FAULTS[(2 * seed) % len(FAULTS)], FAULTS[(2 * seed + 1) % len(FAULTS)]]
    faults += [rng.choice(FAULTS) for _ in range(3)]
    result = fault_run(tmp_path, seed, faults, probes=2, window=12.0)
    assert result["problems"] == [], result
    assert result["units_lost"] == 0 and result["units_double"] == 0, result
    assert len(result["runs"]) >= 2, f"faults not applied: {result}"
    if all(r["fault"] in KILLS for r in result["runs"]):
        assert result["state"] == "completed", result
    else:  # a corrupted or forged report costs its job; every unit still ends done or given up for a reason
        assert result["state"] in ("completed", "completed-with-quarantine"), result


def test_job_output_directory_replaced_by_a_link_loop_is_made_anew(tmp_path: Path) -> None:
    """Found by the campaign: a job that replaced its out/ by a link (here a loop through another job's)
    made every later bind of its node fail (FileExistsError), the node failed with its units still bound,
    and the task waited for them for ever. The link is removed, never followed, and out/ made anew."""
    from autosplit.pipeline.bind import bind
    from tests.pipeline_helpers import make_task

    task = make_task(tmp_path)
    _bound(task, "c1-1")
    _bound(task, "c2-1")
    for a, b in (("c1-1", "c2-1"), ("c2-1", "c1-1")):
        out = task.output_dir(a)
        if out.is_symlink():
            out.unlink()
        else:
            import shutil

            shutil.rmtree(out)
        out.symlink_to(task.output_dir(b))
    code, message = bind(str(task.root), "c1-1")  # the node's retry: same job, files rewritten
    assert code == 0, message
    assert task.output_dir("c1-1").is_dir() and not task.output_dir("c1-1").is_symlink()
