"""Benchmark: a task of 100,000 jobs — creating it, binding and accounting for jobs, following it, the ledger.

A synthetic dataset of 1,000,000 lumis in 100,000 files (10 lumis a file) and a task whose jobs hold at most
one file (``max_files_per_job = 1``) and about 1000 s of work (target 1 h), so the scheduler cuts more than
100,000 processing jobs; 2000 chains of 64 nodes (``max_jobs = 2000``: 128,000 nodes in ``task.dag``).

Figures (``benchmarks/results/scale.json``):

* ``predag_seconds``/``predag_peak_rss_mb``: a fresh process creates the task — reads the dataset, creates
  the ledger, writes ``task.dag`` — and binds the first job (what DAGMan's first PRE script does: the
  scheduler is made, its state and the unit cache written); peak RSS of that process.
* ``bind_seconds_per_job``/``postjob_seconds_per_job``: a job's PRE (bind) and POST (postjob) script at
  full size (about 100,000 jobs bound, 99 % of the units done), median of a sample: timed as real script
  processes (``python -I -m autosplit.pipeline.bind|postjob``, what DAGMan runs: interpreter start and
  imports included) and in-process (``bind()``/``run_postjob()``: load the scheduler state, decide, write
  the ledger and the job files, save the state). The same sample early in the task (a few hundred jobs)
  shows the cost does not grow with the task.
* How the task got there: the probes are bound and accounted for through ``bind()``/``run_postjob()``; the
  ~100,000 processing jobs are driven in-process in batches through the same calls the scripts make
  (``Scheduler.next_jobs``/``job_finished``, ``Ledger.bind_job``/``record_outcome`` one transaction per job,
  ``write_job`` for every job's spec and submit file) under one session; ``driver`` in the JSON says so.
* ``status_seconds``: ``task_status`` in a fresh process (the ledger read, a 128,000-node status file with
  2000 running nodes parsed); ``status_poll_seconds``: the next call with nothing new.
* ``ledger_mb``: the ledger (with its write-ahead log) at the end.
* ``executor_seconds_per_node``: the local executor on a chain DAG of trivial nodes, each with a PRE and a
  POST script process (``/bin/true``), ``max_jobs`` = 2 × cores: wall time per node (the real postjob's own
  cost is ``postjob_seconds_per_job``).

Run: .venv/bin/python benchmarks/bench_scale.py [--units 1000000 --files 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
from _common import write_results  # noqa: E402

TARGETS = {
    "predag_seconds": 10.0,
    "predag_peak_rss_mb": 2048.0,
    "status_seconds": 2.0,
    "status_poll_seconds": 0.2,
    "postjob_seconds_per_job": 0.2,
    "executor_seconds_per_node": 0.005,
}
SECONDS_PER_EVENT = 0.1
PYTHON = sys.executable


# ---------------------------------------------------------------------- set-up
def make_dataset(path: Path, n_files: int, per_file: int) -> None:
    from autosplit import Dataset

    n = n_files * per_file
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "run": 300000 + np.arange(n) // 20000,
            "lumi": np.arange(n) % 20000 + 1,
            "events": rng.integers(500, 1500, n),
            "file": pl.Series([f"/store/bench/scale/f{i:06d}.root" for i in range(n_files)]).gather(
                np.arange(n) // per_file
            ),
            "bytes": np.full(n, 10_000_000),
        }
    )
    Dataset.from_units(frame).to_parquet(path)


def write_toml(root: Path, dataset: Path, chains: int) -> Path:
    path = root / "task.toml"
    path.write_text(
        textwrap.dedent(
            f"""
            [task]
            name = "scale"
            workdir = "{root / "tasks"}"
            [dataset]
            source = "{dataset}"
            [code]
            callable = "payload:run"
            [splitting]
            target_runtime = "1h"
            probe_seconds = "5m"
            probes = 20
            max_files_per_job = 1
            [limits]
            retries = 1
            [backend]
            max_jobs = {chains}
            """
        )
    )
    return path


def child(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter (``RESULT`` is printed as JSON); returns it with the peak RSS."""
    script = (
        "import json, resource, sys, time\n"
        + code
        + "\nRESULT['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024\n"
        + "print('RESULT=' + json.dumps(RESULT))\n"
    )
    out = subprocess.run(
        [PYTHON, "-c", script, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    for line in out.stdout.splitlines():
        if line.startswith("RESULT="):
            return json.loads(line[7:])
    raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-3000:]}")


