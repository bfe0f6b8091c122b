"""Benchmark: a 2,000-job task with a trivial payload on a real HTCondor pool (issue 15).

A synthetic dataset of ``--files`` files (default 2000) of one lumi each, and a condor task whose jobs hold
at most one file (``max_files_per_job = 1``), so the scheduler cuts one job per file: about 2000 jobs
(``--probes`` 8 probes take 1 % of the units, 2-3 each, so 1988 jobs for 2000 files). The payload sleeps
``--unit-seconds`` (default 0.2 s) per unit and does nothing else.
``--chains`` chains (default 32, ``[splitting] slots``) of at most 64 nodes run on a personal pool of
``--slots`` single-core static slots (default 16; the payload is trivial, so oversubscribing the machine's
cores is fine): 32 x 64 = 2048 nodes hold the whole task in ``task.dag``, with one ``condor_dagman``.

Figures (printed, and written to ``benchmarks/results/pool.json``; times in seconds, memory in MB = MiB):

* ``jobs``: jobs that ran (the ledger's jobs with at least one attempt, probes included), with
  ``probe_jobs``/``processing_jobs`` and ``job_attempts`` (terminated jobs in the task's event log
  ``dag/jobs.log``); ``dag_nodes``: job nodes in ``task.dag``.
* ``dag_submit_seconds``: wall time of ``autosplit submit task.toml --json`` (a fresh process: reads the
  dataset, creates the ledger, writes the 2048-node ``task.dag``, packs the sandbox and the job zipapp,
  ``htcondor2.Submit.from_dag`` — what ``condor_submit_dag`` does — and the schedd submission).
  ``dag_submit_breakdown`` splits it by file modification times (``task.dag`` written, ``*.condor.sub``
  written by ``from_dag``) and the command's end; ``dagman_first_job_submit_seconds`` is the time from
  the command's end to the first node job's SUBMIT event (DAGMan starts, parses the DAG, runs the first
  PRE scripts).
* ``dagman_peak_rss_mb``: the ``condor_dagman`` process's peak resident set size, ``VmHWM`` of
  ``/proc/<pid>/status`` (the kernel's high-water mark, so sampling every 2 s misses nothing but the
  last 2 s of its life), found by its working directory (the task's ``dag/`` directory).
  ``dagman_job_ad`` adds what the schedd has in the DAGMan job's ad (``ImageSize``, ``ResidentSetSize``,
  KiB, at the end and the maxima over the polls): on this pool the schedd does not sample the scheduler
  universe's processes, so ``ImageSize`` keeps its initial guess and ``ResidentSetSize`` is absent;
  VmHWM is the measurement.
* ``last_job_end_to_task_end_seconds``: the DAGMan job's ``CompletionDate`` (from the schedd's history:
  the DAG, FINAL node included, is over) minus the latest ``JOB_TERMINATED`` event of the task's event log
  (both with 1 s resolution). ``task_end_breakdown`` gives the steps after the last job's end: the last
  POST script's decision (ledger ``attempts.time``), the FINAL node's ``finalize`` (ledger ``finished``,
  when ``status`` starts saying ``completed``), DAGMan's exit, and when this script's poll first saw the
  final state and the DAG gone.
* ``task_wall_seconds``: from the start of the submit command to the DAGMan job's ``CompletionDate``;
  ``first_job_start_seconds`` to the first EXECUTE event; ``jobs_per_minute`` between the first EXECUTE
  and the last JOB_TERMINATED.
* ``cpu_seconds``: CPU used by every process of the pool user during the run (``/proc`` utime, stime and
  reaped children's times, end minus start, this script excluded: HTCondor's daemons, shadows, starters,
  DAGMan, its PRE/POST scripts and the jobs), in total and per job; ``dag_scripts``: the PRE/POST scripts
  alone (condor_dagman's reaped children). ``dag_script_wall_seconds``: runs of the PRE and POST scripts
  (deferred PRE scripts run again) and their wall time per node (median, 90th percentile, maximum; from
  ``task.dag.dagman.out``, 1 s resolution) — every script takes the task's scheduler lock, so they queue,
  and they, not the slots, bound the task's throughput (a slot is busy for a few seconds per job).
* ``slots``, ``chains``, ``load_average`` (1-minute load at start, maximum over the polls, at the end; the
  machine's cores and other benchmarks running alongside show there), the final task state and unit
  counts, and ``status_seconds`` (median wall time of ``autosplit status TASK --json``, polled every
  ``--poll`` seconds, default 10).

Run it, as root, on a personal pool it starts from ``../shared/htcondor`` and stops at the end (it runs
the measurement as the pool user ``htcuser``; task directories go under ``~htcuser/autosplit-bench-pool``
and are removed at the end unless ``--keep``)::

    .venv/bin/python benchmarks/bench_pool.py --start-pool            # the 2000-job run
    .venv/bin/python benchmarks/bench_pool.py --start-pool --files 50 --chains 8 --out /tmp/small.json

or against a pool that is already up, as a user whose jobs its schedd accepts (``CONDOR_CONFIG`` set), e.g.
the personal pool started by hand as root::

    dest=$(mktemp -d /opt/htc.XXXX); chmod 755 "$dest"
    tar -xJf ../shared/htcondor/htcondor-*.tar.xz -C "$dest" --strip-components=1
    echo 'HTC_PORT = 9788' > "$dest/local/config.d/10-port.conf"
    printf '%s\\n' 'NUM_CPUS = 16' 'SLOT_TYPE_1 = cpus=1, mem=512' 'NUM_SLOTS_TYPE_1 = 16' \\
        'SLOT_TYPE_1_PARTITIONABLE = FALSE' > "$dest/local/config.d/20-bench.conf"
    "$dest/htc-start"
    "$dest/htc-as" .venv/bin/python benchmarks/bench_pool.py --out /home/htcuser/pool.json
    "$dest/htc-stop"

(the pool user must be able to read the checkout and the venv: ``.ci/run`` shows the permissions).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parent.parent
SHARED_HTCONDOR = REPO.parent / "shared" / "htcondor"
AUTOSPLIT = [sys.executable, "-I", "-m", "autosplit"]
FINAL_STATES = ("completed", "completed-with-quarantine", "failed", "killed")
POOL_USER = os.environ.get("HTC_USER", "htcuser")
PROC_SAMPLE_SECONDS = 2.0

PAYLOAD = """
import time

