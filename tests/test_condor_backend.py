"""The condor backend without a pool: sandbox and zipapp, job submit descriptions (no shared filesystem,
sites), control through a (fake) schedd, and the defects found on the first real pool run (issue 13)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.pipeline_helpers import make_task

htcondor2 = pytest.importorskip("htcondor2")  # also registers HTCondor's ClassAd functions
classad2 = pytest.importorskip("classad2")

CONDOR = 'kind = "condor"\n'


@pytest.fixture
def no_pool(tmp_path_factory, monkeypatch):
    """An HTCondor configuration whose collector and schedd cannot be reached (whatever pool the
    environment points at), so nothing here can reach a real schedd."""
    folder = tmp_path_factory.mktemp("no-pool")
    config = folder / "condor_config"
    config.write_text(
        "COLLECTOR_HOST = 127.0.0.1:1\nSCHEDD_HOST = nowhere\nSCHEDD_ADDRESS_FILE = "
        f"{folder}/none\nLOCAL_DIR = {folder}\nTOOL_TIMEOUT_MULTIPLIER = 0\n"
    )
    monkeypatch.setenv("CONDOR_CONFIG", str(config))
    htcondor2.reload_config()
    yield config
    monkeypatch.undo()
    htcondor2.reload_config()


class FakeSchedd:
    """Records what the backend asks of the schedd; answers like htcondor2's Schedd."""

    def __init__(self, queue=None, act_result=None):
        self.queue = queue or []
        self.act_result = act_result
        self.acts: list = []
        self.edits: list = []
        self.submits: list = []

    def query(self, constraint="true", projection=()):
        if constraint.startswith("ClusterId == "):
            cluster = int(constraint.split("==")[1])
            return [ad for ad in self.queue if ad.get("ClusterId") == cluster and "AutosplitNode" not in ad]
        if constraint.startswith("AutosplitTask == "):
            return [ad for ad in self.queue if "AutosplitNode" in ad]
        return list(self.queue)

    def act(self, action, spec, reason):
        self.acts.append((action, spec, reason))
        if self.act_result is not None:
            return self.act_result
        return {"TotalSuccess": 1, "TotalNotFound": 0}

    def edit(self, constraint, attr, value, flags=None):
        self.edits.append((constraint, attr, value, flags))
        return 1

    def submit(self, submit):
        self.submits.append(submit)
        raise AssertionError("must not submit here")


def _use(monkeypatch, schedd: FakeSchedd) -> FakeSchedd:
    import autosplit.backends.condor as condor

    monkeypatch.setattr(condor, "_schedd", lambda: schedd)
    return schedd


def _record_cluster(task, cluster: int, dag: Path | None = None) -> None:
    with task.ledger() as ledger:
        ledger.set_meta(condor_cluster=str(cluster), condor_dag=str(dag or task.top_dag))


# ---------------------------------------------------------------------------------------- sandbox, zipapp
def test_sandbox_leaves_out_caches_vcs_data_and_the_task_directory(tmp_path) -> None:
    from autosplit.backends.condor_submit import prepare_sandbox

    (tmp_path / "payload.py").write_text("def run(job):\n    pass\n")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "helper.py").write_text("X = 1\n")
    for junk in (".git/config", "__pycache__/payload.cpython-311.pyc", "big.root", "notes/skip.me"):
        (tmp_path / junk).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / junk).write_text("junk")
    task = make_task(tmp_path, extra=CONDOR + 'sandbox_exclude = ["notes"]\n')
    sandbox, zipapp = prepare_sandbox(task)
    with tarfile.open(sandbox) as tar:
        names = set(tar.getnames())
    assert {"payload.py", "lib/helper.py", "ds.parquet", "task.toml"} <= names
    assert not any(
        n.startswith((".git", "__pycache__", "tasks", "notes")) or n.endswith(".root") for n in names
    )
    assert zipapp.stat().st_mode & 0o111


def test_sandbox_above_the_limit_is_a_clear_error(tmp_path) -> None:
    from autosplit.pipeline.sandbox import SandboxError, build_sandbox

    code = tmp_path / "code"
    code.mkdir()
    (code / "weights.bin").write_bytes(os.urandom(300_000))  # incompressible
    with pytest.raises(
        SandboxError, match=r"0\.\d MB packed.*above the limit of 0\.1 MB; biggest: weights\.bin"
    ):
        build_sandbox(code, tmp_path / "sandbox.tar.gz", limit_mb=0.1)
    assert not (tmp_path / "sandbox.tar.gz").exists()


