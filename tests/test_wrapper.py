"""The job wrapper: payload kinds, measured resources, exit codes, hard limit with SIGTERM then SIGKILL."""

from __future__ import annotations

import json
import sys
import textwrap
import time
from pathlib import Path

from click.testing import CliRunner

from autosplit.cli import cli
from autosplit.jobreport import JobReport
from autosplit.pipeline.wrapper import EXIT_HARD_KILLED, EXIT_NO_REPORT, EXIT_OK, run_wrapper
from autosplit.worker import EXIT_USER_ERROR, FileUnits, JobSpec

PAYLOADS = '''
import time
import numpy as np


def busy(job):
    """Burns a little CPU per unit and writes an output."""
    total = 0.0
    for unit in job.iter_units():
        total += float(np.sum(np.random.default_rng(unit.lumi).random(200_000)))
    out = job.output_path("total.txt")
    out.write_text(str(total))
    job.add_output(out)


def crash_on_three(job):
    for unit in job.iter_units():
        if unit.lumi == 3:
            raise ValueError("cannot read lumi 3")


def slow(job):
    """Two quick units, then units that each last until SIGTERM asks the job to stop."""
    for unit in job.iter_units():
        while unit.lumi >= 3 and not job.should_stop():
            time.sleep(0.02)


def stuck(job):
    """Two quick units, then a unit that never returns."""
    for unit in job.iter_units():
        if unit.lumi >= 3:
            with open(job.output_path("started-3"), "w") as f:
                f.write(repr(time.time()))
            time.sleep(60)


def gives_up(job):
    """Two quick units, then a long unit it abandons when asked to stop (SIGTERM)."""
    for unit in job.iter_units():
        while unit.lumi >= 3:
            if job.should_stop():
                return
            time.sleep(0.02)


def dies(job):
    """Two quick units, then the process dies in the middle of unit 3 (no report, no exception)."""
    import os

    for unit in job.iter_units():
        if unit.lumi >= 3:
            time.sleep(0.5)
            os._exit(3)
'''


def write_spec(tmp_path: Path, code: dict, n_units: int = 5, **fields) -> Path:
    units = [{"run": 7, "lumi": lumi, "events": 100} for lumi in range(1, n_units + 1)]
    spec = JobSpec(
        task="t",
        job_id="job-3",
        stage="processing",
        output_dir=str(tmp_path / "out"),
        files=[FileUnits(lfn="/store/x.root", units=units)],
        code=code,
        **fields,
    )
    (tmp_path / "payloads.py").write_text(PAYLOADS)
    return spec.write(tmp_path / "spec.json")


def test_callable_success_records_resources(tmp_path) -> None:
    spec = write_spec(tmp_path, {"callable": "payloads:busy"})
    result = run_wrapper(spec, cwd=tmp_path, site="T2_TEST")
    assert result.exit_code == EXIT_OK and result.payload_exit_code == 0
    report = JobReport.from_json(tmp_path / "out" / "report.json")
    assert [u["lumi"] for u in report.units] == [1, 2, 3, 4, 5]
    assert report.cpu_seconds > 0 and report.wall_seconds > 0
    assert report.peak_rss_bytes > 20e6, "the payload's Python process is measured, not the wrapper's"
    assert report.site == "T2_TEST"
    assert report.outputs[0].name.endswith("total.txt") and report.outputs[0].bytes > 0


def test_user_code_failure(tmp_path) -> None:
    spec = write_spec(tmp_path, {"callable": "payloads:crash_on_three"})
    result = run_wrapper(spec, cwd=tmp_path)
    assert result.exit_code == EXIT_USER_ERROR
    report = result.report
    assert "cannot read lumi 3" in report.exit_message
    assert [u["lumi"] for u in report.units] == [1, 2]
    assert [u["lumi"] for u in report.unfinished] == [3, 4, 5]


def test_executable_without_report(tmp_path) -> None:
    spec = write_spec(tmp_path, {"executable": [sys.executable, "-c", "print('hello')"]})
    result = run_wrapper(spec, cwd=tmp_path)
    assert result.exit_code == EXIT_NO_REPORT
    report = JobReport.from_json(tmp_path / "out" / "report.json")
    assert "no valid report" in report.exit_message and len(report.unfinished) == 5


def test_executable_writing_its_own_report(tmp_path) -> None:
    script = textwrap.dedent(
        """
        import json, os
        spec = json.load(open(os.environ["AUTOSPLIT_JOB_SPEC"]))
        units = spec["files"][0]["units"]
        report = {"format": "autosplit-jobreport/1", "job_id": spec["job_id"],
                  "units": [{"run": u["run"], "lumi": u["lumi"], "events": u["events"]} for u in units[:3]]}
        json.dump(report, open(os.environ["AUTOSPLIT_JOB_REPORT"], "w"))
        """
    )
    (tmp_path / "own.py").write_text(script)
    spec = write_spec(tmp_path, {"executable": [sys.executable, str(tmp_path / "own.py")]})
    result = run_wrapper(spec, cwd=tmp_path)
    assert result.exit_code == EXIT_OK
    assert [u["lumi"] for u in result.report.unfinished] == [4, 5], "units the report omits are unfinished"