SECONDS = {seconds!r}


def run(job):
    for unit in job.iter_units():
        if SECONDS:
            time.sleep(SECONDS)
"""

POOL_CONF = """\
# bench_pool.py: {slots} single-core static slots (the payload is trivial: oversubscribing is fine)
NUM_CPUS = {slots}
SLOT_TYPE_1 = cpus=1, mem=512
NUM_SLOTS_TYPE_1 = {slots}
SLOT_TYPE_1_PARTITIONABLE = FALSE
GLIDEIN_CMSSite = "T2_XX_Bench"
STARTD_ATTRS = $(STARTD_ATTRS) GLIDEIN_CMSSite
"""


def log(message: str) -> None:
    print(f"[bench_pool {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------- the pool
def pool_or_exit() -> dict[str, Any]:
    """The live pool's schedd and slots, or exit with a one-line message."""
    hint = "start one with --start-pool (as root) or see this script's docstring"
    config = os.environ.get("CONDOR_CONFIG")
    if not config or config == "/dev/null":
        sys.exit(f"bench_pool: no HTCondor pool: CONDOR_CONFIG is not set; {hint}")
    try:
        import htcondor2

        htcondor2.reload_config()
        htcondor2.Schedd().query(constraint="false", projection=["ClusterId"])
        slots = htcondor2.Collector().query(htcondor2.AdType.Startd, projection=["Name", "Cpus"])
    except Exception as exc:  # noqa: BLE001 - any failure means no usable pool
        sys.exit(f"bench_pool: no HTCondor pool answers ({' '.join(str(exc).split())}); {hint}")
    if not slots:
        sys.exit(f"bench_pool: the pool advertises no slots; {hint}")
    return {"slots": len(slots), "cpus": sum(int(s.get("Cpus", 1)) for s in slots)}