def test_zipapp_boot_needs_only_the_standard_library(tmp_path) -> None:
    """The job's executable starts under ``python -I -S`` (no site-packages at all): it reads the site from
    the machine ad, unpacks the sandbox, and when the job interpreter is missing leaves a valid report."""
    from autosplit.jobreport import JobReport
    from autosplit.pipeline.sandbox import build_sandbox, build_zipapp

    code = tmp_path / "code"
    code.mkdir()
    (code / "payload.py").write_text("def run(job):\n    pass\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    build_sandbox(code, scratch / "sandbox.tar.gz")
    pyz = build_zipapp(scratch / "autosplit-job.pyz")
    spec = {
        "format": "autosplit-jobspec/1",
        "task": "t",
        "job_id": "c1-1",
        "output_dir": "out",
        "files": [{"lfn": "a.root", "units": [{"run": 1, "lumi": 2, "events": 5}]}],
        "code": {"callable": "payload:run"},
    }
    (scratch / "spec.json").write_text(json.dumps(spec))
    machine_ad = tmp_path / "machine.ad"
    machine_ad.write_text('Name = "slot1@host"\nGLIDEIN_CMSSite = "T2_XX_Alpha"\n')
    env = {"PATH": "/usr/bin:/bin", "_CONDOR_MACHINE_AD": str(machine_ad)}
    done = subprocess.run(
        [sys.executable, "-I", "-S", str(pyz), "boot", "--python", str(tmp_path / "no-such-python")],
        cwd=scratch,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 83, done.stderr
    assert (scratch / "payload.py").exists() and (scratch / "out").is_dir()
    report = JobReport.from_json(scratch / "report.json")
    assert report.site == "T2_XX_Alpha" and report.exit_code == 83
    assert [(u["run"], u["lumi"]) for u in report.unfinished] == [(1, 2)]


def test_zipapp_runs_a_job_with_an_interpreter_that_lacks_autosplit(tmp_path) -> None:
    """Boot + wrapper + worker from the zipapp alone, under an interpreter that cannot import autosplit (a
    venv over this one's site-packages, without the editable install): the report names the site and the
    outputs by their names inside ``out/``."""
    import sysconfig

    from autosplit.jobreport import JobReport
    from autosplit.pipeline.sandbox import build_sandbox, build_zipapp

    env_dir = tmp_path / "jobenv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    job_python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [job_python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    probe = subprocess.run([job_python, "-c", "import autosplit"], capture_output=True, cwd=tmp_path)
    assert probe.returncode != 0, "the job interpreter must not have autosplit"
    code = tmp_path / "code"
    code.mkdir()
    (code / "payload.py").write_text(
        "def run(job):\n"
        "    for unit in job.iter_units():\n"
        "        pass\n"
        "    path = job.output_path('result.txt')\n"
        "    path.write_text('ok')\n"
        "    job.add_output(path)\n"
    )
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    build_sandbox(code, scratch / "sandbox.tar.gz")
    pyz = build_zipapp(scratch / "autosplit-job.pyz")
    spec = {
        "format": "autosplit-jobspec/1",
        "task": "t",
        "job_id": "c1-1",
        "output_dir": "out",
        "files": [{"lfn": "a.root", "units": [{"run": 1, "lumi": n, "events": 5} for n in (1, 2, 3)]}],
        "code": {"callable": "payload:run"},
    }
    (scratch / "spec.json").write_text(json.dumps(spec))
    machine_ad = tmp_path / "machine.ad"
    machine_ad.write_text('GLIDEIN_CMSSite = "T2_XX_Beta"\n')
    done = subprocess.run(
        [
            "/usr/bin/env",
            "python3",
            "-I",
            str(pyz),
            "boot",
            "--python",
            str(job_python),
            "--chirp-interval",
            "1",
        ],
        cwd=scratch,
        env={"PATH": os.environ["PATH"], "_CONDOR_MACHINE_AD": str(machine_ad)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = JobReport.from_json(scratch / "report.json")
    assert report.site == "T2_XX_Beta" and len(report.units) == 3
    assert [o.name for o in report.outputs] == ["result.txt"]
    assert (scratch / "out" / "result.txt").read_text() == "ok"


# ---------------------------------------------------------------------------------------- submit descriptions
def test_condor_job_has_no_shared_filesystem(tmp_path) -> None:
    from autosplit.pipeline.bind import bind

    task = make_task(tmp_path, extra=CONDOR + 'job_python = "/cvmfs/sw/bin/python3"\n')
    code, message = bind(str(task.root), "c1-1")
    assert code == 0, message
    text = (task.job_dir("c1-1") / "job.sub").read_text()
    sub = dict(line.split(" = ", 1) for line in text.splitlines() if " = " in line)
    assert sub["should_transfer_files"] == "YES"
    assert sub["executable"].endswith("sandbox/autosplit-job.pyz") and sub["transfer_executable"] == "true"
    assert sub["arguments"].startswith("boot --python /cvmfs/sw/bin/python3 ")
    assert sub["transfer_output_files"] == "report.json,out"
    assert f"report.json={task.report_path('c1-1')}" in sub["transfer_output_remaps"]
    assert sub["My.WantIOProxy"] == "true" and sub["My.AutosplitStopRequested"] == "false"
    inputs = sub["transfer_input_files"].split(",")
    assert inputs[:2] == [str(task.spec_path("c1-1")), str(task.root / "sandbox" / "sandbox.tar.gz")]
    # The job sees only its scratch directory: nothing in its spec or arguments names the task directory.
    spec = task.spec_path("c1-1").read_text()
    assert str(task.root) not in spec and str(task.root) not in sub["arguments"]
    assert json.loads(spec)["output_dir"] == "out"


def test_local_inputs_travel_with_the_job(tmp_path) -> None:
    from autosplit.backends.condor_submit import localize_spec
    from autosplit.worker import FileUnits, JobSpec

    data = tmp_path / "data"
    data.mkdir()
    (data / "a.root").write_bytes(b"x")
    task = make_task(tmp_path, extra=CONDOR)
    spec = JobSpec(
        task="t",
        job_id="c1-1",
        output_dir="/abs/out",
        site="somewhere",
        files=[
            FileUnits(
                lfn=str(data / "a.root"), units=[{"run": 1, "lumi": 1, "files": [str(data / "a.root")]}]
            ),
            FileUnits(
                lfn="/store/remote.root", units=[{"run": 1, "lumi": 2, "files": ["/store/remote.root"]}]
            ),
        ],
    )
    spec, inputs = localize_spec(task, spec)
    assert inputs == [str(data / "a.root")]
    assert spec.files[0].lfn == "a.root" and spec.files[0].units[0]["files"] == ["a.root"]
    assert spec.files[1].lfn == "/store/remote.root"
    assert spec.output_dir == "out" and spec.site is None


@pytest.mark.parametrize(
    ("locations", "white", "black", "expected"),
    [
        ([["A", "B"], ["B", "C"]], [], [], ["B"]),
        ([["A"], ["C"]], [], [], ["A", "C"]),  # no site has all: any of them
        ([["A", "B"]], ["B", "C"], [], ["B"]),
        ([["A", "B"]], [], ["A"], ["B"]),
        ([[], []], ["X"], [], ["X"]),
        ([], [], ["A"], []),
    ],
)
def test_desired_sites(locations, white, black, expected) -> None:
    from autosplit.backends.condor_submit import desired_sites

    assert desired_sites(locations, white, black) == expected


def _matches(requirements: str, ad_text: str, job: dict) -> bool:
    """The job's requirements evaluated against a machine ad (as the negotiator does)."""
    machine = classad2.ClassAd(ad_text)
    job_ad = classad2.ClassAd()
    for key, value in job.items():
        job_ad[key] = value
    return classad2.ExprTree(requirements).eval(scope=job_ad, target=machine) is True


def test_site_requirements_match_desired_sites_blacklist_and_overflow() -> None:
    import time

    from autosplit.backends.condor_submit import site_requirements

    req = site_requirements("GLIDEIN_CMSSite", ["T2_A"], [], ["T2_C"], overflow_after=3600)
    fresh = {"DESIRED_Sites": "T2_A", "QDate": int(time.time())}
    old = {"DESIRED_Sites": "T2_A", "QDate": int(time.time()) - 7200}
    assert _matches(req, '[GLIDEIN_CMSSite = "T2_A"]', fresh)
    assert not _matches(req, '[GLIDEIN_CMSSite = "T2_B"]', fresh)
    assert _matches(req, '[GLIDEIN_CMSSite = "T2_B"]', old), "overflow after an hour idle"
    assert not _matches(req, '[GLIDEIN_CMSSite = "T2_C"]', old), "never the blacklisted site"
    assert not _matches(req, "[Name = 1]", old), "a machine without a site"
    other = site_requirements("MY_SITE", [], [], ["T2_C"], None)
    assert "TARGET.MY_SITE" in other and _matches(other, '[MY_SITE = "T2_A"]', {})
    assert site_requirements("GLIDEIN_CMSSite", [], [], [], None) is None


def test_job_locations_become_desired_sites(tmp_path) -> None:
    """Per-file locations from a DBS listing end in the job's DESIRED_Sites and requirements."""
    listing = {
        "datasets": {
            "/A/B/NANOAOD": [
                {
                    "lfn": f"/store/f{i}.root",
                    "events": 100,
                    "size": 1000,
                    "locations": ["T2_XX_Alpha"] if i % 2 == 0 else ["T2_XX_Beta"],
                    "lumis": {"297050": [i * 10 + k for k in range(1, 11)]},
                }
                for i in range(4)
            ]
        }
    }
    path = tmp_path / "dbs.json"
    path.write_text(json.dumps(listing))
    from autosplit.datasets import load_dataset

    ds = load_dataset(str(path), dataset="/A/B/NANOAOD")
    assert ds.files["locations"].to_list()[0] == ["T2_XX_Alpha"]
    from autosplit.backends.condor_submit import job_locations
    from autosplit.worker import FileUnits, JobSpec

    (tmp_path / "t").mkdir()
    task = make_task(tmp_path / "t", extra=CONDOR + 'sites_blacklist = ["T2_XX_Gamma"]\n')
    task.__dict__["dataset"] = ds
    spec = JobSpec(task="t", job_id="x", files=[FileUnits(lfn="/store/f1.root", units=[])])
    assert job_locations(task, spec) == [["T2_XX_Beta"]]


# ---------------------------------------------------------------------------------------- defects 1-7
def test_dag_scripts_ignore_an_autosplit_folder_in_the_callers_directory(tmp_path) -> None:
    """Defect 1: scripts run with an absolute interpreter in isolated mode, so a folder named autosplit in
    the directory they run from is never imported; DAGMan itself runs in the DAG's directory."""
    task = make_task(tmp_path, extra=CONDOR)
    decoy = tmp_path / "elsewhere" / "autosplit"
    decoy.mkdir(parents=True)
    (decoy / "__init__.py").write_text("raise ImportError('decoy autosplit imported')\n")
    (decoy / "pipeline").mkdir()
    (decoy / "pipeline" / "__init__.py").write_text("")
    argv = task.script_argv("bind", str(task.root), "c1-1")
    assert os.path.isabs(argv[0]) and argv[1] == "-I"
    dag_text = task.top_dag.read_text()
    assert "SCRIPT DEFER 98" in dag_text and f"{argv[0]} -I -m autosplit.pipeline.bind" in dag_text
    done = subprocess.run(argv, cwd=decoy.parent, capture_output=True, text=True, timeout=120)
    assert "decoy" not in done.stderr and done.returncode == 0, done.stderr
    from autosplit.backends.condor import dag_submit_description

    os.chdir(decoy.parent)
    try:
        submit = dag_submit_description(task.top_dag, {"dagman": "/bin/true"})
    finally:
        os.chdir(Path(__file__).parent.parent)
    assert submit["initialdir"] == str(task.dag_dir)


def test_status_and_resubmit_see_a_running_condor_dag(tmp_path, monkeypatch) -> None:
    """Defect 2: status shows a condor task as running (from the schedd), with its running jobs and their
    chirp progress; resubmit refuses while the DAG is in the queue."""
    from autosplit.pipeline.control import resubmit
    from autosplit.pipeline.status import task_status
    from autosplit.pipeline.taskdir import TaskError

    task = make_task(tmp_path, extra=CONDOR)
    _record_cluster(task, 7)
    _use(
        monkeypatch,
        FakeSchedd(
            queue=[
                {"ClusterId": 7, "JobStatus": 2},
                {
                    "ClusterId": 9,
                    "ProcId": 0,
                    "JobStatus": 2,
                    "AutosplitNode": "c1-1",
                    "AutosplitStage": "probe",
                    "AutosplitUnitsDone": 3,
                    "AutosplitEventsDone": 150,
                    "AutosplitSite": "T2_XX_Alpha",
                },
                {
                    "ClusterId": 10,
                    "ProcId": 0,
                    "JobStatus": 5,
                    "AutosplitNode": "c2-1",
                    "AutosplitStage": "probe",
                    "HoldReason": "Transfer input files failure",
                },
            ]
        ),
    )
    status = task_status(task)
    assert status["state"] == "running" and status["backend"]["running"]
    backend = status["backend"]
    running = backend["running_jobs"][0]
    assert {k: running[k] for k in ("node", "units_done", "events_done", "site")} == {
        "node": "c1-1",
        "units_done": 3,
        "events_done": 150,
        "site": "T2_XX_Alpha",
    }
    assert backend["held_jobs"][0]["hold_reason"] == "Transfer input files failure"
    assert backend["jobs_by_stage"] == {"probe": {"running": 1, "held": 1}}
    with pytest.raises(TaskError, match="still running"):
        resubmit(task)


def test_submit_on_a_running_condor_task_follows_it(tmp_path, monkeypatch) -> None:
    """Defect 3: run/submit on a task whose DAG is in the queue submits nothing and keeps the cluster id."""
    import autosplit.backends.condor as condor
    from autosplit.pipeline.control import start

    task = make_task(tmp_path, extra=CONDOR)
    _record_cluster(task, 7)
    schedd = _use(monkeypatch, FakeSchedd(queue=[{"ClusterId": 7, "JobStatus": 2}]))
    monkeypatch.setattr(condor, "submit_dag", lambda *a, **k: pytest.fail("submitted a second DAGMan"))
    assert start(task) is None
    assert not schedd.submits
    with task.ledger() as ledger:
        assert ledger.get_meta("condor_cluster") == "7"


def test_kill_reports_a_remove_the_schedd_refused(tmp_path, monkeypatch) -> None:
    """Defect 3: kill checks the schedd's answer."""
    from autosplit.backends.condor import CondorError
    from autosplit.pipeline.control import kill

    task = make_task(tmp_path, extra=CONDOR)
    _record_cluster(task, 7)
    _use(
        monkeypatch,
        FakeSchedd(
            queue=[{"ClusterId": 7, "JobStatus": 2}],
            act_result={"TotalSuccess": 0, "TotalPermissionDenied": 1},
        ),
    )
    with pytest.raises(CondorError, match="could not remove DAGMan job 7: permission denied"):
        kill(task)
    schedd = _use(monkeypatch, FakeSchedd(queue=[{"ClusterId": 7, "JobStatus": 2}]))
    assert kill(task)["removed_cluster"] == 7
    assert schedd.acts and schedd.acts[0][1] == "ClusterId == 7"


def test_resume_uses_the_rescue_dag(tmp_path, monkeypatch) -> None:
    """Defect 4: a DAG that ran before is resubmitted without -force, so DAGMan runs its newest rescue DAG
    (nodes done before are not run again) and the rescue files are not renamed away."""
    import autosplit.backends.condor as condor
    from autosplit.backends.condor import dag_submit_description
    from autosplit.pipeline.control import start

    task = make_task(tmp_path, extra=CONDOR)
    _record_cluster(task, 7)
    rescue = task.dag_dir / "task.dag.rescue001"
    rescue.write_text("DONE c1-1\n")
    calls = []
    _use(monkeypatch, FakeSchedd(queue=[]))  # cluster 7 has left the queue
    monkeypatch.setattr(condor, "submit_dag", lambda dag, **kw: calls.append((dag, kw)) or 8)
    start(task)
    assert calls and calls[0][1]["resume"] is True
    with task.ledger() as ledger:
        assert ledger.get_meta("condor_cluster") == "8"
    (task.dag_dir / "task.dag.condor.sub").write_text("old")
    text = str(dag_submit_description(task.top_dag, {"dagman": "/bin/true"}, resume=True))
    assert "-force" not in text and "-AutoRescue 1" in text
    assert rescue.exists()
    fresh = str(dag_submit_description(task.top_dag, {"dagman": "/bin/true"}))
    assert "-force" in fresh


def test_kill_jobs_goes_through_the_schedd_never_a_pid(tmp_path, monkeypatch) -> None:
    """Defect 5: kill --jobs on condor marks running jobs (AutosplitStopRequested, read by the job over
    chirp) and removes waiting ones; it never signals a local pid."""
    from autosplit.pipeline.bind import bind
    from autosplit.pipeline.control import kill

    task = make_task(tmp_path, extra=CONDOR)
    _record_cluster(task, 7)
    for node in ("c1-1", "c2-1"):
        assert bind(str(task.root), node)[0] == 0
        (task.job_dir(node) / "wrapper.pid").write_text(str(os.getpid()))
    monkeypatch.setattr(os, "kill", lambda *a: pytest.fail("os.kill on a condor job"))
    schedd = _use(
        monkeypatch,
        FakeSchedd(
            queue=[
                {"ClusterId": 7, "JobStatus": 2},
                {
                    "ClusterId": 9,
                    "ProcId": 0,
                    "JobStatus": 2,
                    "AutosplitNode": "c1-1",
                    "AutosplitStage": "probe",
                },
                {
                    "ClusterId": 10,
                    "ProcId": 0,
                    "JobStatus": 1,
                    "AutosplitNode": "c2-1",
                    "AutosplitStage": "probe",
                },
            ]
        ),
    )
    result = kill(task, ["c1-1", "c2-1"])
    assert result["signalled"] == ["c1-1"] and result["removed"] == ["c2-1"]
    assert schedd.edits and schedd.edits[0][1:] == (
        "AutosplitStopRequested",
        "true",
        htcondor2.TransactionFlag.SetDirty,  # forwarded to the running job
    )
    assert 'AutosplitNode == "c1-1"' in schedd.edits[0][0]
    assert any('AutosplitNode == "c2-1"' in spec for _, spec, _ in schedd.acts)


def test_condor_has_no_per_host_job_limit(tmp_path, monkeypatch) -> None:
    """Defect 6: without [backend] max_jobs a condor DAG is not capped (no -MaxJobs, no
    DAGMAN_MAX_JOBS_SUBMITTED) and its chains do not follow the submit host's cores."""
    import autosplit.backends.condor as condor
    from autosplit.backends.condor import dag_submit_description
    from autosplit.pipeline.control import start
    from autosplit.pipeline.stages import chain_count

    path = tmp_path / "task.toml"
    task = make_task(tmp_path, extra=CONDOR)
    text = path.read_text().replace("max_jobs = 2\n", "")
    path.write_text(text)
    from autosplit.pipeline.config import load_config
    from autosplit.pipeline.submit import create_task_from_config

    config = load_config(path)
    config.task.name = "t2"
    task = create_task_from_config(config, path)
    assert task.config.backend.max_jobs is None
    assert chain_count(task) == 500  # [splitting] slots (unset) or 500, never the submit host's cores
    calls = []
    _use(monkeypatch, FakeSchedd(queue=[]))
    monkeypatch.setattr(condor, "submit_dag", lambda dag, **kw: calls.append(kw) or 3)
    start(task)
    assert calls[0]["max_jobs"] is None
    text = str(dag_submit_description(task.top_dag, {"dagman": "/bin/true"}))
    assert "-MaxJobs" not in text
    assert "MAX_JOBS" not in "".join(p.read_text() for p in task.dag_dir.glob("*.config"))


def test_condor_backend_without_a_schedd_fails_clearly_inside_the_task(tmp_path, no_pool) -> None:
    """Defect 7: isolated from any pool the environment names (CONDOR_CONFIG), so it cannot submit a DAG
    to a real schedd; nothing is written outside the task directory."""
    from autosplit.backends.condor import CondorError
    from autosplit.pipeline.control import start

    task = make_task(tmp_path, extra=CONDOR)
    before = set(os.listdir(tmp_path))
    with pytest.raises(CondorError, match="no HTCondor schedd is reachable.*--backend local"):
        start(task)
    assert set(os.listdir(tmp_path)) == before, "nothing written outside the task directory"
    assert not (task.dag_dir / "task.dag.condor.sub").exists(), "not even the DAGMan submit file"


def test_held_jobs_policy(tmp_path) -> None:
    """Out of memory (hold code 34): released with half as much again as it used; transfer failures
    (12, 13): released after a minute, at most 3 times; held too long: removed (the postjob then runs)."""
    import time

    from autosplit.backends.condor_submit import HELD_TOO_LONG, held_job_policy

    policy = held_job_policy(2000)

    def ev(name: str, **ad):
        return classad2.ExprTree(policy[name] if name in policy else name).eval(classad2.ClassAd(ad))

    assert ev("request_memory") == 2000
    assert ev("request_memory", MemoryUsage=3000, HoldReasonCode=34) == 4500
    assert ev("request_memory", MemoryUsage=100, HoldReasonCode=34) == 2000
    assert ev("periodic_release", HoldReasonCode=34, NumJobStarts=1) is True
    assert ev("periodic_release", HoldReasonCode=34, NumJobStarts=4) is False
    old = int(time.time()) - 120
    assert ev("periodic_release", HoldReasonCode=13, NumHolds=1, EnteredCurrentStatus=old) is True
    assert ev("periodic_release", HoldReasonCode=13, NumHolds=4, EnteredCurrentStatus=old) is False
    assert ev("periodic_release", HoldReasonCode=1, NumHolds=1, EnteredCurrentStatus=old) is False
    assert ev(HELD_TOO_LONG, JobStatus=5, EnteredCurrentStatus=int(time.time()) - 4000) is True
    task = make_task(tmp_path, extra=CONDOR)
    from autosplit.pipeline.bind import bind

    assert bind(str(task.root), "c1-1")[0] == 0
    text = (task.job_dir("c1-1") / "job.sub").read_text()
    assert "periodic_release = " in text and "JobStatus == 5" in text and "MemoryUsage" in text


# The event log of a job HTCondor 25.14 held for a missing input file (recorded on the CI pool).
HELD_LOG = """\
000 (076.000.000) 2026-12-03 07:06:59 Job submitted from host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm&noUDP&sock=schedd_5070_7da8>
    [ DAGNodeName = "c9-9" ]
...
012 (076.000.000) 2026-12-03 07:07:03 Job was held.
\tTransfer input files failure at access point vm while sending files to execution point slot2@vm. Details: 1 total failures: first failure: reading from file /nonexistent/file.txt: (errno 2) No such file or directory
\tCode 13 Subcode 2
...
"""


def test_hold_reason_from_the_event_log(tmp_path) -> None:
    """Held jobs are read back for the postjob: the last hold of the node's job, with its code."""
    from autosplit.backends.condor import hold_reason

    path = tmp_path / "jobs.log"
    path.write_text(HELD_LOG)
    reason = hold_reason(path, "c9-9")
    assert reason.startswith("Transfer input files failure") and reason.endswith("(hold code 13)")
    assert hold_reason(path, "c1-1") is None
    assert hold_reason(tmp_path / "missing.log", "c9-9") is None


def test_requests_follow_the_memory_and_output_models_fitted_outside_the_bind(tmp_path) -> None:
    """request_memory is the MemoryModel's upper quantile (the configured memory a floor), request_disk
    grows with the output model's. Both come from the fit cached by refresh_requests, which reads the
    reports the ledger names, and fits again only once enough new reports came."""
    from autosplit.backends.condor_requests import refresh_requests, requests_for
    from autosplit.jobreport import JobReport, OutputFile

    task = make_task(tmp_path, extra=CONDOR)
    assert requests_for(task, 1000, 2000) == (2000, 0.0)  # no reports yet: the floor
    assert not refresh_requests(task)
    (task.root / "requests.json").write_text('{"reports": "many", "memory": [1, "x"], "output": null}')
    assert requests_for(task, 1000, 2000) == (2000, 0.0)  # a cache that makes no sense: the floor

    def leave_reports(first: int, n: int, mb_per_event: float) -> None:
        with task.ledger() as ledger:
            for i in range(first, first + n):
                events = 1000 * (i % 6 + 1)
                report = JobReport(
                    job_id=f"x{i}",
                    units=[{"run": 1, "lumi": i + 1, "events": events, "seconds": 1.0}],
                    peak_rss_bytes=int((1000 + events * mb_per_event) * 2**20),  # 1 GB + per event
                    outputs=[OutputFile(name="o.root", bytes=events * 10_000, checksum="00000001")],
                    wall_seconds=2.0,
                )
                path = task.root / "jobs" / f"x{i}" / "report.0.json"
                path.parent.mkdir(parents=True)
                report.to_json(path)
                ledger.bind_job(
                    f"x{i}",
                    stage="bulk",
                    kind="bulk",
                    unit_ids=[i],
                    predicted_seconds=None,
                    soft_limit_seconds=None,
                    hard_limit_seconds=None,
                    memory_mb=None,
                )
                ledger.record_outcome(
                    f"x{i}",
                    0,
                    decision=0,
                    outcome="ok",
                    details={"report_path": str(path), "usable_report": True},
                )

    leave_reports(0, 6, 0.5)
    assert requests_for(task, 8000, 2000) == (2000, 0.0)  # not fitted yet: binding reads only the cache
    assert refresh_requests(task)
    memory, output = requests_for(task, 8000, 2000)
    assert 5000 < memory < 6000  # about 1000 + 4000 MB, with margin
    assert output > 8000 * 10_000 * 0.9
    assert requests_for(task, 10, 2000)[0] >= 2000
    leave_reports(6, 3, 2.0)  # 9 reports: fewer than twice the 6 fitted on, no new fit
    assert not refresh_requests(task) and requests_for(task, 8000, 2000)[0] == memory
    leave_reports(9, 3, 2.0)
    assert refresh_requests(task) and requests_for(task, 8000, 2000)[0] > memory


def test_postjob_names_the_hold_reason_of_a_removed_job(tmp_path) -> None:
    """A held job that was removed (periodic_remove, or by hand): the postjob reads why it was held from
    the event log, hands its units back and says why."""
    from autosplit.pipeline.bind import bind
    from autosplit.pipeline.postjob import run_postjob

    task = make_task(tmp_path, extra=CONDOR)
    assert bind(str(task.root), "c1-1")[0] == 0
    task.event_log.write_text(HELD_LOG.replace("c9-9", "c1-1"))
    result = run_postjob(task, "c1-1", -1002, 0, 2)
    assert result.outcome == "lost"
    assert "held: Transfer input files failure" in result.message and "(hold code 13)" in result.message


# A job that started, was evicted and started again (the EXECUTE event's format on HTCondor 25.14).
# Job event log records (HTCondor 25.14's format): c1-1 ran 180 s, was evicted, ran again 600 s and was held,
# then removed; c2-2's retry (cluster 79) was removed before it ever ran; c3-3 is running.
RUNS_LOG = """\
000 (077.000.000) 2026-12-03 07:06:59 Job submitted from host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm>
    [ DAGNodeName = "c1-1" ]
...
001 (077.000.000) 2026-12-03 07:07:03 Job executing on host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm>
...
004 (077.000.000) 2026-12-03 07:10:03 Job was evicted. Code 1023 Subcode 0
	(0) CPU times
		Usr 0 00:00:00, Sys 0 00:00:00  -  Run Remote Usage
		Usr 0 00:00:00, Sys 0 00:00:00  -  Run Local Usage
	0  -  Run Bytes Sent By Job
	56777  -  Run Bytes Received By Job
...
001 (077.000.000) 2026-12-03 07:20:33 Job executing on host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm>
...
012 (077.000.000) 2026-12-03 07:30:33 Job was held.
	Excessive memory usage
	Code 26 Subcode 0
...
009 (077.000.000) 2026-12-03 08:30:33 Job was aborted.
	via condor_rm (by user htcuser)
...
000 (078.000.000) 2026-12-03 07:06:59 Job submitted from host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm>
    [ DAGNodeName = "c2-2" ]
...
001 (078.000.000) 2026-12-03 07:07:03 Job executing on host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm>
...
009 (078.000.000) 2026-12-03 07:08:03 Job was aborted.
	via condor_rm (by user htcuser)
...
000 (079.000.000) 2026-12-03 07:09:00 Job submitted from host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm>
    [ DAGNodeName = "c2-2" ]
...
009 (079.000.000) 2026-12-03 09:09:00 Job was aborted.
	via condor_rm (by user htcuser)
...
000 (080.000.000) 2026-12-03 07:06:59 Job submitted from host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm>
    [ DAGNodeName = "c3-3" ]
...
001 (080.000.000) 2026-12-03 07:07:03 Job executing on host: <127.0.0.1:9618?addrs=127.0.0.1-9618&alias=vm>
...
"""


def test_a_lost_job_tells_the_scheduler_how_long_it_ran(tmp_path, monkeypatch) -> None:
    """A job that left no report: the postjob reads from the event log how long its latest job ran in its
    last run and tells the scheduler, so time waiting in the queue or held is not taken for time its units
    ran (the scheduler judges a lost job by how long it ran); the ledger keeps it for a rebuild."""
    from autosplit.backends.condor import last_run
    from autosplit.pipeline import scheduling
    from autosplit.pipeline.bind import bind
    from autosplit.pipeline.postjob import run_postjob
    from autosplit.pipeline.scheduling import session

    path = tmp_path / "runs.log"
    path.write_text(RUNS_LOG)
    now = time.time()
    assert last_run(path, "c1-1", now) == 600.0, "executing 07:20:33, held 07:30:33 (not until removed)"
    assert last_run(path, "c2-2", now) is None, "the retry never ran: not the first attempt's start"
    started = time.mktime(time.strptime("2026-12-03 07:07:03", "%Y-%m-%d %H:%M:%S"))  # the log's local time
    assert last_run(path, "c3-3", now) == now - started, "still running: until now"
    assert last_run(path, "c9-9", now) is None and last_run(tmp_path / "missing.log", "c1-1", now) is None

    task = make_task(tmp_path, extra=CONDOR)
    assert bind(str(task.root), "c1-1")[0] == 0
    task.event_log.write_text(RUNS_LOG)
    assert run_postjob(task, "c1-1", -1002, 0, 2).outcome == "lost"
    with task.ledger() as ledger:
        (attempt,) = ledger.attempts("c1-1").to_dicts()
    assert (
        attempt["outcome"] == "lost" and attempt["report_path"] is None and attempt["wall_seconds"] == 600.0
    )
    with session(task) as s:
        job = s.scheduler._jobs[s.scheduler._by_id["c1-1"]]
    assert job.outcome == "lost" and abs(job.started_at - (attempt["time"] - 600.0)) < 5.0

    # A scheduler rebuilt from the ledger is told how long it ran (how long a lost unit ran alone sizes
    # its next job, see test_scheduler).
    seen = {}
    real = scheduling.restore_scheduler
    monkeypatch.setattr(scheduling, "restore_scheduler", lambda *a, **k: seen.update(k) or real(*a, **k))
    with task.ledger() as ledger:
        scheduling.rebuild_scheduler(task, ledger)
    assert seen["lost_runs"] == [("c1-1", 600.0)]

    # A job the user killed that left no report ran as long, but says nothing of its units or the pool: the
    # scheduler cancels it (no start, no crash, no loss; a lone unit would be remembered as that long, or
    # given up on) and the rebuild leaves its run out; the ledger still shows the slot time it used.
    assert bind(str(task.root), "c3-3")[0] == 0
    with task.ledger() as ledger:
        ledger.request_kill(["c3-3"])
    assert run_postjob(task, "c3-3", -1002, 0, 2).outcome == "killed"
    with task.ledger() as ledger:
        (killed,) = ledger.attempts("c3-3").to_dicts()
    assert killed["report_path"] is None and killed["wall_seconds"] > 0
    with session(task) as s:
        cancelled = s.scheduler._jobs[s.scheduler._by_id["c3-3"]]
        assert cancelled.outcome == "cancelled" and cancelled.started_at is None
        assert s.scheduler._book.crashes[cancelled.rows].sum() == 0
    with task.ledger() as ledger:
        rebuilt = scheduling.rebuild_scheduler(task, ledger)
    assert seen["lost_runs"] == [("c1-1", 600.0)]
    assert rebuilt._jobs[rebuilt._by_id["c3-3"]].outcome == "cancelled"  # as the live scheduler has it
    assert rebuilt._jobs[rebuilt._by_id["c1-1"]].outcome == "lost"


class FakeChirp:
    """Chirp's file calls onto a directory standing for the job's initialdir on the access point."""

    def __init__(self, access_point: Path) -> None:
        self.root = access_point
        self.calls: list[tuple[str, str]] = []

    def put(self, local: Path, remote: str) -> bool:
        self.calls.append(("put", remote))
        (self.root / remote).write_bytes(Path(local).read_bytes())
        return True

    def rename(self, old: str, new: str) -> bool:
        self.calls.append(("rename", new))
        os.replace(self.root / old, self.root / new)
        return True

    def mkdir(self, remote: str) -> bool:
        self.calls.append(("mkdir", remote))
        (self.root / remote).mkdir(exist_ok=True)
        return True

    def remove(self, remote: str) -> bool:
        self.calls.append(("remove", remote))
        (self.root / remote).unlink(missing_ok=True)
        return True


def test_checkpoints_reach_the_access_point_outputs_first_each_once(tmp_path) -> None:
    """A condor job's checkpoint is uploaded with the closed outputs it lists (names relative to out/),
    outputs before the report, the report renamed into place; an unchanged checkpoint and an output sent
    already are not sent again; an earlier attempt's checkpoint is removed at the start."""
    from autosplit.backends.condor_job import CheckpointUpload
    from autosplit.jobreport import JobReport
    from autosplit.worker import FileUnits, Job, JobSpec, checkpoint_path

    scratch, access_point = tmp_path / "scratch", tmp_path / "ap"
    (scratch / "out").mkdir(parents=True)
    (access_point / "out").mkdir(parents=True)
    (access_point / CheckpointUpload.REMOTE).write_text("an earlier attempt's")
    report = scratch / "report.json"
    assert checkpoint_path(report).name == CheckpointUpload.REMOTE  # the name the postjob reads
    spec = JobSpec(
        task="t",
        job_id="c1-1",
        attempt=2,
        output_dir=str(scratch / "out"),
        files=[
            FileUnits(lfn="/store/a.root", units=[{"run": 1, "lumi": k, "events": 10} for k in range(1, 5)])
        ],
    )
    job = Job(spec, report, handle_sigterm=False)
    chirp = FakeChirp(access_point)
    upload = CheckpointUpload(chirp, report, scratch / "out")
    assert not (access_point / CheckpointUpload.REMOTE).exists() and not upload.sync()

    units = job.iter_units()
    next(units)  # lumi 1 in progress
    for part, lumis in enumerate(((1, 2), (3,))):
        for _ in lumis:  # the next lumi in progress: these are done
            next(units)
        path = job.output_path(f"sub/part{part}.txt")
        path.parent.mkdir(exist_ok=True)
        path.write_text(" ".join(map(str, lumis)))
        job.add_output(path)
        job.checkpoint()
        assert not upload.sync(deadline=0.0), "past its deadline an upload waits for the next round"
        assert upload.sync() and not upload.sync()
        sent = JobReport.from_json(access_point / CheckpointUpload.REMOTE)
        assert [u["lumi"] for u in sent.units] == list(range(1, lumis[-1] + 1)) and sent.attempt == 2
        assert [o.name for o in sent.outputs] == [f"sub/part{k}.txt" for k in range(part + 1)]
        for k in range(part + 1):
            assert (access_point / "out" / "sub" / f"part{k}.txt").read_text() == (
                scratch / "out" / "sub" / f"part{k}.txt"
            ).read_text()
    puts = [remote for call, remote in chirp.calls if call == "put"]
    assert puts == [
        "out/sub/part0.txt",
        f".{CheckpointUpload.REMOTE}.tmp",
        "out/sub/part1.txt",
        f".{CheckpointUpload.REMOTE}.tmp",
    ]
    assert chirp.calls[-1] == ("rename", CheckpointUpload.REMOTE)


def test_a_checkpoint_naming_a_file_outside_out_is_not_uploaded(tmp_path) -> None:
    from autosplit.backends.condor_job import CheckpointUpload

    scratch, access_point = tmp_path / "scratch", tmp_path / "ap"
    (scratch / "out").mkdir(parents=True)
    access_point.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text("not an output")
    report = scratch / "report.json"
    document = {"outputs": [{"name": str(secret), "bytes": 13}], "units": [{"run": 1, "lumi": 1}]}
    (scratch / CheckpointUpload.REMOTE).write_text(json.dumps(document))
    chirp = FakeChirp(access_point)
    upload = CheckpointUpload(chirp, report, scratch / "out")
    assert not upload.sync()
    assert [call for call, _ in chirp.calls] == ["remove"] and not list(access_point.iterdir())


def test_an_output_in_a_subdirectory_is_uploaded_after_a_chirp_outage(tmp_path) -> None:
    """While chirp is unreachable the subdirectory's mkdir fails; it is made again once chirp is back."""
    from autosplit.backends.condor_job import CheckpointUpload

    class FlakyChirp(FakeChirp):
        down = True

        def __getattribute__(self, name):
            if name in ("put", "mkdir", "rename", "remove") and object.__getattribute__(self, "down"):
                return lambda *args: False
            return object.__getattribute__(self, name)

    scratch, access_point = tmp_path / "scratch", tmp_path / "ap"
    (scratch / "out" / "sub").mkdir(parents=True)
    (access_point / "out").mkdir(parents=True)
    (scratch / "out" / "sub" / "part0.txt").write_text("1 2")
    report = scratch / "report.json"
    chirp = FlakyChirp(access_point)
    upload = CheckpointUpload(chirp, report, scratch / "out")
    document = {"attempt": 1, "outputs": [{"name": "sub/part0.txt", "bytes": 3}], "units": []}
    (scratch / CheckpointUpload.REMOTE).write_text(json.dumps(document))
    assert not upload.sync()
    chirp.down = False
    assert upload.sync()
    assert (access_point / "out" / "sub" / "part0.txt").read_text() == "1 2"
