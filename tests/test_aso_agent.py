"""The transfer agent end to end: copies, verification, failure classification, retries, recovery from an
agent that died at each step, kill, clean stop, flow control."""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
import zlib

import pytest

from autosplit.aso import (
    Agent,
    DestinationLimit,
    FlowLimits,
    Location,
    OutcomeKind,
    PosixTransport,
    RetryPolicy,
    TransferError,
    job_transfer_outcome,
    kill_job_transfers,
    run_agent,
    status_summary,
    task_progress,
)
from autosplit.aso.transports import classify_message, classify_os_error, temp_name
from tests.test_aso_helpers import assert_delivered, fast_config, files_under, make_task


def test_aso_agent_delivers_verified_files_and_removes_temp_copies(tmp_path) -> None:
    task = make_task(tmp_path, jobs=6, files_per_job=7, dest_sites=("A", "B"), extra_sizes=(3_000_000,))
    assert job_transfer_outcome(task.db_path, "t1", "job-0", 0).kind == OutcomeKind.IN_FLIGHT
    stats = run_agent(task.db_path, fast_config(), until="idle")
    assert (
        stats.done == 43 and stats.failed == 0 and stats.bytes_done == sum(map(len, task.expected.values()))
    )
    assert 0 < stats.db_seconds < stats.wall_seconds * 2  # two workers
    assert_delivered(task)
    for job in range(6):
        outcome = job_transfer_outcome(task.db_path, "t1", f"job-{job}", 0)
        assert outcome.kind == OutcomeKind.DONE and outcome.exit_code == 0
    summary = status_summary(task.db_path)
    assert summary.counts["DONE"] == 43 and summary.bytes_pending == 0 and summary.oldest_pending is None
    assert summary.throughput_files_per_s == pytest.approx(43 / 300)
    # a second run finds nothing to do and changes nothing
    assert run_agent(task.db_path, fast_config(), until="idle").done == 0


def test_aso_sha256_and_empty_files(tmp_path) -> None:
    task = make_task(
        tmp_path, jobs=2, files_per_job=3, sizes=(0, 2000), checksum_algo="sha256", extra_sizes=(0,)
    )
    assert any(len(c) == 0 for c in task.expected.values())
    with task.db() as db:
        assert {len(r.checksum) for r in db.rows()} == {64}
    run_agent(task.db_path, fast_config(), until="idle")
    assert_delivered(task)


def test_aso_corrupted_temp_copy_is_caught_and_fails_permanently_with_the_reason(tmp_path) -> None:
    task = make_task(tmp_path, jobs=2, files_per_job=3)
    victim = task.staged[("job-1", 0)][1]
    source = task.source(victim)
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    source.write_bytes(bytes(data))
    stats = run_agent(task.db_path, fast_config(retry=RetryPolicy(2, 0.0)), until="final", timeout=30)
    assert stats.failed == 1 and stats.retried == 2 and stats.done == 5
    outcome = job_transfer_outcome(task.db_path, "t1", "job-1", 0)
    assert outcome.kind == OutcomeKind.PERMANENT_FAILURE and outcome.exit_code == 2
    assert "checksum mismatch" in outcome.reason and victim.checksum in outcome.reason
    assert f"{zlib.adler32(bytes(data)):08x}" in outcome.reason
    with task.db() as db:
        (row,) = db.rows(state="FAILED")
    assert row.failure_kind == "permanent" and row.retry_count == 3
    assert row.failure_reason.startswith("checksum-mismatch:") and "(after 3 attempts)" in row.failure_reason
    assert not task.dest(victim.dest_path).exists()  # never renamed into place
    assert [p.name for p in files_under(task.dest_root) if p.name.endswith(".aso-part")] == []
    assert source.exists()  # kept for diagnosis until killed
    assert job_transfer_outcome(task.db_path, "t1", "job-0", 0).kind == OutcomeKind.DONE
    summary = status_summary(task.db_path)
    assert summary.failure_kinds == [
        {"state": "FAILED", "kind": "checksum-mismatch", "count": 1, "example": row.failure_reason}
    ]
    assert summary.temp_sites[0]["files"] == 1 and summary.bytes_failed == victim.size
    progress = task_progress(task.db_path, "t1")
    assert (progress.files, progress.done, progress.failed, progress.in_flight) == (6, 5, 1, 0)
    assert progress.line().startswith("stage-out: 5/6 files done (") and progress.line().endswith(
        ", 1 failed"
    )
    assert task_progress(task.db_path, "other").files == 0