def start_pool(slots: int, port: int) -> Path:
    """Extract ../shared/htcondor's tarball under /opt, shape it (``slots`` static slots, ``port``) and
    start it with ``htc-start`` (as root; the pool runs as the pool user). Returns its directory."""
    tarballs = sorted(SHARED_HTCONDOR.glob("htcondor-*.tar.xz"))
    if not tarballs:
        sys.exit(f"bench_pool: no HTCondor tarball in {SHARED_HTCONDOR}")
    Path("/opt").mkdir(exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="autosplit-bench-htc.", dir="/opt"))  # not /tmp, not ../shared
    dest.chmod(0o755)
    subprocess.run(["tar", "-xJf", str(tarballs[-1]), "-C", str(dest), "--strip-components=1"], check=True)
    config_d = dest / "local" / "config.d"
    (config_d / "10-port.conf").write_text(f"HTC_PORT = {port}\n")
    (config_d / "20-bench.conf").write_text(POOL_CONF.format(slots=slots))
    subprocess.run([str(dest / "htc-start")], check=True)
    return dest


def stop_pool(dest: Path, remove: bool) -> None:
    subprocess.run([str(dest / "htc-stop")], check=False)
    if remove:
        shutil.rmtree(dest, ignore_errors=True)


def grant_access(user: str) -> None:
    """Let the pool user run this checkout's venv (as ``.ci/run`` does), if it cannot already."""
    probe = ["runuser", "-u", user, "--", sys.executable, "-c", "import autosplit, htcondor2"]
    if subprocess.run(probe, capture_output=True, cwd="/").returncode == 0:
        return
    log(f"giving {user} read access to {REPO} and the venv's interpreter")
    base = Path(os.path.realpath(sys.executable)).parent.parent
    for path in (REPO, base):
        for parent in [path, *path.parents]:
            if parent != Path("/"):
                parent.chmod(parent.stat().st_mode | 0o001)
        subprocess.run(["chmod", "-R", "o+rX", str(path)], check=False)
    if subprocess.run(probe, capture_output=True, cwd="/").returncode != 0:
        sys.exit(f"bench_pool: the pool user {user} cannot use {sys.executable}")


def run_on_own_pool(args: argparse.Namespace, argv: list[str]) -> int:
    """--start-pool: start a pool, run this script as the pool user against it, stop the pool."""
    if os.geteuid() != 0:
        sys.exit("bench_pool: --start-pool needs root (it creates the pool user and starts the daemons)")
    dest = start_pool(args.slots, args.port)
    log(f"pool up in {dest} (port {args.port}, {args.slots} slots)")
    try:
        grant_access(POOL_USER)
        import pwd

        # The pool user writes the figures into its home (not a file of root's in /tmp: protected_regular).
        out = Path(pwd.getpwnam(POOL_USER).pw_dir) / f"bench-pool-result.{os.getpid()}.json"
        out.unlink(missing_ok=True)
        child = [a for a in argv if a != "--start-pool"]
        child = _drop_option(child, "--out")
        done = subprocess.run(
            [str(dest / "htc-as"), sys.executable, str(Path(__file__).resolve()), *child, "--out", str(out)],
            cwd=REPO,
        )
        text = out.read_text() if out.exists() else ""
        out.unlink(missing_ok=True)
        if done.returncode != 0 or not text.strip():
            log(f"the run as {POOL_USER} failed (exit {done.returncode})")
            return done.returncode or 1
        payload = json.loads(text)
    finally:
        stop_pool(dest, remove=not args.keep)
    save(payload, args.out)
    return 0


def _drop_option(argv: list[str], name: str) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == name:
            skip = True
        elif not arg.startswith(name + "="):
            out.append(arg)
    return out


# ---------------------------------------------------------------------------------------- the task
def make_job_python(root: Path) -> str:
    """An interpreter with the payload's software but without autosplit (as on a real execute host; the
    jobs get autosplit's job side from the zipapp), like tests/test_condor_pool.py's."""
    import sysconfig

    env = root / "jobenv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(env)], check=True)
    python = env / "bin" / "python"
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return str(python)