PREDAG = """
from autosplit.pipeline.config import load_config
from autosplit.pipeline.submit import create_task_from_config
from autosplit.pipeline.bind import bind
from pathlib import Path
t0 = time.perf_counter()
task = create_task_from_config(load_config(sys.argv[1]), Path(sys.argv[1]))
t1 = time.perf_counter()
code, message = bind(str(task.root), "c1-1")
t2 = time.perf_counter()
RESULT = {"create_task_seconds": t1 - t0, "first_bind_seconds": t2 - t1, "seconds": t2 - t0,
          "bind": [code, message], "task": str(task.root), "dag_nodes": open(task.top_dag).read().count("\\nJOB ")}
"""

STATUS = """
t0 = time.perf_counter()
from autosplit.pipeline.status import task_status
from autosplit.pipeline.taskdir import TaskDir
t1 = time.perf_counter()
task = TaskDir(sys.argv[1])
status = task_status(task)
t2 = time.perf_counter()
polls = []
for _ in range(5):
    s = time.perf_counter(); again = task_status(task); polls.append(time.perf_counter() - s)
RESULT = {"import_seconds": t1 - t0, "status_seconds": t2 - t1, "poll_seconds": sorted(polls)[2],
          "units": status["units"], "stages": status["stages"], "sites": status["sites"], "same": again == status}
"""


# ---------------------------------------------------------------------- fake job reports
class Units:
    def __init__(self, task) -> None:
        units = task.dataset.units
        self.run = units["run"].to_numpy()
        self.lumi = units["lumi"].to_numpy()
        self.events = units["events"].to_numpy()
        self.rng = np.random.default_rng(1)

    def report(self, node: str, rows: np.ndarray, soft: float | None, attempt: int = 0):
        from autosplit.jobreport import JobReport

        seconds = self.events[rows] * SECONDS_PER_EVENT * self.rng.lognormal(0.0, 0.1, rows.size)
        done = rows.size
        stopped = False
        if soft is not None:
            cum = np.cumsum(seconds)
            done = int(np.searchsorted(cum, soft, side="right"))
            done = max(done, 1)
            stopped = done < rows.size
        units = [
            {"run": int(r), "lumi": int(lu), "events": int(e), "seconds": float(s)}
            for r, lu, e, s in zip(
                self.run[rows[:done]],
                self.lumi[rows[:done]],
                self.events[rows[:done]],
                seconds[:done],
                strict=True,
            )
        ]
        unfinished = [
            {"run": int(r), "lumi": int(lu)}
            for r, lu in zip(self.run[rows[done:]], self.lumi[rows[done:]], strict=True)
        ]
        busy = float(seconds[:done].sum())
        return JobReport(
            job_id=node,
            attempt=attempt,
            site="T2_XX_Bench",
            exit_code=0,
            exit_message="",
            wall_seconds=busy + 5.0,
            cpu_seconds=busy,
            init_seconds=5.0,
            loop_seconds=busy,
            peak_rss_bytes=500_000_000,
            units=units,
            unfinished=unfinished,
            soft_stopped=stopped,
        )


class Nodes:
    """Chain node names handed out in order: chain 1..N round robin, each chain's next node."""

    def __init__(self, chains: int, length: int) -> None:
        self.chains, self.length = chains, length
        self.next = [1] * (chains + 1)
        self.cursor = 0
        self.free: list[str] = []

    def take(self, count: int) -> list[str]:
        out = []
        while len(out) < count and self.free:
            out.append(self.free.pop(0))
        tried = 0
        while len(out) < count and tried < self.chains:
            chain = self.cursor % self.chains + 1
            self.cursor += 1
            tried += 1
            if self.next[chain] <= self.length:
                out.append(f"c{chain}-{self.next[chain]}")
                self.next[chain] += 1
                tried = 0
        return out

    def give_back(self, names: list[str]) -> None:
        self.free = names + self.free