def test_aso_truncated_and_missing_sources(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=3, sizes=(1000, 2000))
    truncated, missing, _ = task.staged[("job-0", 0)]
    task.source(truncated).write_bytes(task.source(truncated).read_bytes()[:-10])
    task.source(missing).unlink()
    run_agent(task.db_path, fast_config(retry=RetryPolicy(1, 0.0)), until="final", timeout=30)
    with task.db() as db:
        rows = {r.dest_path: r for r in db.rows()}
    assert rows[truncated.dest_path].failure_reason.startswith("size-mismatch:")
    assert (
        rows[truncated.dest_path].failure_kind == "permanent" and rows[truncated.dest_path].retry_count == 2
    )
    gone = rows[missing.dest_path]
    assert gone.failure_reason.startswith("missing-source:") and gone.failure_kind == "permanent"
    assert gone.retry_count == 1 and gone.source_present == 0  # permanent at once, no retries


class FlakyTransport(PosixTransport):
    """POSIX copies that fail ``failures`` times first (per transfer), like a flaky link."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        super().__init__(fsync=False)
        self.failures = failures
        self.error = error
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def copy(self, source, dest, transfer_id, algorithm, *, cancel=None):
        with self.lock:
            self.calls[transfer_id] = self.calls.get(transfer_id, 0) + 1
            n = self.calls[transfer_id]
        if n <= self.failures:
            raise self.error or TransferError(f"{dest}: connection reset by peer", kind="connection")
        return super().copy(source, dest, transfer_id, algorithm, cancel=cancel)


def test_aso_recoverable_failures_are_retried_with_backoff(tmp_path) -> None:
    task = make_task(tmp_path, jobs=2, files_per_job=2)
    flaky = FlakyTransport(failures=2)
    config = fast_config(retry=RetryPolicy(max_retries=3, backoff_base=0.05, backoff_max=0.1))
    started = time.monotonic()
    stats = Agent(task.db_path, config, transports={"": flaky}).run("final", timeout=30)
    assert stats.done == 4 and stats.retried == 8 and stats.failed == 0
    assert time.monotonic() - started >= 0.05 + 0.1  # waited for the backoffs
    assert set(flaky.calls.values()) == {3}
    with task.db() as db:
        assert {r.retry_count for r in db.rows()} == {2}
    assert_delivered(task)


def test_aso_recoverable_failure_that_persists_fails_the_job_recoverably(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=1)
    stats = Agent(task.db_path, fast_config(), transports={"": FlakyTransport(failures=99)}).run(
        "final", timeout=30
    )
    assert stats.failed == 1
    outcome = job_transfer_outcome(task.db_path, "t1", "job-0", 0)
    assert outcome.kind == OutcomeKind.RECOVERABLE_FAILURE and outcome.exit_code == 1
    assert "connection: " in outcome.reason and "after 3 attempts" in outcome.reason


@pytest.mark.parametrize(
    ("error", "kind", "permanent"),
    [
        (PermissionError(errno.EACCES, "Permission denied"), "permission", True),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "quota", True),
        (RuntimeError("gfal-copy: HTTP 507 Insufficient Storage"), "quota", True),
        (RuntimeError("xrdcp: [ERROR] Operation expired: timed out"), "timeout", False),
    ],
)
def test_aso_plain_transport_exceptions_are_classified(tmp_path, error, kind, permanent) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=1)
    Agent(task.db_path, fast_config(), transports={"": FlakyTransport(99, error)}).run("final", timeout=30)
    with task.db() as db:
        (row,) = db.rows()
    assert row.state == "FAILED" and row.failure_reason.startswith(f"{kind}: ")
    assert row.failure_kind == ("permanent" if permanent else "recoverable")
    assert row.retry_count == (1 if permanent else 3)


def test_aso_os_error_classification() -> None:
    cases = {
        (errno.ENOENT, True): ("missing-source", True),
        (errno.ENOENT, False): ("io", False),
        (errno.EACCES, False): ("permission", True),
        (errno.EROFS, False): ("permission", True),
        (errno.EDQUOT, False): ("quota", True),
        (errno.ENOSPC, False): ("no-space", False),
        (errno.ELOOP, True): ("unsafe-path", True),
        (errno.EIO, False): ("io", False),
    }
    for (code, source_side), expected in cases.items():
        err = classify_os_error(OSError(code, os.strerror(code)), "x", source_side=source_side)
        assert (err.kind, err.permanent) == expected, code
    assert classify_message("Connection refused") == ("connection", False)
    assert classify_message("something odd") == ("io", False)


# -- an agent that died at every step leaves something the next agent finishes -------------------------


def _hold(task, lease: float = 0.05):
    """Take every row as an agent that then dies (nobody renews the leases)."""
    with task.db() as db:
        rows = db.acquire("dead-agent", 100, lease)
        for r in rows:
            db.mark_submitted(r.id, r.lease_token, lease)
    time.sleep(lease + 0.02)
    return rows


@pytest.mark.parametrize("step", ["partial-temp", "renamed", "source-removed"])
def test_aso_next_agent_finishes_what_a_dead_agent_left(tmp_path, step) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=4, sizes=(5000, 9000))
    rows = _hold(task)
    for r in rows:
        final = task.dest_root / r.dest_path
        final.parent.mkdir(parents=True, exist_ok=True)
        content = (task.temp_root / r.source_path).read_bytes()
        if step == "partial-temp":
            (final.parent / temp_name(r.id)).write_bytes(content[: len(content) // 3] + b"garbage")
        else:
            final.write_bytes(content)
            if step == "source-removed":
                (task.temp_root / r.source_path).unlink()
    stats = run_agent(task.db_path, fast_config(), until="idle")
    assert stats.done == 4 and stats.failed == 0
    assert stats.already_there == (0 if step == "partial-temp" else 4)
    assert_delivered(task)
    with task.db() as db:
        assert {r.acquisitions for r in db.rows()} == {2}


def test_aso_dead_agents_partial_copy_is_removed_even_when_the_row_fails(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=1)
    (row,) = _hold(task)
    partial = task.dest_root / os.path.dirname(row.dest_path) / temp_name(row.id)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"half")
    (task.temp_root / row.source_path).unlink()
    run_agent(task.db_path, fast_config(), until="idle")
    assert not partial.exists()
    with task.db() as db:
        assert db.get(row.id).failure_reason.startswith("missing-source")


def test_aso_a_live_copy_is_never_overwritten_by_an_agent_that_reclaimed_its_row(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=1)
    (row,) = _hold(task)
    partial = task.dest_root / os.path.dirname(row.dest_path) / temp_name(row.id)
    partial.parent.mkdir(parents=True)
    partial.write_bytes(b"slow agent still writing")
    with open(partial, "rb+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # a slow agent that lost its lease but still copies
        stats = run_agent(task.db_path, fast_config(lease_seconds=0.3), until="idle")
        assert stats.released == 1 and stats.done == 0
        assert partial.read_bytes() == b"slow agent still writing"
    with task.db() as db:
        released = db.get(row.id)
    assert released.state == "NEW" and released.retry_count == 0 and released.next_attempt_at > time.time()
    time.sleep(max(0.0, released.next_attempt_at - time.time()) + 0.01)
    run_agent(task.db_path, fast_config(), until="idle")
    assert_delivered(task)


class HookTransport(PosixTransport):
    """Runs ``hook(transfer_id)`` after the copy is written, before the agent verifies and renames it."""

    def __init__(self, hook, **kw) -> None:
        super().__init__(fsync=False, **kw)
        self.hook = hook

    def copy(self, source, dest, transfer_id, algorithm, *, cancel=None):
        part = super().copy(source, dest, transfer_id, algorithm, cancel=cancel)
        self.hook(transfer_id)
        return part


def test_aso_kill_during_copy_drops_it_and_removes_the_temp_copies(tmp_path) -> None:
    task = make_task(tmp_path, jobs=2, files_per_job=2)
    db = task.db()

    def kill_job1_while_copying(transfer_id: str) -> None:
        if db.get(transfer_id).job_id == "job-1":
            kill_job_transfers(db, "t1", "job-1", reason="user kill")

    kill = HookTransport(kill_job1_while_copying)
    stats = Agent(task.db_path, fast_config(workers=1), transports={"": kill}).run("idle")
    db.close()
    # job-1: the copy in progress is dropped before its rename; the other one, if already taken, never starts
    assert stats.done == 2 and stats.lost in (1, 2)
    outcome = job_transfer_outcome(task.db_path, "t1", "job-1", 0)
    assert outcome.kind == OutcomeKind.PERMANENT_FAILURE and "user kill" in outcome.reason
    for staged in task.staged[("job-1", 0)]:
        assert not task.dest(staged.dest_path).exists()
        assert not task.source(staged).exists()  # housekeeping freed the site's temp space
    assert [p for p in files_under(task.dest_root) if p.name.endswith(".aso-part")] == []
    with task.db() as db:
        assert {r.source_present for r in db.rows(task="t1", job_id="job-1")} == {0}


def test_aso_stop_request_releases_rows_and_leaves_no_temp_files(tmp_path) -> None:
    task = make_task(tmp_path, jobs=2, files_per_job=4, sizes=(200_000, 200_000))
    slow = PosixTransport(fsync=False, max_rate=400_000)  # 0.5 s per file
    agent = Agent(task.db_path, fast_config(lease_seconds=30.0), transports={"": slow})
    threading.Timer(0.3, agent.request_stop).start()
    started = time.monotonic()
    stats = agent.run("stopped")
    assert time.monotonic() - started < 1.0  # copies in progress were abandoned, not finished
    assert stats.stopped_by == "request" and stats.released >= 2
    with task.db() as db:
        states = [r.state for r in db.rows()]
        assert not {"ACQUIRED", "SUBMITTED"} & set(states)
        assert all(r.lease_owner is None and r.retry_count == 0 for r in db.rows())
    assert [p for p in files_under(task.dest_root) if p.name.endswith(".aso-part")] == []
    run_agent(task.db_path, fast_config(), until="idle")
    assert_delivered(task)


class StuckRemoval(PosixTransport):
    """The site's temp area refuses deletions for a while (e.g. a storage hiccup)."""

    def __init__(self) -> None:
        super().__init__(fsync=False)
        self.refuse = True

    def remove(self, location):
        if self.refuse:
            raise TransferError(f"{location}: Input/output error", kind="io")
        return super().remove(location)