def make_dataset(path: Path, n_files: int, lumis_per_file: int) -> int:
    """``n_files`` files of ``lumis_per_file`` lumis of 1000 events; returns the number of units."""
    import numpy as np
    import polars as pl

    from autosplit import Dataset

    n = n_files * lumis_per_file
    frame = pl.DataFrame(
        {
            "run": np.full(n, 300000),
            "lumi": np.arange(1, n + 1),
            "events": np.full(n, 1000),
            "file": [f"/store/bench/pool/f{i // lumis_per_file:05d}.root" for i in range(n)],
            "bytes": np.full(n, 10_000),
        }
    )
    Dataset.from_units(frame).to_parquet(path)
    return n


def write_task(root: Path, args: argparse.Namespace, job_python: str) -> Path:
    code = root / "code"
    code.mkdir()
    (code / "trivial.py").write_text(PAYLOAD.format(seconds=args.unit_seconds))
    make_dataset(root / "ds.parquet", args.files, args.lumis_per_file)
    toml = root / "task.toml"
    toml.write_text(
        textwrap.dedent(
            f"""
            [task]
            name = "{args.name}"
            workdir = "{root / "tasks"}"
            [dataset]
            source = "{root / "ds.parquet"}"
            [code]
            callable = "trivial:run"
            path = "{code}"
            [splitting]
            target_runtime = "10m"
            probe_seconds = "1m"
            probes = {args.probes}
            probe_fraction = 0.01
            max_files_per_job = 1
            max_tails = 2
            slots = {args.chains}
            [limits]
            retries = 1
            memory_mb = 256
            grace_seconds = "5s"
            [backend]
            kind = "condor"
            job_python = "{job_python}"
            bind_defer_seconds = {args.bind_defer}
            """
        )
    )
    return toml


def cli(*argv: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    done = subprocess.run([*AUTOSPLIT, *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"autosplit {' '.join(argv)} exited {done.returncode}: {done.stderr[-3000:]}")
    return done


# ---------------------------------------------------------------------------------------- sampling
TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int | str) -> tuple[float, float]:
    """(own, reaped children's) CPU seconds of a process, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return (utime + stime) / TICKS, (cutime + cstime) / TICKS


def user_cpu_seconds() -> float:
    """CPU seconds of every live process of this user, their reaped children included, minus this
    process's own (and its children's: the status commands): the pool's daemons, shadows, starters,
    DAGMan and its scripts, and the jobs, as long as the daemons that reaped them still run."""
    uid = os.getuid()
    total = 0.0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
            own, children = proc_cpu(entry.name)
        except (OSError, ValueError, IndexError):
            continue
        total += own + children
    mine = os.times()
    return total - (mine.user + mine.system + mine.children_user + mine.children_system)


def dagman_processes(dag_dir: Path) -> dict[int, dict[str, float]]:
    """The ``condor_dagman`` processes working in ``dag_dir`` (not their short-lived forks that start the
    scripts): pid -> ``VmHWM``/``VmRSS`` (KiB), own CPU seconds (``cpu``) and reaped children's
    (``children_cpu``: the PRE/POST scripts)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if Path(entry.path, "comm").read_text().strip() != "condor_dagman":
                continue
            if os.readlink(os.path.join(entry.path, "cwd")) != str(dag_dir):
                continue
            fields = dict(line.split(":", 1) for line in Path(entry.path, "status").read_text().splitlines())
            parent = Path("/proc", fields["PPid"].strip(), "comm").read_text().strip()
            if parent == "condor_dagman":  # a fork about to exec a script
                continue
            values = {key: float(fields[key].split()[0]) for key in ("VmHWM", "VmRSS") if key in fields}
            values["cpu"], values["children_cpu"] = proc_cpu(entry.name)
        except (OSError, ValueError, IndexError, KeyError):
            continue
        found[int(entry.name)] = values
    return found


def dagman_ad(cluster: int) -> dict[str, Any] | None:
    """The DAGMan job's ad in the queue now (None once it left the queue)."""
    import htcondor2

    ads = htcondor2.Schedd().query(
        constraint=f"ClusterId == {int(cluster)}", projection=["JobStatus", "ImageSize", "ResidentSetSize"]
    )
    return {k: _plain(v) for k, v in ads[0].items()} if ads else None