def test_report_claiming_foreign_units_is_rejected(tmp_path) -> None:
    script = (
        "import json, os\n"
        "json.dump({'format': 'autosplit-jobreport/1', 'job_id': 'job-3', 'units': [{'run': 9, 'lumi': 9}]},"
        " open(os.environ['AUTOSPLIT_JOB_REPORT'], 'w'))\n"
    )
    spec = write_spec(tmp_path, {"executable": [sys.executable, "-c", script]})
    result = run_wrapper(spec, cwd=tmp_path)
    assert result.exit_code == EXIT_NO_REPORT and "not assigned" in result.report.exit_message


def test_hard_limit_sigterm_stops_the_worker_cleanly(tmp_path) -> None:
    spec = write_spec(tmp_path, {"callable": "payloads:slow"}, hard_limit_seconds=1.0)
    result = run_wrapper(spec, cwd=tmp_path, grace_seconds=20.0)
    assert result.exit_code == EXIT_HARD_KILLED and result.hard_killed
    assert result.payload_exit_code == 0, "the worker stopped on SIGTERM and wrote its report"
    assert result.wall_seconds < 10, "no SIGKILL was needed"
    report = JobReport.from_json(tmp_path / "out" / "report.json")
    assert report.hard_killed and [u["lumi"] for u in report.units] == [1, 2, 3]
    assert [u["lumi"] for u in report.unfinished] == [4, 5]


def test_hard_limit_sigkill_keeps_journaled_units(tmp_path) -> None:
    spec = write_spec(tmp_path, {"callable": "payloads:stuck"}, hard_limit_seconds=1.0)
    result = run_wrapper(spec, cwd=tmp_path, grace_seconds=0.5)
    assert result.exit_code == EXIT_HARD_KILLED and result.payload_exit_code == -9
    report = JobReport.from_json(tmp_path / "out" / "report.json")
    assert report.hard_killed and [u["lumi"] for u in report.units] == [1, 2]
    assert [u["lumi"] for u in report.unfinished] == [3, 4, 5]


def test_unit_stuck_past_the_hard_limit_is_reported_in_progress(tmp_path) -> None:
    spec = write_spec(tmp_path, {"callable": "payloads:stuck"}, hard_limit_seconds=1.0)
    before = time.time()
    result = run_wrapper(spec, cwd=tmp_path, grace_seconds=0.5)
    ended = time.time()
    assert result.exit_code == EXIT_HARD_KILLED and result.payload_exit_code == -9
    report = JobReport.from_json(tmp_path / "out" / "report.json")
    started = float((tmp_path / "out" / "started-3").read_text())
    cut = report.in_progress
    assert (cut["run"], cut["lumi"]) == (7, 3) and report.meta["in_progress_unit"] == [7, 3]
    # The seconds spent on it: from its start to the SIGKILL, 1.5 s after the payload started.
    assert before + 1.5 - started <= cut["seconds"] <= ended - started
    assert cut["seconds"] <= result.wall_seconds
    assert [u["lumi"] for u in report.unfinished] == [3, 4, 5]


def test_payload_that_gives_up_on_sigterm_reports_the_unit_in_progress(tmp_path) -> None:
    spec = write_spec(tmp_path, {"callable": "payloads:gives_up"}, hard_limit_seconds=1.0)
    result = run_wrapper(spec, cwd=tmp_path, grace_seconds=20.0)
    assert result.exit_code == EXIT_HARD_KILLED and result.payload_exit_code == 0
    report = JobReport.from_json(tmp_path / "out" / "report.json")
    assert report.meta.get("report_source") is None, "the payload's own report"
    assert [u["lumi"] for u in report.units] == [1, 2]
    assert report.in_progress_pair == (7, 3) and 0.0 < report.censored_seconds < result.wall_seconds


def test_payload_dying_mid_unit_reports_it_in_progress(tmp_path) -> None:
    spec = write_spec(tmp_path, {"callable": "payloads:dies"})
    result = run_wrapper(spec, cwd=tmp_path)
    assert result.exit_code == EXIT_USER_ERROR and result.payload_exit_code == 3
    report = result.report
    assert [u["lumi"] for u in report.units] == [1, 2] and not report.hard_killed
    assert report.in_progress_pair == (7, 3) and 0.45 <= report.censored_seconds < result.wall_seconds


def test_hard_limit_sigkill_when_sigterm_is_ignored(tmp_path) -> None:
    script = (
        "import json, os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "path = os.environ['AUTOSPLIT_JOB_REPORT'] + '.progress'\n"
        "open(path, 'a').write(json.dumps({'run': 7, 'lumi': 1, 'events': 100, 'seconds': 0.1}) + '\\n')\n"
        "time.sleep(60)\n"
    )
    spec = write_spec(tmp_path, {"executable": [sys.executable, "-c", script]}, hard_limit_seconds=1.0)
    result = run_wrapper(spec, cwd=tmp_path, grace_seconds=0.5)
    assert result.exit_code == EXIT_HARD_KILLED and result.payload_exit_code == -9
    assert [u["lumi"] for u in result.report.units] == [1], "journaled units survive a SIGKILL"
    assert result.wall_seconds < 10
    assert result.report.in_progress is None, "no unit start journaled: nothing known to be in progress"
    assert result.report.meta["in_progress_unit"] == [7, 2]