def test_aso_a_temp_copy_that_cannot_be_removed_does_not_fail_the_delivery(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=3)
    stuck = StuckRemoval()
    stats = Agent(task.db_path, fast_config(), transports={"": stuck}).run("idle")
    assert stats.done == 3 and stats.failed == 0
    assert job_transfer_outcome(task.db_path, "t1", "job-0", 0).exit_code == 0
    assert len(files_under(task.temp_root)) == 3  # still there, and still counted against the site budget
    assert status_summary(task.db_path).temp_sites[0]["files"] == 3
    stuck.refuse = False
    stats = Agent(task.db_path, fast_config(), transports={"": stuck}).run("idle")  # housekeeping
    assert stats.cleaned == 3
    assert_delivered(task)
    assert status_summary(task.db_path).temp_sites == []


def test_aso_stop_file_stops_a_looping_agent(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=2)
    stop = tmp_path / "stop"
    threading.Timer(0.3, stop.touch).start()
    stats = run_agent(task.db_path, fast_config(), until="stopped", stop_file=stop, timeout=20)
    assert stats.stopped_by.startswith("stop file") and stats.done == 2


class ConcurrencyProbe(PosixTransport):
    """Records the most copies running at once per destination site."""

    def __init__(self) -> None:
        super().__init__(fsync=False)
        self.lock = threading.Lock()
        self.now: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def copy(self, source, dest, transfer_id, algorithm, *, cancel=None):
        site = dest.path.split("/")[2][:4]  # job0 -> site A, job1 -> site B (see make_task below)
        site = "A" if site in ("job0", "job2") else "B"
        with self.lock:
            self.now[site] = self.now.get(site, 0) + 1
            self.peak[site] = max(self.peak.get(site, 0), self.now[site])
        try:
            time.sleep(0.02)
            return super().copy(source, dest, transfer_id, algorithm, cancel=cancel)
        finally:
            with self.lock:
                self.now[site] -= 1