# ---------------------------------------------------------------------- one job through the real scripts
def one_job(task, units: Units, nodes: Nodes, subprocess_mode: bool) -> tuple[float, float] | None:
    """Bind the next node, leave its report, account for it; returns (bind seconds, postjob seconds)."""
    from autosplit.pipeline.bind import bind
    from autosplit.pipeline.postjob import run_postjob
    from autosplit.pipeline.taskdir import TaskDir

    [node] = nodes.take(1)
    cpu = _cpu()
    start = time.perf_counter()
    if subprocess_mode:
        code = subprocess.run(
            [PYTHON, "-I", "-m", "autosplit.pipeline.bind", str(task.root), node], check=False
        ).returncode
    else:
        code, _ = bind(str(task.root), node)
    bind_seconds = time.perf_counter() - start
    bind_cpu = _cpu() - cpu
    if code != 0:
        nodes.give_back([node])
        return None
    with task.ledger() as ledger:
        rows = np.asarray(ledger.job_unit_ids(node), dtype=np.int64)
        job = ledger.job(node)
    units.report(node, rows, job["soft_limit_seconds"]).to_json(task.report_path(node))
    cpu = _cpu()
    start = time.perf_counter()
    if subprocess_mode:
        result = subprocess.run(
            [PYTHON, "-I", "-m", "autosplit.pipeline.postjob", str(task.root), node, "0", "0", "1"],
            check=False,
        ).returncode
    else:
        result = run_postjob(TaskDir(task.root), node, 0, 0, 1).decision
    post_seconds = time.perf_counter() - start
    post_cpu = _cpu() - cpu
    assert result == 0, result
    return bind_seconds, post_seconds, bind_cpu, post_cpu


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (user + system)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def sample(task, units: Units, nodes: Nodes, n_inprocess: int, n_subprocess: int) -> dict:
    inproc = [r for r in (one_job(task, units, nodes, False) for _ in range(n_inprocess)) if r]
    sub = [r for r in (one_job(task, units, nodes, True) for _ in range(n_subprocess)) if r]

    def med(values, i):
        return round(statistics.median(v[i] for v in values), 4) if values else None

    def entry(values):
        return {
            "n": len(values),
            "bind_seconds": med(values, 0),
            "postjob_seconds": med(values, 1),
            "bind_cpu_seconds": med(values, 2),
            "postjob_cpu_seconds": med(values, 3),
        }

    imports = []
    for _ in range(n_subprocess):
        cpu = _cpu()
        start = time.perf_counter()
        subprocess.run(
            [PYTHON, "-I", "-c", "import autosplit.pipeline.postjob, autosplit.pipeline.bind"], check=True
        )
        imports.append((time.perf_counter() - start, _cpu() - cpu))
    return {
        "in_process": entry(inproc),
        "script": entry(sub),
        "script_start_and_imports": {
            "seconds": round(statistics.median(v[0] for v in imports), 4) if imports else None,
            "cpu_seconds": round(statistics.median(v[1] for v in imports), 4) if imports else None,
        },
        "load_average": os.getloadavg()[0],
    }