def dagman_history(cluster: int, wait: float = 30.0) -> dict[str, Any]:
    """The DAGMan job's history ad (its times, memory and exit), waiting a little for it to appear."""
    import htcondor2

    projection = [
        "QDate",
        "JobCurrentStartDate",
        "CompletionDate",
        "JobStatus",
        "ExitCode",
        "ImageSize",
        "ResidentSetSize",
        "DAG_NodesDone",
        "DAG_NodesFailed",
        "DAG_NodesTotal",
    ]
    deadline = time.monotonic() + wait
    while True:
        ads = list(htcondor2.Schedd().history(f"ClusterId == {int(cluster)}", projection, match=1))
        if ads or time.monotonic() > deadline:
            return {k: _plain(v) for k, v in ads[0].items()} if ads else {}
        time.sleep(2)


def _plain(value: Any) -> Any:
    return value if isinstance(value, bool | int | float | str) or value is None else str(value)


def load1() -> float:
    return round(os.getloadavg()[0], 2)


# ---------------------------------------------------------------------------------------- the records
def event_log_summary(path: Path) -> dict[str, Any]:
    """Counts and times (epoch seconds) of the node jobs' events in the task's event log."""
    import htcondor2

    kinds = htcondor2.JobEventType
    counts: dict[str, int] = {}
    times: dict[str, list[int]] = {"submit": [], "execute": [], "end": []}
    which = {kinds.SUBMIT: "submit", kinds.EXECUTE: "execute", kinds.JOB_TERMINATED: "end"}
    which[kinds.JOB_ABORTED] = "end"
    for event in htcondor2.JobEventLog(str(path)).events(stop_after=0):
        name = getattr(event.type, "name", str(event.type))
        counts[name] = counts.get(name, 0) + 1
        if event.type in which:
            times[which[event.type]].append(event.timestamp)
    return {
        "counts": counts,
        "first_submit": min(times["submit"], default=None),
        "first_execute": min(times["execute"], default=None),
        "last_job_end": max(times["end"], default=None),
    }


def ledger_summary(task_dir: Path) -> dict[str, Any]:
    """Jobs by stage and attempts from the task's ledger; the last POST decision and the FINAL node's
    close (epoch seconds)."""
    from autosplit.pipeline.taskdir import TaskDir

    with TaskDir(task_dir).ledger() as ledger:
        jobs = ledger.jobs()
        attempts = ledger.attempts()
        finished = ledger.get_meta("finished")
        cluster = ledger.get_meta("condor_cluster")
    ran = jobs.filter(jobs["attempts"] > 0) if jobs.height else jobs
    by_stage: dict[str, int] = {}
    for stage in ran["stage"].to_list() if ran.height else []:
        by_stage[stage] = by_stage.get(stage, 0) + 1
    return {
        "jobs_ran": ran.height,
        "jobs_by_stage": by_stage,
        "attempt_outcomes": dict(attempts.group_by("outcome").len().iter_rows()) if attempts.height else {},
        "last_post_decision": float(attempts["time"].max()) if attempts.height else None,
        "finished": float(finished) if finished else None,
        "cluster": int(cluster) if cluster else None,
    }


_STAMP = re.compile(r"^(\d\d/\d\d/\d\d \d\d:\d\d:\d\d) ")
_SCRIPT_START = re.compile(r"Running (PRE|POST) script of Node (\S+?)\.\.\.$")
_SCRIPT_END = re.compile(r"(PRE|POST) Script of [Nn]ode (\S+) (?:completed|failed)")


