"""The condor backend on a real HTCondor pool (marker ``pool``).

They need a pool whose schedd accepts this user's jobs, named by ``CONDOR_CONFIG`` (``.ci/run`` starts one
from ``../shared/htcondor`` and runs these as its pool user). Without one they skip with the reason; with
``AUTOSPLIT_REQUIRE_POOL=1`` a missing pool is a failure. Task directories go under
``AUTOSPLIT_POOL_WORKDIR`` (default ``~/autosplit-pool-tests``): DAGMan and the shadow dislike ``/tmp``.
The pool should offer slots with ``GLIDEIN_CMSSite`` = ``T2_XX_Alpha``, ``T2_XX_Beta`` (and
``T2_XX_Gamma``, which the tests blacklist) — see the README's "Running the pool tests".

Each test submits through the ``autosplit`` command from a directory holding a decoy ``autosplit`` package
(issue 13, defect 1), and jobs run under an interpreter that cannot import autosplit (a venv over the
project's site-packages without the editable install), in HTCondor's scratch directory.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import time
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.pool

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "nanoaod"
AUTOSPLIT = [sys.executable, "-I", "-m", "autosplit"]
SITES = ("T2_XX_Alpha", "T2_XX_Beta")
BLACKLISTED = "T2_XX_Gamma"


def _no_pool(reason: str):
    if os.environ.get("AUTOSPLIT_REQUIRE_POOL") == "1":
        pytest.fail(f"AUTOSPLIT_REQUIRE_POOL=1 but {reason}")
    pytest.skip(f"needs a live HTCondor pool ({reason}); see the README's 'Running the pool tests'")


@pytest.fixture(scope="module")
def pool() -> dict:
    """The pool's schedd and slot sites, or a skip (a failure when AUTOSPLIT_REQUIRE_POOL=1)."""
    if not os.environ.get("CONDOR_CONFIG") or os.environ["CONDOR_CONFIG"] == "/dev/null":
        _no_pool("CONDOR_CONFIG does not name a pool configuration")
    try:
        import htcondor2
    except ImportError:
        _no_pool("the htcondor bindings are not installed (the condor extra)")
    htcondor2.reload_config()
    try:
        schedd = htcondor2.Schedd()
        schedd.query(constraint="false", projection=["ClusterId"])
        slots = htcondor2.Collector().query(htcondor2.AdType.Startd, projection=["Name", "GLIDEIN_CMSSite"])
    except Exception as exc:  # noqa: BLE001
        _no_pool(f"no schedd or collector answers: {' '.join(str(exc).split())}")
    sites = {str(s.get("GLIDEIN_CMSSite")) for s in slots if s.get("GLIDEIN_CMSSite") is not None}
    if not set(SITES) <= sites:
        _no_pool(f"the pool's slots name sites {sorted(sites)}, not {list(SITES)} (GLIDEIN_CMSSite)")
    return {"execute": htcondor2.param.get("EXECUTE", ""), "sites": sites}


@pytest.fixture(scope="module")
def workdir(pool) -> Path:
    base = Path(os.environ.get("AUTOSPLIT_POOL_WORKDIR") or Path.home() / "autosplit-pool-tests")
    root = base / f"run-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    decoy = root / "autosplit"  # defect 1: a folder named autosplit where the commands are run from
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise ImportError('the decoy autosplit package was imported')\n")
    return root