# ---------------------------------------------------------------------- the bulk of the task, in batches
def drive(task, units: Units, nodes: Nodes, *, stop_pending: int, leave_running: bool, log=print) -> dict:
    """Bind and account for jobs batch by batch (every chain gets a job, then every job reports) until at
    most ``stop_pending`` units are pending; with ``leave_running`` the last batch stays bound."""
    from autosplit.pipeline.postjob import OK
    from autosplit.pipeline.scheduling import session
    from autosplit.pipeline.stages import write_job

    stats = {"jobs": 0, "bind_seconds": 0.0, "write_seconds": 0.0, "postjob_seconds": 0.0, "refits": 0}
    now = time.time()
    with session(task) as s:
        ledger, sched = s.ledger, s.scheduler
        ledger._db.execute("PRAGMA synchronous=NORMAL")  # the driver's own commits: no fsync each
        memory = task.config.limits.memory_mb
        while True:
            if not leave_running and sched._book.n_pending() <= stop_pending:
                break  # leave work for the per-job sample that follows
            names = nodes.take(nodes.chains)
            if not names:
                break
            fits = sched._fits
            t0 = time.perf_counter()
            requests = sched.next_jobs(free_slots=len(names), now=now, names=names)
            nodes.give_back(names[len(requests) :])
            t1 = time.perf_counter()
            for req in requests:
                write_job(
                    task,
                    req.job_id,
                    stage=req.stage,
                    unit_ids=req.rows,
                    soft=req.soft_limit_seconds,
                    hard=req.hard_limit_seconds,
                    memory_mb=memory,
                )
            t2 = time.perf_counter()
            for req in requests:
                ledger.bind_job(
                    req.job_id,
                    stage=req.stage,
                    kind="alone" if req.alone else "bulk",
                    unit_ids=req.rows,
                    predicted_seconds=req.predicted_seconds,
                    soft_limit_seconds=req.soft_limit_seconds,
                    hard_limit_seconds=req.hard_limit_seconds,
                    memory_mb=memory,
                )
            ledger.record_changes(s.changes())
            t3 = time.perf_counter()
            stats["bind_seconds"] += (t1 - t0) + (t3 - t2)
            stats["write_seconds"] += t2 - t1
            stats["jobs"] += len(requests)
            pending = sched._book.n_pending()
            if leave_running and pending <= stop_pending:
                break
            now += 1800.0
            for req in requests:
                report = units.report(req.job_id, req.rows, req.soft_limit_seconds)
                result = sched.job_finished(report, now)
                ledger.record_outcome(
                    req.job_id,
                    0,
                    decision=OK,
                    outcome="soft-stopped" if report.soft_stopped else "ok",
                    message="",
                    details={
                        "exit_code": 0,
                        "site": report.site,
                        "wall_seconds": report.wall_seconds,
                        "cpu_seconds": report.cpu_seconds,
                        "events": report.total_events,
                        "usable_report": True,
                        "elapsed_seconds": 1800.0,
                    },
                    units=s.changes(),
                    done=len(result.get("done", ())),
                    returned=len(result.get("returned", ())),
                    job_state="finished",
                )
            stats["postjob_seconds"] += time.perf_counter() - t3
            stats["refits"] += sched._fits - fits
            log(
                f"  driven {stats['jobs']} jobs, {pending} units pending, {time.perf_counter() - t0:.1f} s batch"
            )
            if not requests or pending <= stop_pending or sched.finished:
                break
        s.save()
    return stats


# ---------------------------------------------------------------------- status file and executor
def write_status_file(task, nodes: Nodes) -> int:
    from autosplit.backends.local.statusfile import COUNT_KEYS, StatusRow, render_status

    with task.ledger() as ledger:
        planned = {r[0] for r in ledger._db.execute("SELECT node FROM jobs WHERE state = 'planned'")}
        bound = {r[0] for r in ledger._db.execute("SELECT node FROM jobs")}
    rows = []
    for chain in range(1, nodes.chains + 1):
        for k in range(1, nodes.length + 1):
            name = f"c{chain}-{k}"
            status = 3 if name in planned else (5 if name in bound else 1)
            rows.append(StatusRow(name=name, status=status))
    counts = dict.fromkeys(COUNT_KEYS, 0)
    counts["NodesTotal"] = len(rows)
    text = render_status([str(task.top_dag)], 3, "running", counts, rows, time.time() + 5)
    (task.dag_dir / "task.status").write_text(text)
    return len(rows)