def test_journal_start_records_from_an_executable(tmp_path) -> None:
    script = (
        "import json, os, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "path = os.environ['AUTOSPLIT_JOB_REPORT'] + '.progress'\n"
        "with open(path, 'a') as f:\n"
        "    f.write(json.dumps({'run': 7, 'lumi': 1, 'events': 100, 'seconds': 0.1}) + '\\n')\n"
        "    f.write(json.dumps({'start': {'run': 7, 'lumi': 2}, 'at': time.time(), 'before': 2.5}) + '\\n')\n"
        '    f.write(\'{"start": {"run": 7, "lu\')\n'  # torn last line
        "time.sleep(60)\n"
    )
    spec = write_spec(tmp_path, {"executable": [sys.executable, "-c", script]}, hard_limit_seconds=1.0)
    result = run_wrapper(spec, cwd=tmp_path, grace_seconds=0.5)
    assert result.exit_code == EXIT_HARD_KILLED
    cut = result.report.in_progress
    assert (cut["run"], cut["lumi"]) == (7, 2)
    assert 2.5 + 0.5 <= cut["seconds"] <= 2.5 + result.wall_seconds, "earlier parts plus time since start"


def test_wrapper_cli(tmp_path) -> None:
    spec = write_spec(tmp_path, {"callable": "payloads:busy"})
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        result = CliRunner().invoke(cli, ["wrapper", str(spec), "--site", "T3_HERE"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output
    assert "5 unit(s) processed" in result.output
    assert json.loads((tmp_path / "out" / "report.json").read_text())["site"] == "T3_HERE"
    bad = CliRunner().invoke(cli, ["wrapper", str(tmp_path / "nope.json")])
    assert bad.exit_code == 83 and "no such job spec" in bad.output


def test_sigterm_to_the_wrapper_stops_the_payload_gracefully(tmp_path) -> None:
    import os
    import signal
    import subprocess
    import time

    spec = write_spec(tmp_path, {"callable": "payloads:slow"})
    proc = subprocess.Popen(
        [sys.executable, "-m", "autosplit", "wrapper", str(spec), "--grace", "20"], cwd=tmp_path
    )
    pid_file = tmp_path / "out" / "wrapper.pid"
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(1.0)  # let it reach the long unit
    os.kill(int(pid_file.read_text()), signal.SIGTERM)
    assert proc.wait(timeout=20) == EXIT_HARD_KILLED
    report = JobReport.from_json(tmp_path / "out" / "report.json")
    assert report.hard_killed and "stopped on request" in report.exit_message
    assert [u["lumi"] for u in report.units] == [1, 2, 3]
    assert not pid_file.exists()


ORPHAN = """#!{python}
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open({pids!r}, "w") as f:
    f.write(f"{{os.getpid()}} {{child.pid}}")
time.sleep(120)
"""


def test_sigkilled_wrapper_leaves_no_payload_running(tmp_path) -> None:
    """Defect 6 of issue 14: a SIGKILLed wrapper left its payload (own session) running outside the job's
    limits. The payload dies with the wrapper (PR_SET_PDEATHSIG), and so does its process group
    (the reaper), grandchildren included."""
    import os
    import signal
    import subprocess

    import psutil

    pids = tmp_path / "pids"
    script = tmp_path / "payload.py"
    script.write_text(ORPHAN.format(python=sys.executable, pids=str(pids)))
    script.chmod(0o755)
    spec = write_spec(tmp_path, {"executable": [str(script)]})
    proc = subprocess.Popen([sys.executable, "-m", "autosplit", "wrapper", str(spec)], cwd=tmp_path)
    deadline = time.monotonic() + 30
    while not (pids.exists() and len(pids.read_text().split()) == 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    payload, grandchild = (int(p) for p in pids.read_text().split())
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)

    def gone(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 10
    while not (gone(payload) and gone(grandchild)) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = [pid for pid in (payload, grandchild) if not gone(pid)]
    for pid in alive:
        os.kill(pid, signal.SIGKILL)
    assert not alive, "the payload and its children die with the wrapper"


def test_payload_leftovers_in_its_group_end_with_the_job(tmp_path) -> None:
    """A payload that exits leaving a child behind in its process group: the child ends with the job."""
    import psutil

    script = tmp_path / "leaves.py"
    pids = tmp_path / "pids"
    script.write_text(
        f"#!{sys.executable}\nimport subprocess, sys\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(pids)!r}, 'w').write(str(child.pid))\n"
    )
    script.chmod(0o755)
    spec = write_spec(tmp_path, {"executable": [str(script)]})
    run_wrapper(spec, cwd=tmp_path)
    child = int(pids.read_text())
    deadline = time.monotonic() + 10
    while psutil.pid_exists(child) and time.monotonic() < deadline:
        try:
            if psutil.Process(child).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    try:
        assert psutil.Process(child).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        pass