def test_aso_agent_keeps_each_destination_within_its_limit(tmp_path) -> None:
    task = make_task(tmp_path, jobs=4, files_per_job=6, dest_sites=("A", "B"))
    probe = ConcurrencyProbe()
    flow = FlowLimits(max_transfers=20, per_destination={"A": DestinationLimit(1, 10**9)})
    stats = Agent(task.db_path, fast_config(workers=4, prefetch=4, flow=flow), transports={"": probe}).run(
        "idle"
    )
    assert stats.done == 24
    assert probe.peak["A"] == 1 and probe.peak["B"] >= 2  # B shows the pool could run more
    assert_delivered(task)


def test_aso_posix_transport_refuses_unknown_schemes_and_mixed_roots(tmp_path) -> None:
    from autosplit.aso import register_outputs, stage_to_temp

    local = tmp_path / "f.root"
    local.write_bytes(b"abc")
    staged = stage_to_temp({local: "f.root"}, tmp_path / "temp", task="t", job_id=1, attempt=0)
    register_outputs(
        tmp_path / "db.sqlite",
        "t",
        1,
        0,
        staged,
        temp_root=tmp_path / "temp",
        destination_root="gsiftp://host/store",
    )
    run_agent(tmp_path / "db.sqlite", fast_config(), until="idle")
    outcome = job_transfer_outcome(tmp_path / "db.sqlite", "t", 1, 0)
    assert outcome.exit_code == 2 and "no transport for URL scheme 'gsiftp'" in outcome.reason
    assert PosixTransport().stat(Location(f"file://{tmp_path}", "f.root")) == 3


