"""Benchmark: asynchronous stage-out of 10,000 small files and a few large ones on one machine.

Setup: 100 jobs x 100 files of 1-19 kB (uniform, mean ~10 kB) staged into a site temp area with
``stage_to_temp`` and registered with ``register_outputs`` (one call per job), plus 4 files of 256 MiB.
Source, destination and database share one local disk. The agent runs with its defaults (2 copy
threads, prefetch 8, fsync on) until idle; the small-file run is repeated with ``--no-fsync`` to show
what flushing costs. Database overhead per transfer is measured twice: inside the agent (wall time in
database calls, summed over threads, divided by transfers) and alone (the same transaction sequence on a
fresh 10,000-row database without any file I/O: acquire 10 rows, per row SUBMITTED and a lease check (a
read), DONE recorded for the 10 in one transaction). A plain single-threaded copy of the same files
(temporary name, rename, delete the staged copy; no checksum, no database) is the baseline, and the
small-file runs are repeated on tmpfs (/dev/shm) to separate the software cost from the disk's.

Run: .venv/bin/python benchmarks/bench_aso.py   (writes benchmarks/results/aso.json)
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import peak_rss_bytes, write_results  # noqa: E402

from autosplit.aso import (  # noqa: E402
    Agent,
    AgentConfig,
    PosixTransport,
    StagedFile,
    TransferDB,
    register_outputs,
    stage_to_temp,
    status_summary,
)

N_JOBS = 100
FILES_PER_JOB = 100
SMALL_BYTES = (1_000, 19_000)
LARGE_FILES = 4
LARGE_BYTES = 256 * 2**20


def _write_sandbox(root: Path, rng: np.random.Generator) -> tuple[dict[int, dict[str, str]], int]:
    """Small output files per job (local path -> destination name) and their total bytes."""
    outputs: dict[int, dict[str, str]] = {}
    total = 0
    for job in range(N_JOBS):
        job_dir = root / f"job{job}"
        job_dir.mkdir(parents=True)
        outputs[job] = {}
        for index, size in enumerate(rng.integers(SMALL_BYTES[0], SMALL_BYTES[1] + 1, FILES_PER_JOB)):
            local = job_dir / f"out_{index}.root"
            local.write_bytes(rng.bytes(int(size)))
            outputs[job][str(local)] = f"bench/job{job}/out_{index}.root"
            total += int(size)
    return outputs, total


def _stage_and_register(work: Path, outputs: dict[int, dict[str, str]], tag: str) -> dict[str, float]:
    temp, dest, db_path = work / f"temp-{tag}", work / f"dest-{tag}", work / f"aso-{tag}.sqlite"
    t0 = time.perf_counter()
    staged = {
        job: stage_to_temp(files, temp, task="bench", job_id=f"job-{job}", attempt=0, fsync=False)
        for job, files in outputs.items()
    }
    t1 = time.perf_counter()
    for job, files in staged.items():
        register_outputs(db_path, "bench", f"job-{job}", 0, files, temp_root=temp, destination_root=dest)
    t2 = time.perf_counter()
    again = time.perf_counter()
    register_outputs(db_path, "bench", "job-0", 0, staged[0], temp_root=temp, destination_root=dest)
    again = time.perf_counter() - again
    n = sum(len(f) for f in staged.values())
    return {
        "files": n,
        "stage_s": t1 - t0,
        "stage_files_per_s": n / (t1 - t0),
        "register_s": t2 - t1,
        "register_us_per_file": (t2 - t1) / n * 1e6,
        "reregister_job_ms": again * 1e3,
        "db_path": str(db_path),
        "dest": str(dest),
        "temp": str(temp),
    }


def _run_agent(db_path: str, fsync: bool) -> dict[str, float]:
    agent = Agent(db_path, AgentConfig(), transports={"": PosixTransport(fsync=fsync)})
    stats = agent.run("idle")
    agent.close()
    assert stats.failed == 0 and stats.errors == 0, stats
    return {
        "transfers": stats.done,
        "bytes": stats.bytes_done,
        "wall_s": stats.wall_seconds,
        "files_per_s": stats.done / stats.wall_seconds,
        "mb_per_s": stats.bytes_done / stats.wall_seconds / 1e6,
        "db_seconds": stats.db_seconds,
        "db_calls": stats.db_calls,
        "db_us_per_transfer": stats.db_seconds / max(stats.done, 1) * 1e6,
        "db_share_of_thread_time": stats.db_seconds / (stats.wall_seconds * AgentConfig().workers),
        "acquire_calls": stats.acquire_calls,
        "mean_transfer_ms": stats.copy_seconds / max(stats.done, 1) * 1e3,
    }


def _db_only(work: Path, n: int = 10_000) -> dict[str, float]:
    """The agent's per-transfer transaction sequence alone, on a fresh database of ``n`` rows."""
    db_path = work / "dbonly.sqlite"
    files = [StagedFile(f"bench/j/{i}", f"d/{i}", 1000, "00000001") for i in range(n)]
    register_outputs(db_path, "bench", "j", 0, files, temp_root=work / "t", destination_root=work / "d")
    db = TransferDB(db_path)
    start = time.perf_counter()
    done = 0
    while rows := db.acquire("bench", 10, 60.0):
        for row in rows:
            db.mark_submitted(row.id, row.lease_token, 60.0)
            db.holds(row.id, row.lease_token)
        done += sum(db.mark_done_many([(r.id, r.lease_token, 0.001, True) for r in rows]))
    seconds = time.perf_counter() - start
    status_start = time.perf_counter()
    status_summary(db)
    status_s = time.perf_counter() - status_start
    db.close()
    return {
        "transfers": done,
        "seconds": seconds,
        "us_per_transfer": seconds / done * 1e6,
        "write_transactions_per_transfer": 1 + 2 / 10,
        "status_summary_ms_10k_rows": status_s * 1e3,
    }


