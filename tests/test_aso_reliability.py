"""Reliability: agents SIGKILLed at random moments, over and over, never lose, duplicate or corrupt a file.

The 50-kill loop forks agent processes from the test process (an agent starts in milliseconds that way;
the command-line entry point takes ~0.5 s to import, too slow for 50 rounds) and kills them with SIGKILL
at random moments: mostly 0-150 ms after the agent starts copying, sometimes 0-150 ms after the fork. Each copy is rate-limited so the work spans the whole loop
and every kill lands on an agent with work in hand. A second test does the same with the real
``python -m autosplit.aso run`` process a few times, and stops one with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import time
import zlib

import numpy as np

from autosplit.aso import Agent, PosixTransport, TransferDB, run_agent, spawn_agent, stop_agent
from autosplit.aso.transports import temp_name
from tests.test_aso_helpers import assert_delivered, fast_config, make_task

KILLS = 50
LEASE_S = 0.3
RATE = 1_000_000  # bytes/s per copy


def _fork_agent(db_path, config) -> int:
    pid = os.fork()
    if pid == 0:  # child: a fresh agent with its own database connections
        code = 0
        try:
            Agent(db_path, config, transports={"": PosixTransport(fsync=False, max_rate=RATE)}).run("stopped")
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def _finals_are_whole(task) -> int:
    """Every file under a final name holds exactly the expected bytes; returns how many exist."""
    present = 0
    for dest_path, content in task.expected.items():
        path = task.dest(dest_path)
        if path.exists():
            assert zlib.adler32(path.read_bytes()) == zlib.adler32(content), f"corrupt final file {dest_path}"
            present += 1
    return present


def test_aso_random_sigkills_never_lose_duplicate_or_corrupt_files(tmp_path) -> None:
    task = make_task(
        tmp_path, jobs=30, files_per_job=10, sizes=(2_000, 60_000), seed=7, extra_sizes=(1_000_000,) * 3
    )
    n_files = len(task.expected)
    config = fast_config(lease_seconds=LEASE_S, prefetch=2)
    rng = np.random.default_rng(2024)
    busy_kills = 0
    with TransferDB(task.db_path) as db:
        for _ in range(KILLS):
            db.close()  # no SQLite connection open across fork()
            pid = _fork_agent(task.db_path, config)
            if rng.random() < 0.8:  # mostly while it copies; sometimes while it starts up
                _wait_until_holding(db, pid, timeout=5.0, missing_ok=True)
            time.sleep(float(rng.uniform(0.0, 0.15)))
            held = [
                r
                for r in db.rows()
                if r.state in ("ACQUIRED", "SUBMITTED") and f":{pid}:" in (r.lease_owner or "")
            ]
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            busy_kills += bool(held)
            _finals_are_whole(task)  # never a partial or wrong file under a final name
        done_before_drain = len(db.rows(state="DONE"))
        interrupted = sum(1 for r in db.rows() if r.acquisitions > 1)
    print(
        f"\n{KILLS} SIGKILLs, {busy_kills} while holding rows; {done_before_drain}/{n_files} done before the drain"
    )
    assert busy_kills >= KILLS * 0.8  # the kills really hit working agents
    assert 0 < done_before_drain < n_files  # and there was work left at the end of the loop
    assert interrupted >= 10
    stats = run_agent(task.db_path, config, until="final", timeout=60)
    assert stats.failed == 0
    assert_delivered(task)  # every file once at its destination, right checksum, no temp files, all DONE
    with TransferDB(task.db_path) as db:
        rows = db.rows()
    assert len(rows) == n_files and not [r for r in rows if r.state in ("ACQUIRED", "SUBMITTED")]
    assert all(r.retry_count == 0 for r in rows)  # dying agents are not failures


def _wait_until_holding(db, pid: int, timeout: float = 15.0, missing_ok: bool = False) -> None:
    """Wait until agent ``pid`` copies something (a row SUBMITTED under its lease)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(f":{pid}:" in (r.lease_owner or "") for r in db.rows(state="SUBMITTED")):
            return
        if db.count_active() == 0:
            break
        time.sleep(0.005)
    if not missing_ok:
        raise AssertionError(f"agent {pid} never started copying")


def test_aso_cli_agent_process_survives_sigkill_and_stops_cleanly_on_sigterm(tmp_path) -> None:
    task = make_task(tmp_path, jobs=6, files_per_job=5, sizes=(50_000, 100_000), seed=3)
    config = fast_config(lease_seconds=LEASE_S, prefetch=2, poll_seconds=0.02)
    rng = np.random.default_rng(5)
    log = tmp_path / "agent.log"
    with TransferDB(task.db_path) as db:
        for _ in range(3):
            process = spawn_agent(task.db_path, config, max_rate=500_000, fsync=False, log_path=log)
            _wait_until_holding(db, process.pid)
            time.sleep(float(rng.uniform(0.0, 0.2)))
            process.send_signal(signal.SIGKILL)
            assert process.wait(10) == -signal.SIGKILL
            _finals_are_whole(task)
        process = spawn_agent(task.db_path, config, max_rate=500_000, fsync=False, log_path=log)
        _wait_until_holding(db, process.pid)
        copying = [r for r in db.rows(state="SUBMITTED") if f":{process.pid}:" in (r.lease_owner or "")]
        assert stop_agent(process, timeout=10) == 0  # SIGTERM: clean exit
        assert not [
            r for r in db.rows() if f":{process.pid}:" in (r.lease_owner or "")
        ]  # released, not leased
        for row in copying:
            after = db.get(row.id)
            assert after.state in ("NEW", "DONE") and after.retry_count == 0
            assert not (task.dest(row.dest_path).parent / temp_name(row.id)).exists()
    assert "stopped by SIGTERM" in log.read_text()
    run_agent(task.db_path, config, until="final", timeout=60)
    assert_delivered(task)