def test_aso_posix_copy_overwrites_a_leftover_temp_file_and_keeps_it_private(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.root").write_bytes(b"new content")
    dest_dir = tmp_path / "dst" / "sub"
    dest_dir.mkdir(parents=True)
    leftover = dest_dir / temp_name("abc")
    leftover.write_bytes(b"a much longer partial copy left by an agent that died" * 10)
    leftover.chmod(0o644)
    transport = PosixTransport()
    with transport.copy(
        Location(str(tmp_path / "src"), "a.root"),
        Location(str(tmp_path / "dst"), "sub/a.root"),
        "abc",
        "adler32",
    ) as part:
        assert (part.size, part.checksum) == (11, f"{zlib.adler32(b'new content'):08x}")
        part.commit()
    final = dest_dir / "a.root"
    assert final.read_bytes() == b"new content" and oct(final.stat().st_mode & 0o777) == "0o600"
    assert not leftover.exists()
    # leaving the block without commit removes the temporary file
    with transport.copy(
        Location(str(tmp_path / "src"), "a.root"),
        Location(str(tmp_path / "dst"), "sub/b.root"),
        "abd",
        "adler32",
    ):
        assert (dest_dir / temp_name("abd")).exists()
    assert not (dest_dir / temp_name("abd")).exists() and not (dest_dir / "b.root").exists()
