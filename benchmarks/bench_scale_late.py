"""Late sample of ``bench_scale.py`` on a task it left behind (``--keep DIR``) whose units are all done.

To have work to bind at full size (about 110,000 jobs in the ledger and the scheduler's state, 1,000,000
units), ``--units`` done units are put back to pending — what ``autosplit resubmit`` does for quarantined
units: the ledger marks them quarantined, the scheduler requeues them — then jobs are bound and accounted
for through the real scripts and ``bind()``/``run_postjob()``, and a batch is left running for ``status``.
The figures are merged into ``benchmarks/results/scale.json`` (or printed with ``--no-write``).

Run: .venv/bin/python benchmarks/bench_scale_late.py DIR [--units 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np  # noqa: E402
from _common import RESULTS, write_results  # noqa: E402
from bench_scale import STATUS, TARGETS, Nodes, Units, child, drive, sample, write_status_file  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir")
    parser.add_argument("--units", type=int, default=3000)
    parser.add_argument("--chains", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    from autosplit.pipeline.scheduling import session
    from autosplit.pipeline.stages import chain_length
    from autosplit.pipeline.taskdir import TaskDir
    from autosplit.scheduler.book import QUARANTINED

    task = TaskDir(Path(args.dir) / "tasks" / "scale")
    units = Units(task)
    nodes = Nodes(args.chains, chain_length(task.dataset.n_units, args.chains))
    with task.ledger() as ledger:
        used = {r[0] for r in ledger._db.execute("SELECT node FROM jobs")}
    for chain in range(1, nodes.chains + 1):
        k = 1
        while f"c{chain}-{k}" in used:
            k += 1
        nodes.next[chain] = k
    (task.root / "dag" / "closed").unlink(missing_ok=True)

    with session(task) as s:
        rows = np.flatnonzero(s.scheduler.unit_states() == 2)[-args.units :]
        with s.ledger.transaction() as cur:
            cur.executemany(
                "UPDATE units SET state = 'quarantined', reason = 'bench: back to pending' WHERE unit_id = ?",
                ((int(r),) for r in rows),
            )
        s.scheduler._book.state[rows] = QUARANTINED
        released = s.scheduler.requeue(rows, time.time())
        s.ledger.record_changes(s.changes())
        s.save()
    print(f"released {released} units", flush=True)

    late = sample(task, units, nodes, 10, 3)
    print(f"late sample: {late}", flush=True)
    running = drive(task, units, nodes, stop_pending=10**9, leave_running=True, log=print)
    with task.ledger() as ledger:
        n_jobs = ledger._db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        n_planned = ledger._db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'planned'").fetchone()[0]
    n_status_nodes = write_status_file(task, nodes)
    status = child(STATUS, str(task.root))
    print(f"status: {status['status_seconds']:.3f} s, poll {status['poll_seconds']:.4f} s", flush=True)
    ledger_bytes = sum(p.stat().st_size for p in task.root.glob("ledger.sqlite*") if p.is_file())
    header = (task.root / "scheduler.state").stat().st_size
    state_bytes = sum(p.stat().st_size for p in (task.root / "scheduler.d").iterdir())

    out = json.loads((RESULTS / "scale.json").read_text()) if (RESULTS / "scale.json").exists() else {}
    out.pop("machine", None)
    out.update(
        {
            "jobs": int(n_jobs),
            "postjob_seconds_per_job": late["script"]["postjob_seconds"],
            "postjob_seconds_per_job_in_process": late["in_process"]["postjob_seconds"],
            "bind_seconds_per_job": late["script"]["bind_seconds"],
            "bind_seconds_per_job_in_process": late["in_process"]["bind_seconds"],
            "per_job_sample_late": late,
            "status_seconds": round(status["status_seconds"], 3),
            "status_import_seconds": round(status["import_seconds"], 3),
            "status_poll_seconds": round(status["poll_seconds"], 5),
            "status_nodes_in_status_file": n_status_nodes,
            "status_running_jobs": int(n_planned),
            "ledger_mb": round(ledger_bytes / 2**20, 1),
            "scheduler_state_mb": round(state_bytes / 2**20, 1),
            "scheduler_state_header_kb": round(header / 1024, 1),
            "late_sample_setup": f"{released} done units put back to pending (as resubmit does) to have work "
            "to bind at full size; then per_job_sample_late, then one job per chain left running for status",
            "load_average_at_end": os.getloadavg(),
        }
    )
    out["driver"] = {**out.get("driver", {}), "left_running": running["jobs"]}
    out["targets_met"] = {k: (out.get(k) is not None and out[k] < v) for k, v in TARGETS.items()}
    if args.no_write:
        print(json.dumps(out, indent=2))
    else:
        write_results("scale", out)


if __name__ == "__main__":
    main()