def executor_bench(root: Path, n_nodes: int, chains: int, script: list[str] | None = None) -> dict:
    """A chain DAG of ``n_nodes`` trivial nodes with a PRE and a POST script each, run by the local executor."""
    from autosplit.backends.local import run_dag

    directory = root / f"executor-{n_nodes}"
    directory.mkdir()
    (directory / "job.sub").write_text("executable = /bin/true\nqueue\n")
    lines = []
    length = n_nodes // chains
    for c in range(chains):
        for k in range(length):
            name = f"n{c}_{k}"
            lines.append(f"JOB {name} job.sub")
            lines.append(f"SCRIPT PRE {name} /bin/true")
            post = " ".join(script) if script else "/bin/true"
            lines.append(f"SCRIPT POST {name} {post}".replace("NODE", name))
            if k:
                lines.append(f"PARENT n{c}_{k - 1} CHILD {name}")
    dag = directory / "bench.dag"
    dag.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    result = run_dag(dag, max_jobs=2 * (os.cpu_count() or 1), max_pre=20, max_post=20, poll_interval=0.2)
    wall = time.perf_counter() - start
    nodes = chains * length
    assert result.exit_code == 0 and result.counts() == {"DONE": nodes}, result.counts()
    return {"nodes": nodes, "wall_seconds": round(wall, 2), "seconds_per_node": round(wall / nodes, 5)}


