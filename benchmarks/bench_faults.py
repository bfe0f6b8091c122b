"""Benchmark: the fault-injection campaign of issue 14, at scale.

Small example-like tasks (10 lumis in 3 files: probes, processing, a tail; the payload writes the units it
processed as its output) run by ``autosplit run``; into each, faults at random moments: SIGKILL of the
runner (started again by the "user"), of an executor, a wrapper, a payload or a postjob, and corrupted or
forged reports (a truncated or binary report, one naming another job's output or claiming foreign units,
a job's ``out/`` replaced by a link to another job's). Each applied fault is one *run*; the runs of a task
share its work. After each run the invariants are checked as they must hold while a task runs, and when
the task has ended, exactly (``tests/test_faults.py::check_invariants``): ``processedLumis`` +
``notFinishedLumis`` + ``quarantinedLumis`` partition the input, no unit is in two committed outputs, each
committed output's units are the ledger's done units of that job.

Figures (``benchmarks/results/faults.json``): ``runs`` (faults applied and checked), ``kills`` (processes
killed), ``units_lost`` / ``units_double`` (summed over tasks: units missing from the lumi lists or done
without a committed output / in two lists or two committed outputs), ``tasks_failed`` (tasks whose only
faults were kills and that did not end ``completed``), plus the tasks, the faults by kind and the problems.

Run: .venv/bin/python benchmarks/bench_faults.py [--runs 300] [--parallel 3] [--budget-minutes 38]
[--task-timeout 180] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).parent))
from _common import machine  # noqa: E402

from tests.test_faults import fault_run  # noqa: E402

FAULTS_PER_TASK = 6


def one_task(base: Path, seed: int, timeout: float, keep: Path | None) -> dict:
    """One task's fault runs; a task with problems is kept under ``keep`` (when given) for inspection."""
    workdir = base / f"task-{seed}"
    result: dict | None = None
    try:
        result = fault_run(workdir, seed, n_faults=FAULTS_PER_TASK, timeout=timeout)
        return result
    except Exception as exc:  # noqa: BLE001 - a harness error is reported, not hidden
        return {
            "seed": seed,
            "runs": [],
            "kills": 0,
            "state": "harness-error",
            "task_failed": False,
            "units_lost": 0,
            "units_double": 0,
            "problems": [f"harness: {type(exc).__name__}: {exc}"],
        }
    finally:
        if keep is not None and result is not None and result["problems"]:
            keep.mkdir(parents=True, exist_ok=True)
            shutil.move(str(workdir), str(keep / workdir.name))
            result["kept"] = str(keep / workdir.name)
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300, help="fault runs to reach (default 300)")
    parser.add_argument("--parallel", type=int, default=3, help="tasks at once (default 3)")
    parser.add_argument("--budget-minutes", type=float, default=38.0, help="stop starting tasks after this")
    parser.add_argument("--first-seed", type=int, default=10_000)
    parser.add_argument(
        "--task-timeout", type=float, default=180.0, help="seconds a task may take before it counts as hung"
    )
    parser.add_argument("--keep", help="move the directories of tasks with problems here")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "faults.json"))
    args = parser.parse_args()
    started = time.monotonic()
    budget = args.budget_minutes * 60
    base = Path(tempfile.mkdtemp(prefix="autosplit-faults-"))
    results: list[dict] = []
    seed = args.first_seed
    try:
        with ThreadPoolExecutor(max_workers=args.parallel) as pool:
            running = set()
            while True:
                runs = sum(len(r["runs"]) for r in results)
                expected = runs + FAULTS_PER_TASK * len(running)
                elapsed = time.monotonic() - started
                while len(running) < args.parallel and expected < args.runs and elapsed < budget:
                    keep = Path(args.keep) if args.keep else None
                    running.add(pool.submit(one_task, base, seed, args.task_timeout, keep))
                    seed += 1
                    expected += FAULTS_PER_TASK
                if not running:
                    break
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    result = future.result()
                    results.append(result)
                    print(
                        f"task {result['seed']}: {result['state']}, {len(result['runs'])} run(s) "
                        f"{[r['fault'] for r in result['runs']]}, {result['kills']} kill(s), "
                        f"lost {result['units_lost']}, double {result['units_double']}, "
                        f"{result.get('seconds')} s"
                        + (f" PROBLEMS {result['problems']}" if result["problems"] else ""),
                        flush=True,
                    )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    by_kind: dict[str, int] = {}
    for result in results:
        for run in result["runs"]:
            by_kind[run["fault"]] = by_kind.get(run["fault"], 0) + 1
    summary = {
        "runs": sum(len(r["runs"]) for r in results),
        "kills": sum(r["kills"] for r in results),
        "units_lost": sum(r["units_lost"] for r in results),
        "units_double": sum(r["units_double"] for r in results),
        "tasks_failed": sum(bool(r["task_failed"]) for r in results),
        "tasks": len(results),
        "tasks_by_state": {
            s: sum(r["state"] == s for r in results) for s in sorted({r["state"] for r in results})
        },
        "faults_by_kind": dict(sorted(by_kind.items())),
        "runs_with_problems": sum(bool(r["problems"]) for r in results),
        "problems": [{"seed": r["seed"], "problems": r["problems"][:5]} for r in results if r["problems"]][
            :20
        ],
        "wall_seconds": round(time.monotonic() - started, 1),
        "parallel_tasks": args.parallel,
        "task_timeout_seconds": args.task_timeout,
        "load_average_at_end": os.getloadavg(),
        "machine": machine(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(
        json.dumps({k: summary[k] for k in ("runs", "kills", "units_lost", "units_double", "tasks_failed")})
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