def dag_script_seconds(dagman_out: Path) -> dict[str, Any]:
    """Runs and wall seconds of the PRE (bind, predag) and POST (postjob) scripts, from DAGMan's log
    (1 s resolution; ``runs`` counts deferred PRE scripts run again, a duration starts at the last run)."""
    started: dict[tuple[str, str], float] = {}
    runs = {"PRE": 0, "POST": 0}
    spans: dict[str, list[float]] = {"PRE": [], "POST": []}
    with open(dagman_out, errors="replace") as handle:
        for line in handle:
            stamp = _STAMP.match(line)
            if not stamp:
                continue
            if match := _SCRIPT_START.search(line):
                runs[match.group(1)] += 1
                started[(match.group(1), match.group(2))] = _epoch(stamp.group(1))
            elif (match := _SCRIPT_END.search(line)) and (key := (match.group(1), match.group(2))) in started:
                spans[key[0]].append(_epoch(stamp.group(1)) - started.pop(key))
    out = {}
    for kind, values in spans.items():
        values.sort()
        out[kind.lower()] = {
            "runs": runs[kind],
            "nodes": len(values),
            "median": statistics.median(values) if values else None,
            "p90": values[int(0.9 * (len(values) - 1))] if values else None,
            "max": values[-1] if values else None,
        }
    return out


def _epoch(stamp: str) -> float:
    return time.mktime(time.strptime(stamp, "%m/%d/%y %H:%M:%S"))


def dag_nodes(dag: Path) -> int:
    return sum(1 for line in dag.read_text().splitlines() if line.startswith("JOB "))


# ---------------------------------------------------------------------------------------- the run
def submit(toml: Path, task_dir: Path, cwd: Path) -> dict[str, Any]:
    """``autosplit submit``, timed; the DAG's and the DAGMan submit file's modification times."""
    started = time.time()
    cli("submit", str(toml), "--json", cwd=cwd)
    ended = time.time()
    dag = task_dir / "dag" / "task.dag"
    return {
        "started": started,
        "ended": ended,
        "dag": dag,
        "dag_written": dag.stat().st_mtime,
        "sub_written": Path(f"{dag}.condor.sub").stat().st_mtime,
        "cluster": ledger_summary(task_dir)["cluster"],
    }