# ---------------------------------------------------------------------- main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--per-file", type=int, default=10)
    parser.add_argument("--chains", type=int, default=2000)
    parser.add_argument("--executor-nodes", type=int, default=20_000)
    parser.add_argument("--keep", help="work in this directory and keep it")
    parser.add_argument("--no-write", action="store_true", help="print, do not write results/scale.json")
    args = parser.parse_args()

    root = Path(args.keep or tempfile.mkdtemp(prefix="bench-scale-", dir="/var/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    out: dict = {}
    try:
        log = lambda text: print(text, flush=True)  # noqa: E731
        dataset = root / "dataset.parquet"
        t0 = time.perf_counter()
        make_dataset(dataset, args.files, args.per_file)
        log(
            f"dataset: {args.files * args.per_file} units in {args.files} files ({time.perf_counter() - t0:.1f} s)"
        )
        toml = write_toml(root, dataset, args.chains)

        predag = child(PREDAG, str(toml))
        log(f"predag: {predag}")
        from autosplit.pipeline.stages import chain_length
        from autosplit.pipeline.taskdir import TaskDir

        task = TaskDir(predag["task"])
        units = Units(task)
        nodes = Nodes(args.chains, chain_length(task.dataset.n_units, args.chains))
        nodes.take(1)  # c1-1, bound by the predag process

        # Probes: through the real script functions, in process.
        from autosplit.pipeline.bind import bind
        from autosplit.pipeline.postjob import run_postjob

        probes = ["c1-1"]
        while True:
            [node] = nodes.take(1)
            code, message = bind(str(task.root), node)
            if code != 0:
                nodes.give_back([node])
                break
            probes.append(node)
        for node in probes:
            with task.ledger() as ledger:
                rows = np.asarray(ledger.job_unit_ids(node), dtype=np.int64)
                soft = ledger.job(node)["soft_limit_seconds"]
            units.report(node, rows, soft).to_json(task.report_path(node))
            run_postjob(TaskDir(task.root), node, 0, 0, 1)
        log(f"probes: {len(probes)} bound and accounted for")
        rounds = 0
        while True:  # further probe rounds, if the scheduler asks for them
            [node] = nodes.take(1)
            code, message = bind(str(task.root), node)
            with task.ledger() as ledger:
                job = ledger.job(node)
            if code != 0 or job is None:
                nodes.give_back([node])
                break
            if job["kind"] != "probe":
                rows = np.asarray(ledger_ids(task, node), dtype=np.int64)
                units.report(node, rows, job["soft_limit_seconds"]).to_json(task.report_path(node))
                run_postjob(TaskDir(task.root), node, 0, 0, 1)
                break
            rounds += 1
            rows = np.asarray(ledger_ids(task, node), dtype=np.int64)
            units.report(node, rows, job["soft_limit_seconds"]).to_json(task.report_path(node))
            run_postjob(TaskDir(task.root), node, 0, 0, 1)
        early = sample(task, units, nodes, 20, 5)
        log(f"early sample: {early}")

        t0 = time.perf_counter()
        stats = drive(task, units, nodes, stop_pending=20_000, leave_running=False, log=log)
        log(f"driven: {stats} in {time.perf_counter() - t0:.1f} s")
        late = sample(task, units, nodes, 20, 5)
        log(f"late sample: {late}")
        # leave a batch running (bound, not reported) so status has running jobs to show
        running = drive(task, units, nodes, stop_pending=10**9, leave_running=True, log=log)
        with task.ledger() as ledger:
            n_jobs = ledger._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
            n_processing = ledger._db.execute("SELECT COUNT(*) FROM jobs WHERE kind != 'probe'").fetchone()[0]
            counts = ledger.unit_counts()
        n_status_nodes = write_status_file(task, nodes)
        status = child(STATUS, str(task.root))
        log(f"status: {status['status_seconds']:.3f} s, poll {status['poll_seconds']:.4f} s")
        ledger_bytes = sum(p.stat().st_size for p in task.root.glob("ledger.sqlite*") if p.is_file())
        state_bytes = sum(p.stat().st_size for p in (task.root / "scheduler.d").iterdir())

        executor = executor_bench(root, args.executor_nodes, 200)
        log(f"executor: {executor}")
        out = {
            "units": int(task.dataset.n_units),
            "files": args.files,
            "jobs": int(n_jobs),
            "processing_jobs": int(n_processing),
            "dag_nodes": predag["dag_nodes"],
            "predag_seconds": round(predag["seconds"], 3),
            "predag_breakdown": {
                "create_task_seconds": round(predag["create_task_seconds"], 3),
                "first_bind_seconds": round(predag["first_bind_seconds"], 3),
            },
            "predag_peak_rss_mb": round(predag["peak_rss_mb"], 1),
            "status_seconds": round(status["status_seconds"], 3),
            "status_import_seconds": round(status["import_seconds"], 3),
            "status_poll_seconds": round(status["poll_seconds"], 5),
            "status_nodes_in_status_file": n_status_nodes,
            "postjob_seconds_per_job": late["script"]["postjob_seconds"],
            "postjob_seconds_per_job_in_process": late["in_process"]["postjob_seconds"],
            "bind_seconds_per_job": late["script"]["bind_seconds"],
            "bind_seconds_per_job_in_process": late["in_process"]["bind_seconds"],
            "per_job_sample_early": early,
            "per_job_sample_late": late,
            "ledger_mb": round(ledger_bytes / 2**20, 1),
            "scheduler_state_mb": round(state_bytes / 2**20, 1),
            "executor_seconds_per_node": executor["seconds_per_node"],
            "executor": executor,
            "units_at_end": counts,
            "driver": {
                "probes": "bind()/run_postjob() in process, one job at a time",
                "bulk": "batches of one job per chain through Scheduler.next_jobs/job_finished, "
                "Ledger.bind_job/record_outcome (one transaction per job, synchronous=NORMAL), write_job "
                "for every job, one session (state loaded and saved once)",
                "samples": "per_job_sample_*: 'script' = real python -I -m autosplit.pipeline.bind/postjob "
                "processes (interpreter start and imports included), 'in_process' = bind()/run_postjob()",
                "bulk_stats": {k: round(v, 2) if isinstance(v, float) else v for k, v in stats.items()},
                "left_running": running["jobs"],
            },
            "targets": TARGETS,
            "load_average_at_end": os.getloadavg(),
            "note": "wall times grow with the machine's load (load_average_*: about 2 is this benchmark "
            "alone on 2 cores); *_cpu_seconds are this work's own CPU",
        }
        out["targets_met"] = {
            key: (out[key] is not None and out[key] < limit) for key, limit in TARGETS.items()
        }
        if args.no_write:
            print(json.dumps(out, indent=2))
        else:
            write_results("scale", out)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def ledger_ids(task, node: str) -> list[int]:
    with task.ledger() as ledger:
        return ledger.job_unit_ids(node)


if __name__ == "__main__":
    main()