def _baseline_copy(work: Path, outputs: dict[int, dict[str, str]], tag: str) -> dict[str, float]:
    """The same file operations without the agent: stage, then per file create a temporary copy, rename it
    into place and delete the staged copy (one thread, no checksum, no database, no path checks)."""
    temp, dest = work / f"temp-baseline-{tag}", work / f"dest-baseline-{tag}"
    staged = [
        f
        for job, files in outputs.items()
        for f in stage_to_temp(files, temp, task="bench", job_id=f"job-{job}", attempt=0, fsync=False)
    ]
    start = time.perf_counter()
    for f in staged:
        target = dest / f.dest_path
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        shutil.copyfile(temp / f.source_path, partial)
        os.rename(partial, target)
        os.unlink(temp / f.source_path)
    seconds = time.perf_counter() - start
    return {"files": len(staged), "seconds": seconds, "files_per_s": len(staged) / seconds}


def _tree_bytes(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(root) for f in names)


def _small_files(base: str | None, runs: tuple[tuple[str, bool], ...]) -> dict[str, dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="bench-aso-", dir=base))
    try:
        outputs, total = _write_sandbox(work / "sandbox", np.random.default_rng(11))
        out: dict[str, dict[str, float]] = {}
        for tag, fsync in runs:
            setup = _stage_and_register(work, outputs, tag)
            # the disk's speed drifts with other load on the machine: the baseline runs right before
            baseline = _baseline_copy(work, outputs, tag)
            run = _run_agent(setup["db_path"], fsync)
            assert _tree_bytes(setup["dest"]) == total and _tree_bytes(setup["temp"]) == 0
            status_start = time.perf_counter()
            status_summary(setup["db_path"])
            run["status_summary_ms_10k_rows"] = (time.perf_counter() - status_start) * 1e3
            run["baseline_plain_copy_files_per_s"] = baseline["files_per_s"]
            run["vs_baseline"] = run["files_per_s"] / baseline["files_per_s"]
            out[tag] = {**{k: v for k, v in setup.items() if k not in ("db_path", "dest", "temp")}, **run}
        out["bytes_total"] = total
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _large_files(rng: np.random.Generator) -> tuple[dict[str, float], dict[str, float]]:
    work = Path(tempfile.mkdtemp(prefix="bench-aso-large-"))
    try:
        large_dir = work / "large"
        large_dir.mkdir()
        chunk = rng.bytes(16 * 2**20)
        large_outputs = {}
        for index in range(LARGE_FILES):
            path = large_dir / f"big_{index}.root"
            with open(path, "wb") as handle:
                for block in range(LARGE_BYTES // len(chunk)):
                    handle.write(bytes([index, block % 256]) + chunk[2:])
            large_outputs[str(path)] = f"bench/large/big_{index}.root"
        t0 = time.perf_counter()
        staged = stage_to_temp(large_outputs, work / "temp", task="bench", job_id="large", attempt=0)
        stage_s = time.perf_counter() - t0
        register_outputs(
            work / "aso.sqlite",
            "bench",
            "large",
            0,
            staged,
            temp_root=work / "temp",
            destination_root=work / "dest",
        )
        large = _run_agent(str(work / "aso.sqlite"), True)
        large["stage_mb_per_s"] = LARGE_FILES * LARGE_BYTES / stage_s / 1e6
        assert _tree_bytes(str(work / "dest")) == LARGE_FILES * LARGE_BYTES
        return large, _db_only(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    load_before = os.getloadavg()
    small = {"disk": _small_files(None, (("fsync", True), ("nofsync", False)))}
    if Path("/dev/shm").is_dir():
        small["tmpfs"] = _small_files("/dev/shm", (("fsync", True),))
    large, db_only = _large_files(np.random.default_rng(12))
    results = {
        "setup": {
            "small_files": N_JOBS * FILES_PER_JOB,
            "small_size_range_bytes": list(SMALL_BYTES),
            "large_files": LARGE_FILES,
            "large_file_bytes": LARGE_BYTES,
            "agent": "defaults: 2 copy threads, prefetch 8, adler32; source, destination and database on one filesystem",
            "storage": "disk = the machine's ext4 volume (/tmp); tmpfs = /dev/shm (no disk: the software cost alone)",
            "load_average_1_5_15_min": {"start": load_before, "end": os.getloadavg()},
        },
        "small_files": small,
        "large_files": large,
        "db_only": db_only,
        "peak_rss_bytes": peak_rss_bytes(),
    }
    for storage, runs in small.items():
        for tag, values in runs.items():
            if tag == "bytes_total":
                continue
            print(
                f"{storage + ' ' + tag:>14}: agent {values['files_per_s']:6.0f} files/s "
                f"({values['mb_per_s']:.1f} MB/s) vs plain copy {values['baseline_plain_copy_files_per_s']:6.0f} "
                f"files/s; db {values['db_us_per_transfer']:.0f} us/transfer "
                f"({values['db_share_of_thread_time']:.0%} of thread time); "
                f"register {values['register_us_per_file']:.0f} us/file"
            )
    print(
        f"{'large (fsync)':>14}: {large['mb_per_s']:8.1f} MB/s over {LARGE_FILES} x {LARGE_BYTES >> 20} MiB"
    )
    print(f"{'db only':>14}: {db_only['us_per_transfer']:8.0f} us/transfer")
    write_results("aso", results)


if __name__ == "__main__":
    main()