def follow(task_dir: Path, cwd: Path, cluster: int, poll: float, timeout: float) -> dict[str, Any]:
    """Sample condor_dagman every PROC_SAMPLE_SECONDS and poll ``status --json`` every ``poll`` s until the
    task reached a final state and its DAGMan left the queue."""
    hwm: dict[int, float] = {}
    cpu: dict[int, tuple[float, float]] = {}
    ad_max = {"ImageSize": 0, "ResidentSetSize": 0}
    status_times, loads = [], []
    status: dict[str, Any] = {}
    final_seen = gone_seen = None
    start = time.monotonic()
    next_status = 0.0
    while time.monotonic() - start < timeout and not (final_seen and gone_seen):
        for pid, values in dagman_processes(task_dir / "dag").items():
            hwm[pid] = max(hwm.get(pid, 0), values.get("VmHWM", 0))
            cpu[pid] = (values["cpu"], values["children_cpu"])
        if time.monotonic() >= next_status:
            next_status = time.monotonic() + poll
            t0 = time.perf_counter()
            status = json.loads(cli("status", str(task_dir), "--json", cwd=cwd).stdout)
            status_times.append(time.perf_counter() - t0)
            loads.append(load1())
            ad = dagman_ad(cluster)
            for key in ad_max:
                ad_max[key] = max(ad_max[key], int((ad or {}).get(key) or 0))
            if status["state"] in FINAL_STATES:
                final_seen = final_seen or time.time()
            if ad is None or ad.get("JobStatus") in (3, 4):
                gone_seen = gone_seen or time.time()
            units = status["units"]
            running = len(status["backend"].get("running_jobs", []))
            log(
                f"{status['state']}: {units['done']}/{units['total']} units done, {units['quarantined']} "
                f"quarantined, {running} jobs running; dagman VmHWM {max(hwm.values(), default=0) / 1024:.1f}"
                f" MB; load {loads[-1]}"
            )
        if not (final_seen and gone_seen):
            time.sleep(PROC_SAMPLE_SECONDS)
    return {
        "status": status,
        "timed_out": not (final_seen and gone_seen),
        "dagman_vmhwm_kib": hwm,
        "dagman_cpu": cpu,
        "dagman_ad_max_kib": ad_max,
        "status_seconds": statistics.median(status_times) if status_times else None,
        "status_polls": len(status_times),
        "load_max": max(loads, default=None),
        "final_seen": final_seen,
        "gone_seen": gone_seen,
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Create, submit and follow the task; collect the figures; remove the task unless ``--keep``."""
    pool = pool_or_exit()
    root = Path(args.workdir).expanduser() / f"run-{time.strftime('%Y%m%d-%H%M%S')}"
    root.mkdir(parents=True)
    log(f"pool: {pool['slots']} slots; task under {root}")
    try:
        toml = write_task(root, args, make_job_python(root))
        task_dir = root / "tasks" / args.name
        load_start = load1()
        cpu_start = user_cpu_seconds()
        sub = submit(toml, task_dir, root)
        log(
            f"submitted in {sub['ended'] - sub['started']:.2f} s: DAGMan cluster {sub['cluster']}, "
            f"{dag_nodes(sub['dag'])} job nodes"
        )
        followed = follow(task_dir, root, sub["cluster"], args.poll, args.timeout)
        records = {
            "cpu_used": user_cpu_seconds() - cpu_start,
            "load_start": load_start,
            "load_end": load1(),
            "history": dagman_history(sub["cluster"]),
            "events": event_log_summary(task_dir / "dag" / "jobs.log"),
            "ledger": ledger_summary(task_dir),
            "scripts": dag_script_seconds(task_dir / "dag" / "task.dag.dagman.out"),
        }
        return figures(args, pool, sub, followed, records)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def since(t: float | None, origin: float | None) -> float | None:
    return round(t - origin, 2) if t is not None and origin is not None else None


def figures(args: argparse.Namespace, pool: dict, sub: dict, followed: dict, records: dict) -> dict[str, Any]:
    """The benchmark's JSON (see the module docstring for every figure)."""
    history, events, ledger = records["history"], records["events"], records["ledger"]
    status = followed["status"]
    completion = history.get("CompletionDate") or None
    last_end = events["last_job_end"]
    hwm = followed["dagman_vmhwm_kib"]
    top = max(hwm, key=hwm.get) if hwm else None
    dagman_cpu, scripts_cpu = followed["dagman_cpu"].get(top, (None, None))
    stages = ledger["jobs_by_stage"]
    jobs = ledger["jobs_ran"]
    counts = events["counts"]
    first_execute = events["first_execute"]
    return {
        "jobs": jobs,
        "probe_jobs": sum(n for s, n in stages.items() if s.startswith("probe")),
        "processing_jobs": sum(n for s, n in stages.items() if not s.startswith("probe")),
        "jobs_by_stage": stages,
        "job_attempts": counts.get("JOB_TERMINATED", 0) + counts.get("JOB_ABORTED", 0),
        "job_events": counts,
        "dag_nodes": dag_nodes(sub["dag"]),
        "dag_submit_seconds": round(sub["ended"] - sub["started"], 2),
        "dag_submit_breakdown": {
            "create_task_and_write_dag": round(sub["dag_written"] - sub["started"], 2),
            "sandbox_zipapp_and_from_dag": round(sub["sub_written"] - sub["dag_written"], 2),
            "schedd_submit_and_exit": round(sub["ended"] - sub["sub_written"], 2),
        },
        "dagman_first_job_submit_seconds": since(events["first_submit"], sub["ended"]),
        "dagman_peak_rss_mb": round(hwm[top] / 1024, 1) if top else None,
        "dagman_peak_rss_source": "VmHWM of /proc/<pid>/status of the task's condor_dagman process, "
        f"sampled every {PROC_SAMPLE_SECONDS:g} s",
        "dagman_job_ad": {
            "ImageSize_kib_at_end": history.get("ImageSize"),
            "ResidentSetSize_kib_at_end": history.get("ResidentSetSize"),
            "ImageSize_kib_max_polled": followed["dagman_ad_max_kib"]["ImageSize"],
            "ResidentSetSize_kib_max_polled": followed["dagman_ad_max_kib"]["ResidentSetSize"],
            "exit_code": history.get("ExitCode"),
            "nodes_done": history.get("DAG_NodesDone"),
            "nodes_failed": history.get("DAG_NodesFailed"),
            "nodes_total": history.get("DAG_NodesTotal"),
        },
        "last_job_end_to_task_end_seconds": since(completion, last_end),
        "last_job_end_to_task_end_source": "the DAGMan job's CompletionDate (schedd history) minus the "
        "latest JOB_TERMINATED event in dag/jobs.log (1 s resolution each)",
        "task_end_breakdown": {
            "last_job_end_to_last_post_decision": since(ledger["last_post_decision"], last_end),
            "last_job_end_to_finalize": since(ledger["finished"], last_end),
            "last_job_end_to_dagman_exit": since(completion, last_end),
            "last_job_end_to_status_final_seen": since(followed["final_seen"], last_end),
            "last_job_end_to_dag_gone_seen": since(followed["gone_seen"], last_end),
            "poll_seconds": args.poll,
        },
        "task_wall_seconds": since(completion, sub["started"]),
        "first_job_start_seconds": since(first_execute, sub["started"]),
        "jobs_per_minute": (
            round(60 * jobs / (last_end - first_execute), 1)
            if last_end and first_execute and last_end > first_execute
            else None
        ),
        "cpu_seconds": {
            "pool_user_total": round(records["cpu_used"], 1),
            "pool_user_per_job": round(records["cpu_used"] / max(jobs, 1), 3),
            "dagman": dagman_cpu,
            "dag_scripts": scripts_cpu,
            "dag_scripts_per_job": round(scripts_cpu / max(jobs, 1), 3) if scripts_cpu else None,
            "source": "pool_user_*: /proc utime+stime+cutime+cstime of every process of the pool user, end "
            "minus start, this script and its status commands excluded (HTCondor daemons, shadows, "
            "starters, DAGMan, its scripts, the jobs); dagman/dag_scripts: the condor_dagman process's own "
            "and its reaped children's (PRE/POST scripts) CPU at its last sample",
        },
        "dag_script_wall_seconds": records["scripts"],
        "slots": pool["slots"],
        "chains": args.chains,
        "files": args.files,
        "lumis_per_file": args.lumis_per_file,
        "unit_seconds": args.unit_seconds,
        "bind_defer_seconds": args.bind_defer,
        "load_average": {
            "start": records["load_start"],
            "max_polled": followed["load_max"],
            "end": records["load_end"],
        },
        "state": status.get("state"),
        "units": status.get("units"),
        "attempt_outcomes": ledger["attempt_outcomes"],
        "status_seconds": round(followed["status_seconds"], 3) if followed["status_seconds"] else None,
        "status_polls": followed["status_polls"],
        "timed_out": followed["timed_out"],
        "error": status.get("error"),
    }


def save(payload: dict[str, Any], out: str | None) -> None:
    if out:
        Path(out).write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out}")
    else:
        from _common import write_results

        write_results("pool", payload)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start-pool", action="store_true", help="start (and stop) a personal pool; root")
    parser.add_argument("--files", type=int, default=2000, help="files of the dataset (one job each)")
    parser.add_argument("--lumis-per-file", type=int, default=1)
    parser.add_argument("--unit-seconds", type=float, default=0.2, help="the payload's sleep per unit")
    parser.add_argument("--chains", type=int, default=32, help="[splitting] slots: the DAG's chains")
    parser.add_argument("--slots", type=int, default=16, help="single-core slots of --start-pool's pool")
    parser.add_argument("--probes", type=int, default=8)
    parser.add_argument("--bind-defer", type=int, default=5, help="[backend] bind_defer_seconds")
    parser.add_argument("--port", type=int, default=9788, help="--start-pool's pool port")
    parser.add_argument("--poll", type=float, default=10.0, help="seconds between status polls")
    parser.add_argument("--timeout", type=float, default=3 * 3600.0, help="give up following after (s)")
    parser.add_argument("--name", default="bench-pool")
    parser.add_argument("--workdir", default="~/autosplit-bench-pool", help="not under /tmp")
    parser.add_argument("--keep", action="store_true", help="keep the task directory (and the pool dir)")
    parser.add_argument("--out", help="write the figures here instead of benchmarks/results/pool.json")
    args = parser.parse_args(argv)
    if args.start_pool:
        return run_on_own_pool(args, argv)
    payload = measure(args)
    print(json.dumps(payload, indent=2))
    save(payload, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