@pytest.fixture(scope="module")
def job_python(workdir) -> str:
    """An interpreter with the payload's software (numpy, uproot, msgspec, ...) but without autosplit."""
    env = workdir / "jobenv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # a path, not a site dir
    probe = subprocess.run([python, "-c", "import autosplit"], capture_output=True, text=True, cwd=env)
    assert probe.returncode != 0, "the job interpreter must not be able to import autosplit"
    ok = subprocess.run(
        [python, "-c", "import msgspec, numpy, uproot, awkward"], capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stderr
    return str(python)


def cli(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([*AUTOSPLIT, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(
            f"autosplit {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
        )
    return done


def status(task_dir: Path, cwd: Path) -> dict:
    return json.loads(cli("status", str(task_dir), "--json", cwd=cwd).stdout)


def wait_for(predicate, timeout: float, what: str, interval: float = 2.0, on_timeout=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    extra = on_timeout() if on_timeout else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{extra}")


def dag_gone(task_dir: Path) -> bool:
    from autosplit.backends.condor import dag_is_active
    from autosplit.pipeline.taskdir import TaskDir

    with TaskDir(task_dir).ledger() as ledger:
        cluster = ledger.get_meta("condor_cluster")
    return not dag_is_active(cluster)


def wait_for_end(task_dir: Path, cwd: Path, timeout: float, what: str) -> dict:
    """The task's final status once it ended (completed, with quarantine, or failed) and its DAG left the
    queue; fails with diagnostics after ``timeout`` seconds."""

    def ended():
        st = status(task_dir, cwd)
        return (
            st
            if st["state"] in ("completed", "completed-with-quarantine", "failed") and dag_gone(task_dir)
            else None
        )

    return wait_for(ended, timeout, what, interval=3.0, on_timeout=lambda: diagnostics(task_dir))


def diagnostics(task_dir: Path) -> str:
    parts = []
    for path in sorted((task_dir / "dag").glob("*.dagman.out"))[:2]:
        parts.append(f"== {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-30:]))
    for name in ("bind.log", "postjob.log", "finalize.log"):
        path = task_dir / "logs" / name
        if path.exists():
            parts.append(f"== {name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-15:]))
    for err in sorted((task_dir / "jobs").glob("*/job.err"))[-3:]:
        parts.append(f"== {err}\n" + err.read_text(errors="replace")[-1500:])
    return "\n".join(parts)


def attempt_reports(task_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((task_dir / "jobs").glob("*/report.[0-9]*.json"))]


def assert_scratch_only(task_dir: Path, execute_dir: str) -> int:
    """Every job ran in HTCondor's scratch directory under the job interpreter, knew nothing of the task
    directory, and reported where it ran; returns how many job attempts were checked."""
    errs = sorted((task_dir / "jobs").glob("*/job.err"))
    assert errs, "no job ran"
    for err in errs:
        text = err.read_text(errors="replace")
        line = next((ln for ln in text.splitlines() if ln.startswith("autosplit job: running in ")), None)
        assert line is not None, f"{err}: {text[-500:]}"
        cwd = line.removeprefix("autosplit job: running in ").split(" at site ")[0]
        assert execute_dir and cwd.startswith(execute_dir), f"{err}: ran in {cwd}, not under {execute_dir}"
        spec = (err.parent / "spec.json").read_text()
        assert str(task_dir) not in spec, f"{err.parent}/spec.json names the task directory"
    return len(errs)


# --------------------------------------------------------------------------------------------- the example
def example_toml(root: Path, name: str, backend: str, job_python: str) -> Path:
    text = (EXAMPLE / "task.toml").read_text()
    text = text.replace('name = "dimuon-example"', f'name = "{name}"')
    text = text.replace('workdir = "../../autosplit-tasks"', f'workdir = "{root / "tasks"}"')
    text = text.replace('source = "data/*.root"', f'source = "{EXAMPLE / "data"}/*.root"')
    text = text.replace('"../../tests/', f'"{REPO / "tests"}/')
    text = text.replace('path = "."', f'path = "{EXAMPLE}"')
    if backend == "condor":
        head, _, _ = text.partition("[backend]")
        text = head + textwrap.dedent(
            f"""
            [backend]
            kind = "condor"
            job_python = "{job_python}"
            chirp_interval = 1
            bind_defer_seconds = 5
            sites_blacklist = ["{BLACKLISTED}"]
            """
        )
        text = text.replace("max_tails = 2\n", "max_tails = 2\nslots = 2\n")
    path = root / f"{name}.toml"
    path.write_text(text)
    return path


def test_pool_example_end_to_end_on_two_sites_without_shared_filesystem(pool, workdir, job_python) -> None:
    """The example task on the pool: jobs on two sites (the third blacklisted), in scratch directories,
    under an interpreter without autosplit; ``status --json`` shows running jobs with chirp progress; the
    report equals the local backend's."""
    if not (EXAMPLE / "data" / "nano_000.root").exists():
        pytest.fail("examples/nanoaod/data is missing (examples/nanoaod/make_dataset.py builds it)")
    condor_toml = example_toml(workdir, "dimuon-pool", "condor", job_python)
    local_toml = example_toml(workdir, "dimuon-local", "local", job_python)
    cli("submit", str(condor_toml), "--json", cwd=workdir)
    task_dir = workdir / "tasks" / "dimuon-pool"
    local = subprocess.Popen(  # the same task on the local backend, side by side, for the report
        [*AUTOSPLIT, "run", str(local_toml), "--json", "--timeout", "30m"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    seen: dict = {}

    def progressing():
        queue = _condor_q("dimuon-pool")
        st = status(task_dir, workdir)
        for job in st["backend"].get("running_jobs", []):
            if job.get("units_done", 0) > 0 and job.get("site") and f" R  {job['node']} " in queue:
                text = cli("status", str(task_dir), cwd=workdir).stdout
                seen.update(status=st, job=job, condor_q=queue + "\n\n" + _condor_q_tool(), status_text=text)
        return seen or st["state"] in ("completed", "completed-with-quarantine", "failed", "killed")

    wait_for(
        progressing,
        600,
        "a running job with progress in status --json",
        interval=1.0,
        on_timeout=lambda: diagnostics(task_dir),
    )
    assert seen, "the task ended before status showed a running job's progress"
    assert seen["job"]["site"] in SITES
    final = wait_for_end(task_dir, workdir, 1800, "the condor task to end")
    assert final["units"]["done"] == final["units"]["total"] == 240, diagnostics(task_dir)
    assert final["state"] == "completed"
    out, err = local.communicate(timeout=1800)
    assert local.returncode == 0, err[-3000:]
    reports = {}
    for which, directory in (("condor", task_dir), ("local", workdir / "tasks" / "dimuon-local")):
        dest = workdir / f"report-{which}"
        cli("report", str(directory), "--outdir", str(dest), cwd=workdir)
        reports[which] = json.loads((dest / "processedLumis.json").read_text())
    assert reports["condor"] == reports["local"]
    sites = {r.get("site") for r in attempt_reports(task_dir)}
    assert sites <= set(SITES) and len(sites) == 2, sites
    assert_scratch_only(task_dir, pool["execute"])
    _evidence(seen, final, task_dir)


def _condor_q(task: str) -> str:
    from autosplit._condor import condor_module

    htcondor2 = condor_module("htcondor2", "pool tests")
    classad2 = condor_module("classad2", "pool tests")
    ads = htcondor2.Schedd().query(
        constraint=f"AutosplitTask == {classad2.quote(task)} || AutosplitDagTask == {classad2.quote(task)}",
        projection=[
            "ClusterId",
            "ProcId",
            "JobStatus",
            "AutosplitNode",
            "AutosplitStage",
            "AutosplitUnitsDone",
            "AutosplitEventsDone",
            "AutosplitSite",
            "RemoteHost",
            "DESIRED_Sites",
        ],
    )
    names = {1: "I", 2: "R", 3: "X", 4: "C", 5: "H"}
    lines = ["ID        ST NODE      STAGE       UNITS EVENTS SITE         SLOT"]
    for ad in sorted(ads, key=lambda a: (a.get("ClusterId"), a.get("ProcId"))):
        lines.append(
            f"{ad.get('ClusterId')}.{ad.get('ProcId'):<6} {names.get(ad.get('JobStatus'), '?'):2} "
            f"{str(ad.get('AutosplitNode', '(dagman)')):9} {str(ad.get('AutosplitStage', '')):11} "
            f"{str(ad.get('AutosplitUnitsDone', '')):5} {str(ad.get('AutosplitEventsDone', '')):6} "
            f"{str(ad.get('AutosplitSite', '')):12} {ad.get('RemoteHost', '')}"
        )
    return "\n".join(lines)


def _condor_q_tool() -> str:
    """``condor_q -nobatch`` and the slots' sites, when the tools are on PATH."""
    import shutil

    out = []
    for argv in (
        ["condor_q", "-nobatch", "-wide:160"],
        ["condor_status", "-af", "Name", "GLIDEIN_CMSSite", "State", "Activity"],
    ):
        if shutil.which(argv[0]):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
            out.append(f"$ {' '.join(argv)}\n{done.stdout}{done.stderr}")
    return "\n".join(out)


def _evidence(seen: dict, final: dict, task_dir: Path) -> None:
    path = os.environ.get("AUTOSPLIT_POOL_EVIDENCE")
    if not path:
        return
    running = {k: seen["status"][k] for k in ("task", "state", "units", "events", "stages")}
    running["backend"] = seen["status"]["backend"]
    text = [
        f"# issue 13 evidence: {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, task {task_dir}",
        "## schedd query (condor_q) while the task ran",
        seen["condor_q"],
        "## autosplit status while the task ran",
        seen.get("status_text", ""),
        "## autosplit status --json while the task ran",
        json.dumps(running, indent=1),
        "## autosplit status --json at the end",
        json.dumps({k: final[k] for k in ("state", "units", "events", "stages", "sites")}, indent=1),
    ]
    with open(path, "a") as handle:
        handle.write("\n".join(text) + "\n\n")


# --------------------------------------------------------------------------------------------- control
SLOW_PAYLOAD = """
import time

def run(job):
    for unit in job.iter_units():
        time.sleep(0.4)
"""


def slow_task(
    root: Path,
    name: str,
    job_python: str,
    *,
    target: str = "20s",
    payload: str = SLOW_PAYLOAD,
    limits: str = "",
) -> tuple[Path, Path]:
    """A task of 60 lumis in 6 files at two sites (and one file also at the blacklisted site); ``limits``:
    extra lines of its ``[limits]`` table."""
    code = root / f"{name}-code"
    code.mkdir()
    (code / "slow.py").write_text(payload)
    records = []
    for i in range(6):
        where = [SITES[i % 2]] + ([BLACKLISTED] if i == 5 else [])
        records.append(
            {
                "lfn": f"/store/pool/{name}/f{i}.root",
                "events": 500,
                "size": 5_000_000,
                "locations": where,
                "lumis": {"297050": [i * 10 + k for k in range(1, 11)]},
            }
        )
    listing = root / f"{name}.dbs.json"
    listing.write_text(json.dumps({"datasets": {f"/Pool/{name}/NANOAOD": records}}))
    toml = root / f"{name}.toml"
    toml.write_text(
        textwrap.dedent(
            f"""
            [task]
            name = "{name}"
            workdir = "{root / "tasks"}"
            [dataset]
            source = "{listing}"
            [code]
            callable = "slow:run"
            path = "{code}"
            [splitting]
            target_runtime = "{target}"
            probe_seconds = "3s"
            probes = 2
            probe_fraction = 0.05
            max_tails = 2
            slots = 2
            [limits]
            retries = 1
            grace_seconds = "5s"
            {limits}
            [backend]
            kind = "condor"
            job_python = "{job_python}"
            chirp_interval = 1
            bind_defer_seconds = 5
            sites_blacklist = ["{BLACKLISTED}"]
            """
        )
    )
    return toml, root / "tasks" / name


def assert_jobs_ran_where_their_data_is(task_dir: Path) -> int:
    from autosplit.pipeline.taskdir import TaskDir

    ds = TaskDir(task_dir).dataset
    where = dict(zip(ds.files["file_id"].to_list(), ds.files["locations"].to_list(), strict=True))
    unit_files = {
        (r, lu): ids
        for r, lu, ids in zip(
            ds.units["run"].to_list(), ds.units["lumi"].to_list(), ds.units["file_ids"].to_list(), strict=True
        )
    }
    checked = 0
    for report in attempt_reports(task_dir):
        site = report.get("site")
        assert site != BLACKLISTED
        for unit in report.get("units", []):
            for fid in unit_files[(unit["run"], unit["lumi"])]:
                assert site in where[fid], f"{report['job_id']} ran at {site}, its data is at {where[fid]}"
            checked += 1
    return checked


def test_pool_kill_jobs_kill_and_resubmit(pool, workdir, job_python) -> None:
    """kill --jobs stops a running job at a unit boundary through the schedd (chirp), its other units are
    bound again; kill removes the DAG (the schedd's answer checked); resubmit finishes the task. Every job
    runs at a site holding its data, none at the blacklisted site."""
    toml, task_dir = slow_task(workdir, "slow-kill", job_python, target="30s")
    cli("submit", str(toml), cwd=workdir)

    def long_runner():
        for job in status(task_dir, workdir)["backend"].get("running_jobs", []):
            if (
                job.get("stage") not in (None, "probe")
                and not str(job.get("stage")).startswith("probe")
                and job.get("units_done", 0) >= 2
            ):
                return job
        return None

    job = wait_for(
        long_runner,
        420,
        "a processing job with 2 units done",
        interval=1.0,
        on_timeout=lambda: diagnostics(task_dir),
    )
    node = job["node"]
    killed = json.loads(cli("kill", str(task_dir), "--jobs", node, "--json", cwd=workdir).stdout)
    assert killed["signalled"] == [node], killed

    from autosplit.pipeline.taskdir import TaskDir

    task = TaskDir(task_dir)

    def node_outcome():
        with task.ledger() as ledger:
            attempts = ledger.attempts()
        rows = attempts.filter(attempts["node"] == node) if attempts.height else attempts
        return rows.to_dicts()[-1] if rows.height else None

    outcome = wait_for(node_outcome, 180, f"{node}'s postjob", on_timeout=lambda: diagnostics(task_dir))
    assert outcome["outcome"] == "killed", outcome
    report = json.loads((task_dir / "jobs" / node / "report.0.json").read_text())
    assert report["soft_stopped"] and 2 <= len(report["units"]) and report["unfinished"], report
    with task.ledger() as ledger:  # what it finished before stopping counts: those units are done
        units = ledger.units()
    done = {(r, lu) for r, lu, state in units.select("run", "lumi", "state").iter_rows() if state == "done"}
    assert {(u["run"], u["lumi"]) for u in report["units"]} <= done

    # Kill the task: the DAG leaves the queue, its FINAL node closes the ledger.
    wait_for(lambda: status(task_dir, workdir)["units"]["done"] > 0, 60, "some units done")
    cli("kill", str(task_dir), cwd=workdir)
    wait_for(
        lambda: dag_gone(task_dir),
        180,
        "the DAG to leave the queue",
        on_timeout=lambda: diagnostics(task_dir),
    )
    st = wait_for(
        lambda: (lambda s: s if s["state"] == "killed" else None)(status(task_dir, workdir)),
        120,
        "state killed",
        on_timeout=lambda: diagnostics(task_dir),
    )
    assert st["units"]["quarantined"] > 0
    # kill again: nothing is running, nothing is claimed
    again = json.loads(cli("kill", str(task_dir), "--json", cwd=workdir).stdout)
    assert again["removed_cluster"] is None

    cli("resubmit", str(task_dir), cwd=workdir)
    final = wait_for_end(task_dir, workdir, 600, "the resubmitted task to end")
    assert final["units"]["done"] == final["units"]["total"] == 60, diagnostics(task_dir)
    assert assert_jobs_ran_where_their_data_is(task_dir) >= 60
    assert_scratch_only(task_dir, pool["execute"])


def test_pool_a_removed_job_is_lost_and_its_run_time_comes_from_the_event_log(
    pool, workdir, job_python
) -> None:
    """A node job removed by the schedd while it runs (an operator's condor_rm of one job, or a periodic
    remove policy) leaves no report: its postjob records it lost, with the seconds it ran on its slot, read
    from DAGMan's job event log (the scheduler judges a lost job by that, not by the
    time it waited in the queue). Its units are bound again and the task completes."""
    from autosplit._condor import condor_module
    from autosplit.pipeline.taskdir import TaskDir

    htcondor2 = condor_module("htcondor2", "pool tests")
    toml, task_dir = slow_task(workdir, "slow-lost", job_python, target="30s")
    cli("submit", str(toml), cwd=workdir)

    def runner():
        for job in status(task_dir, workdir)["backend"].get("running_jobs", []):
            if not str(job.get("stage")).startswith("probe") and job.get("units_done", 0) >= 1:
                return job
        return None

    job = wait_for(
        runner,
        420,
        "a processing job with a unit done",
        interval=1.0,
        on_timeout=lambda: diagnostics(task_dir),
    )
    node, started = job["node"], float(job["started"])
    htcondor2.Schedd().act(htcondor2.JobAction.Remove, f"ClusterId == {int(job['job_id'].split('.')[0])}")
    removed_at = time.time()
    task = TaskDir(task_dir)

    def attempt():
        with task.ledger() as ledger:
            rows = ledger.attempts(node)
        return rows.to_dicts()[0] if rows.height else None

    row = wait_for(attempt, 180, f"{node}'s postjob", on_timeout=lambda: diagnostics(task_dir))
    assert row["outcome"] == "lost" and row["report_path"] is None, row
    ran = row["wall_seconds"]
    assert ran is not None and 0.0 < ran <= row["elapsed_seconds"], row
    # From the event log's EXECUTE event (after the schedd's JobCurrentStartDate: the input sandbox is
    # transferred in between) to its eviction by the removal; whole seconds of local time.
    assert ran <= removed_at - started + 1.0, (row, started, removed_at)
    final = wait_for_end(task_dir, workdir, 600, "the task to end")
    assert final["units"]["done"] == final["units"]["total"] == 60, diagnostics(task_dir)


def test_pool_resume_from_the_rescue_dag(pool, workdir, job_python) -> None:
    """A DAG removed behind autosplit's back (an operator's condor_rm) is resumed from DAGMan's rescue DAG:
    submit again follows a running DAG (no second DAGMan), then, once it is gone, resumes it; nodes done
    before do not run again and the task completes."""
    from autosplit.backends.condor import act
    from autosplit.pipeline.taskdir import TaskDir

    toml, task_dir = slow_task(workdir, "slow-resume", job_python, target="15s")
    cli("submit", str(toml), cwd=workdir)
    task = TaskDir(task_dir)
    with task.ledger() as ledger:
        first = ledger.get_meta("condor_cluster")
    cli("submit", str(toml), cwd=workdir)  # defect 3: follows, does not submit a second DAGMan
    with task.ledger() as ledger:
        assert ledger.get_meta("condor_cluster") == first

    def processing_done():  # once probing is over (removing the DAG while it probes: see the notes)
        with task.ledger() as ledger:
            jobs = ledger.jobs()
        return (
            jobs.height
            and jobs.filter((jobs["stage"] == "processing") & (jobs["state"] == "finished")).height
        )

    wait_for(processing_done, 420, "a finished processing job", on_timeout=lambda: diagnostics(task_dir))
    act(int(first), "remove", "operator removes the DAG")
    wait_for(lambda: dag_gone(task_dir), 180, "the DAG to leave the queue")
    try:  # FINAL closes the ledger; DAGMan 25.14 sometimes dies on the removal before (an assertion in
        # dag.cpp, "! _finalNodeRun"): resuming must work either way
        wait_for(lambda: status(task_dir, workdir)["state"] == "failed", 30, "FINAL to close the ledger")
    except AssertionError:
        pass
    assert list((task_dir / "dag").glob("task.dag.rescue0*")), "DAGMan wrote a rescue DAG"
    with task.ledger() as ledger:
        attempts_before = ledger.attempts().height
        done_nodes = set(ledger.attempts()["node"].to_list())
    cli("submit", str(toml), cwd=workdir)
    with task.ledger() as ledger:
        assert ledger.get_meta("condor_resumed") and ledger.get_meta("condor_cluster") != first
    final = wait_for_end(task_dir, workdir, 600, "the resumed task to end")
    assert final["units"]["done"] == final["units"]["total"] == 60, diagnostics(task_dir)
    dagman_out = (task_dir / "dag" / "task.dag.dagman.out").read_text(errors="replace")
    assert "rescue" in dagman_out.lower()
    with task.ledger() as ledger:
        attempts = ledger.attempts()
    assert attempts.height > attempts_before
    rerun = attempts.filter(attempts["node"].is_in(list(done_nodes))).group_by("node").len()
    assert rerun["len"].max() == 1, "a node done before the removal ran again"
    assert not any("not assigned" in (m or "") for m in attempts["message"].to_list())


# --------------------------------------------------------------------------------------------- checkpoints
CHECKPOINT_PAYLOAD = """
import os
import time

MARKER = {marker!r}


def _first_time():
    try:
        os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        return True
    except FileExistsError:
        return False


def run(job):
    state = {{"part": 0, "lumis": []}}

    def close_part():
        path = job.output_path(f"part{{state['part']}}.txt")
        path.write_text(" ".join(state["lumis"]))
        job.add_output(path)
        state["part"] += 1
        state["lumis"] = []

    job.on_checkpoint(close_part)
    for n, unit in enumerate(job.iter_units()):
        if job.spec.stage == "processing" and n == 8 and _first_time():
            time.sleep(900)  # stuck in this lumi: the wrapper kills the job at its hard limit
        time.sleep(0.4)
        state["lumis"].append(str(unit.lumi))
    if state["lumis"]:
        close_part()
"""


def test_pool_job_killed_at_its_hard_limit_keeps_its_uploaded_checkpoint(pool, workdir, job_python) -> None:
    """A processing job checkpoints every 2 s; the first one to reach its 9th lumi hangs there and the
    wrapper kills it at its hard limit. Its checkpoint report never comes back with the job's output
    transfer, but chirp uploaded it: the postjob credits exactly its lumis, their outputs committed once.
    The stuck lumi is quarantined (it ran longer than the longest allowed job); every other lumi is done,
    in exactly one committed output."""
    marker = workdir / "checkpoint-hang-once"
    payload = CHECKPOINT_PAYLOAD.format(marker=str(marker))
    toml, task_dir = slow_task(
        workdir,
        "slow-checkpoint",
        job_python,
        target="30s",
        payload=payload,
        limits='checkpoint_interval = "2s"',
    )
    cli("submit", str(toml), cwd=workdir)
    final = wait_for_end(task_dir, workdir, 900, "the task to end")
    assert marker.exists(), "no processing job reached its 9th lumi"
    # The stuck lumi ran longer than the longest allowed job (3 x the target): quarantined with the reason.
    assert final["units"]["done"] == 59 and final["units"]["quarantined"] == 1, diagnostics(task_dir)

    from autosplit.jobreport import JobReport
    from autosplit.pipeline.taskdir import TaskDir

    task = TaskDir(task_dir)
    with task.ledger() as ledger:
        attempts = ledger.attempts()
    killed = attempts.filter(attempts["hard_killed"] == 1)
    assert killed.height == 1, attempts.select("node", "attempt", "outcome", "hard_killed", "units_done")
    node, attempt, credited = killed.row(0, named=True)["node"], killed["attempt"][0], killed["units_done"][0]
    checkpoint = JobReport.from_json(task.job_dir(node) / f"report.{attempt}.checkpoint.json")
    lumis = sorted(u["lumi"] for u in checkpoint.units)
    assert 2 <= len(lumis) <= 8 and credited == len(lumis), (lumis, credited)
    outputs = [task.destination / node / o.name for o in checkpoint.outputs]
    committed = sorted(int(x) for path in outputs for x in path.read_text().split())
    assert committed == lumis, "the committed checkpoint outputs hold exactly the credited lumis"
    stuck = JobReport.from_json(task.job_dir(node) / f"report.{attempt}.json").in_progress["lumi"]
    with task.ledger() as ledger:
        assert ledger.units("quarantined")["lumi"].to_list() == [stuck]
    everything = sorted(
        int(x) for path in task.destination.rglob("part*.txt") for x in path.read_text().split()
    )
    assert everything == sorted(set(range(1, 61)) - {stuck}), (
        "every done lumi in exactly one committed output"
    )
