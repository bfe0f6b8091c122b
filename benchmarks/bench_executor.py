"""Benchmark: scheduling overhead of the local DAGMan-compatible executor.

Two layered DAGs (each node depends on two nodes of the layer before), run with ``max_jobs`` = number of
cores so every core has a job whenever one is ready:

* ``trivial``: 10,000 nodes (100 layers of 100) whose job is ``/bin/true`` -- almost pure overhead;
* ``busy``: 400 nodes (4 layers of 100) whose job burns about 50 ms of CPU in ``awk``.

Figures: wall time; ``overhead_per_node_ms`` = (wall x slots - time jobs were running) / nodes, i.e. slot
time per node not spent running a job (process start, reaping, bookkeeping, logs, journal); executor CPU
per node; ``slot_occupancy`` = job running time / (wall x slots); ``cpu_utilisation`` = CPU used by jobs
and executor / (wall x cores). Target (issue 5): overhead < 20 ms per node with all cores busy.

Run: .venv/bin/python benchmarks/bench_executor.py   (writes benchmarks/results/executor.json)
"""

from __future__ import annotations

import os
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_bytes, write_results  # noqa: E402

from autosplit.backends.local import run_dag  # noqa: E402

TARGET_MS = 20.0
BURN = "BEGIN{for(i=0;i<2000000;i++)s+=i}"  # about 50 ms of CPU in mawk


def layered_dag(directory: Path, layers: int, width: int, submit: str) -> Path:
    (directory / "job.sub").write_text(submit)
    lines = [f"JOB n{layer}_{i} job.sub" for layer in range(layers) for i in range(width)]
    for layer in range(1, layers):
        for i in range(width):
            lines.append(f"PARENT n{layer - 1}_{i} n{layer - 1}_{(i + 1) % width} CHILD n{layer}_{i}")
    dag = directory / "bench.dag"
    dag.write_text("\n".join(lines) + "\n")
    return dag


def measure(name: str, layers: int, width: int, submit: str) -> dict:
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix=f"bench-executor-{name}-") as tmp:
        dag = layered_dag(Path(tmp), layers, width, submit)
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = run_dag(dag, max_jobs=cores)
        wall = time.perf_counter() - start
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    nodes = layers * width
    assert result.exit_code == 0 and result.counts() == {"DONE": nodes}, result.counts()
    executor_cpu = (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime)
    jobs_cpu = (kids1.ru_utime - kids0.ru_utime) + (kids1.ru_stime - kids0.ru_stime)
    job_seconds = float(result.stats["job_seconds"])
    overhead_ms = (wall * cores - job_seconds) / nodes * 1000
    return {
        "nodes": nodes,
        "layers": layers,
        "slots": cores,
        "wall_s": round(wall, 3),
        "nodes_per_s": round(nodes / wall, 1),
        "overhead_per_node_ms": round(overhead_ms, 3),
        "executor_cpu_per_node_ms": round(executor_cpu / nodes * 1000, 3),
        "mean_job_s": round(job_seconds / nodes, 4),
        "slot_occupancy": round(job_seconds / (wall * cores), 3),
        "cpu_utilisation": round((executor_cpu + jobs_cpu) / (wall * cores), 3),
        "scheduler_cycles": int(result.stats["cycles"]),
        "target_overhead_ms": TARGET_MS,
        "target_met": overhead_ms < TARGET_MS,
    }


def main() -> None:
    results = {
        "trivial": measure("trivial", 100, 100, "executable = /bin/true\nqueue\n"),
        "busy": measure("busy", 4, 100, f"executable = /usr/bin/awk\narguments = \"'{BURN}'\"\nqueue\n"),
        "peak_rss_bytes": peak_rss_bytes(),
    }
    for scenario in ("trivial", "busy"):
        print(scenario)
        for key, value in results[scenario].items():
            print(f"  {key:>26}: {value}")
    write_results("executor", results)


if __name__ == "__main__":
    main()
