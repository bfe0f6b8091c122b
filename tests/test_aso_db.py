"""Transfer database: ids, idempotent registration, exclusive leased acquisition, flow control, retries,
kill, temp-space budget, postjob outcomes."""

from __future__ import annotations

import sqlite3
import stat
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autosplit.aso import (
    POSTJOB_DEFER,
    POSTJOB_FATAL,
    POSTJOB_OK,
    POSTJOB_RETRY,
    DestinationLimit,
    FlowLimits,
    OutcomeKind,
    RegistrationError,
    RetryPolicy,
    StagedFile,
    TransferDB,
    TransferDBError,
    UnsafePathError,
    can_accept_temp,
    job_transfer_outcome,
    kill_job_transfers,
    register_outputs,
    site_temp_usage,
    transfer_id,
)
from autosplit.aso.flow import admit
from tests.test_aso_helpers import make_task

POLICY = RetryPolicy(max_retries=2, backoff_base=10.0, backoff_max=100.0)


def _register(tmp_path, job="job-1", attempt=0, files=None, **kw):
    files = files or [StagedFile(f"t/{job}/{attempt}/a.root", "out/a.root", 1000, "0a0b0c0d")]
    return register_outputs(
        tmp_path / "aso.sqlite",
        "t",
        job,
        attempt,
        files,
        temp_root=tmp_path / "temp",
        destination_root=tmp_path / "dest",
        **kw,
    )


def test_aso_transfer_id_is_deterministic_hash_of_task_job_attempt_source() -> None:
    base = transfer_id("t", "job-1", 0, "/tmp/a.root")
    assert base == transfer_id("t", "job-1", 0, "/tmp/a.root")
    assert len(base) == 32 and int(base, 16) >= 0
    others = {
        transfer_id("t2", "job-1", 0, "/tmp/a.root"),
        transfer_id("t", "job-2", 0, "/tmp/a.root"),
        transfer_id("t", "job-1", 1, "/tmp/a.root"),
        transfer_id("t", "job-1", 0, "/tmp/b.root"),
    }
    assert base not in others and len(others) == 4


def test_aso_registering_again_is_a_noop_and_conflicts_are_refused(tmp_path) -> None:
    first = _register(tmp_path)
    assert first.admitted and first.inserted == 1 and first.existing == 0
    with TransferDB(tmp_path / "aso.sqlite") as db:
        before = db.rows()
    again = _register(tmp_path)
    assert again.inserted == 0 and again.existing == 1 and again.ids == first.ids
    with TransferDB(tmp_path / "aso.sqlite") as db:
        assert db.rows() == before  # not even updated_at changed
    with pytest.raises(RegistrationError, match="already registered"):
        _register(tmp_path, files=[StagedFile("t/job-1/0/a.root", "out/a.root", 999, "0a0b0c0d")])


@pytest.mark.parametrize(
    ("record", "error"),
    [
        (StagedFile("s/a", "../escape.root", 1, "00000001"), UnsafePathError),
        (StagedFile("s/a", "/etc/passwd", 1, "00000001"), UnsafePathError),
        (StagedFile("s/a", "a/../../b", 1, "00000001"), UnsafePathError),
        (StagedFile("../s/a", "ok.root", 1, "00000001"), UnsafePathError),
        (StagedFile("s/a", "", 1, "00000001"), UnsafePathError),
        (StagedFile("s/a", "ok.root", -5, "00000001"), RegistrationError),
        (StagedFile("s/a", "ok.root", 1, "xyz"), RegistrationError),
        (StagedFile("s/a", "ok.root", 1, "00000001", checksum_algo="md5"), RegistrationError),
        (StagedFile("s/a", "ok.root", 1, "00000001", kind="core"), RegistrationError),
    ],
)
def test_aso_registration_rejects_bad_records(tmp_path, record, error) -> None:
    with pytest.raises(error):
        _register(tmp_path, files=[record])
    assert not (tmp_path / "aso.sqlite").exists() or TransferDB(tmp_path / "aso.sqlite").rows() == []


def test_aso_job_report_records_round_trip_and_checksums_normalise(tmp_path) -> None:
    record = {"source_path": "s/a.root", "dest_path": "o/a.root", "size": 3, "checksum": "ADLER32:1A"}
    result = _register(tmp_path, files=[record])
    with TransferDB(tmp_path / "aso.sqlite") as db:
        row = db.get(result.ids[0])
    assert row.checksum == "0000001a" and row.checksum_algo == "adler32"
    assert StagedFile.from_dict(StagedFile("a", "b", 1, "c").to_dict()) == StagedFile("a", "b", 1, "c")
    with pytest.raises(RegistrationError, match="missing field 'size'"):
        StagedFile.from_dict({"source_path": "a", "dest_path": "b", "checksum": "1"})


def test_aso_acquisition_is_exclusive_across_concurrent_agents(tmp_path) -> None:
    task = make_task(tmp_path, jobs=20, files_per_job=10, sizes=(1, 10))
    taken: list[list[str]] = [[] for _ in range(4)]
    barrier = threading.Barrier(4)

    def agent(index: int) -> None:
        with TransferDB(task.db_path) as db:
            barrier.wait()
            while rows := db.acquire(f"agent-{index}", 3, 60.0, FlowLimits(max_transfers=1000)):
                taken[index] += [r.id for r in rows]
                time.sleep(0.001)  # "work", so the others get their turn

    threads = [threading.Thread(target=agent, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [i for ids in taken for i in ids]
    assert len(everything) == len(set(everything)) == 200
    assert sum(1 for ids in taken if ids) >= 2  # they really competed
    with task.db() as db:
        owners = {r.id: r.lease_owner for r in db.rows()}
    for index, ids in enumerate(taken):
        assert all(owners[i] == f"agent-{index}" for i in ids)


def test_aso_acquire_respects_per_destination_transfer_and_byte_limits(tmp_path) -> None:
    task = make_task(tmp_path, jobs=4, files_per_job=5, sizes=(1000, 1000), dest_sites=("A", "B"))
    flow = FlowLimits(
        max_transfers=100,
        max_bytes=10**9,
        per_destination={"A": DestinationLimit(3, 10**9), "B": DestinationLimit(100, 2500)},
    )
    with task.db() as db:
        got = db.acquire("x", 100, 60.0, flow)
        by_dest = {d: sum(1 for r in got if r.dest_site == d) for d in ("A", "B")}
        assert by_dest == {"A": 3, "B": 2}  # 3 transfers; 2 x 1000 bytes <= 2500 < 3 x 1000
        assert db.acquire("y", 100, 60.0, flow) == []  # limits count rows other agents hold
        db.mark_done(got[0].id, got[0].lease_token, 0.1)
        again = db.acquire("y", 100, 60.0, flow)
        assert [r.dest_site for r in again] == [got[0].dest_site]


def test_aso_a_file_larger_than_the_byte_limit_goes_alone(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=2, sizes=(10, 10), extra_sizes=(5000,))
    flow = FlowLimits(max_transfers=10, max_bytes=1000)
    with task.db() as db:
        first = db.acquire("x", 10, 60.0, flow)
        assert [r.size for r in first] == [10, 10]  # FIFO: the large one waits behind them
        assert db.acquire("x", 10, 60.0, flow) == []
        for r in first:
            db.mark_done(r.id, r.lease_token, 0.0)
        assert [r.size for r in db.acquire("x", 10, 60.0, flow)] == [5000]


@given(
    sizes=st.lists(st.integers(0, 5000), max_size=30),
    in_flight=st.integers(0, 5),
    in_flight_bytes=st.integers(0, 8000),
    max_transfers=st.integers(1, 8),
    max_bytes=st.integers(1, 8000),
    want=st.integers(0, 40),
)
def test_aso_admit_never_exceeds_limits_and_is_fifo(
    sizes, in_flight, in_flight_bytes, max_transfers, max_bytes, want
) -> None:
    limit = DestinationLimit(max_transfers, max_bytes)
    n = admit(sizes, in_flight, in_flight_bytes, limit, want)
    assert 0 <= n <= min(len(sizes), want, max(0, max_transfers - in_flight))
    if n:
        total = in_flight_bytes + sum(sizes[:n])
        assert total <= max_bytes or (in_flight == 0 and n == 1)  # one oversized file may go alone
    if n < min(len(sizes), want) and in_flight + n < max_transfers:
        # stopped early: the next file in line did not fit the byte budget
        assert in_flight + n > 0 and in_flight_bytes + sum(sizes[: n + 1]) > max_bytes


def test_aso_expired_lease_is_reclaimed_and_the_old_holder_cannot_write(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=3)
    with task.db() as db:
        held = db.acquire("dead-agent", 10, 0.2)
        assert len(held) == 3
        assert db.acquire("b", 10, 60.0) == []
        assert db.renew("dead-agent", 0.2) == 3
        time.sleep(0.25)
        reclaimed = db.acquire("b", 10, 60.0)
        assert sorted(r.id for r in reclaimed) == sorted(r.id for r in held)
        assert all(r.acquisitions == 2 and r.lease_owner == "b" for r in reclaimed)
        stale = held[0]
        assert not db.mark_submitted(stale.id, stale.lease_token, 1.0)
        assert not db.mark_done(stale.id, stale.lease_token, 1.0)
        assert (
            db.record_failure(stale.id, stale.lease_token, "x", kind="io", permanent=False, policy=POLICY)
            is None
        )
        assert db.get(stale.id).state == "ACQUIRED" and db.get(stale.id).lease_owner == "b"


def test_aso_recoverable_failures_back_off_then_fail(tmp_path) -> None:
    task = make_task(tmp_path, jobs=1, files_per_job=1)
    with task.db() as db:
        now = 1000.0
        db.retry_failed()  # nothing to do, must not fail
        (row,) = db.acquire("a", 1, 60.0, now=now)
        assert (
            db.record_failure(
                row.id, row.lease_token, "EIO", kind="io", permanent=False, policy=POLICY, now=now
            )
            == "RETRY"
        )
        assert db.get(row.id).next_attempt_at == now + 10.0
        assert db.acquire("a", 1, 60.0, now=now + 5) == []
        (row,) = db.acquire("a", 1, 60.0, now=now + 10.5)
        assert (
            db.record_failure(
                row.id, row.lease_token, "EIO", kind="io", permanent=False, policy=POLICY, now=now + 11
            )
            == "RETRY"
        )
        assert db.get(row.id).next_attempt_at == now + 11 + 20.0
        (row,) = db.acquire("a", 1, 60.0, now=now + 40)
        assert (
            db.record_failure(
                row.id, row.lease_token, "EIO", kind="io", permanent=False, policy=POLICY, now=now + 41
            )
            == "FAILED"
        )
        failed = db.get(row.id)
        assert failed.failure_kind == "recoverable" and failed.retry_count == 3
        assert failed.failure_reason == "io: EIO (after 3 attempts)"
        assert db.retry_failed("t1") == 1
        assert db.get(row.id).state == "RETRY" and db.get(row.id).retry_count == 0


def test_aso_checksum_mismatch_turns_permanent_after_retries_and_permanent_kinds_fail_at_once(
    tmp_path,
) -> None:
    task = make_task(tmp_path, jobs=2, files_per_job=1)
    with task.db() as db:
        rows = {r.job_id: r for r in db.acquire("a", 2, 60.0)}
        state = db.record_failure(
            rows["job-0"].id,
            rows["job-0"].lease_token,
            "perm",
            kind="permission",
            permanent=True,
            policy=POLICY,
        )
        assert state == "FAILED" and db.get(rows["job-0"].id).failure_kind == "permanent"
        row = rows["job-1"]
        for _ in range(POLICY.max_retries + 1):
            if row.state != "ACQUIRED":
                (row,) = db.acquire("a", 1, 60.0, now=time.time() + 10_000)
            db.record_failure(
                row.id,
                row.lease_token,
                "checksum mismatch",
                kind="checksum-mismatch",
                permanent=False,
                permanent_after_retries=True,
                policy=POLICY,
            )
            row = db.get(row.id)
        assert row.state == "FAILED" and row.failure_kind == "permanent" and row.retry_count == 3


def test_aso_job_outcome_maps_to_postjob_exit_codes(tmp_path) -> None:
    task = make_task(tmp_path, jobs=3, files_per_job=2)
    db_path = task.db_path
    assert job_transfer_outcome(db_path, "t1", "job-9", 0).kind == OutcomeKind.NONE
    assert job_transfer_outcome(db_path, "t1", "job-0", 0).exit_code == POSTJOB_DEFER
    with task.db() as db:
        rows = db.acquire("a", 10, 60.0)
        by_job: dict[str, list] = {}
        for r in rows:
            by_job.setdefault(r.job_id, []).append(r)
        for r in by_job["job-0"]:
            db.mark_done(r.id, r.lease_token, 0.1)
        one, other = by_job["job-1"]
        db.mark_done(one.id, one.lease_token, 0.1)
        outcome = job_transfer_outcome(db, "t1", "job-1", 0)
        assert outcome.kind == OutcomeKind.IN_FLIGHT and outcome.done == 1 and outcome.in_flight == 1
        db.record_failure(
            other.id, other.lease_token, "EIO", kind="io", permanent=False, policy=RetryPolicy(0)
        )
        a, b = by_job["job-2"]
        db.record_failure(
            a.id, a.lease_token, "no such file", kind="missing-source", permanent=True, policy=POLICY
        )
    done = job_transfer_outcome(db_path, "t1", "job-0", 0)
    assert (
        done.kind == OutcomeKind.DONE
        and done.exit_code == POSTJOB_OK
        and done.bytes_done == done.bytes_total > 0
    )
    recoverable = job_transfer_outcome(db_path, "t1", "job-1", 0)
    assert recoverable.exit_code == POSTJOB_RETRY and "io: EIO" in recoverable.reason
    permanent = job_transfer_outcome(db_path, "t1", "job-2", 0)
    assert permanent.exit_code == POSTJOB_FATAL and "missing-source: no such file" in permanent.reason
    assert "job2/out_" in permanent.reason  # names the file
    assert permanent.to_dict()["kind"] == "permanent_failure"
    # the postjob gives up on job-2: cancel what is left; repeating is harmless
    assert kill_job_transfers(db_path, "t1", "job-2", 0) == 2  # the FAILED row and the one still held
    assert kill_job_transfers(db_path, "t1", "job-2", 0) == 0
    assert job_transfer_outcome(db_path, "t1", "job-2", 0).killed == 2


def test_aso_newer_attempt_supersedes_unfinished_older_one(tmp_path) -> None:
    _register(tmp_path, attempt=0)
    result = _register(tmp_path, attempt=1)
    assert result.superseded == 1
    old = job_transfer_outcome(tmp_path / "aso.sqlite", "t", "job-1", 0)
    assert old.kind == OutcomeKind.PERMANENT_FAILURE and "superseded by attempt 1" in old.reason
    assert job_transfer_outcome(tmp_path / "aso.sqlite", "t", "job-1", 1).kind == OutcomeKind.IN_FLIGHT


def test_aso_temp_space_budget_defers_registration_until_space_frees(tmp_path) -> None:
    def files(job: str, n: int) -> list[StagedFile]:
        return [StagedFile(f"t/{job}/0/f{i}", f"o/{job}/f{i}", 3000, "00000001") for i in range(n)]

    budget = 10_000
    first = _register(tmp_path, "job-1", files=files("job-1", 2), source_site="S", temp_budget_bytes=budget)
    assert first.admitted and first.site_usage_bytes == 6000
    assert not can_accept_temp(tmp_path / "aso.sqlite", "S", 6000, budget)
    assert can_accept_temp(tmp_path / "aso.sqlite", "S", 4000, budget)
    refused = _register(tmp_path, "job-2", files=files("job-2", 2), source_site="S", temp_budget_bytes=budget)
    assert not refused.admitted and refused.inserted == 0
    assert job_transfer_outcome(tmp_path / "aso.sqlite", "t", "job-2", 0).kind == OutcomeKind.NONE
    # another site has its own budget
    assert _register(
        tmp_path, "job-3", files=files("job-3", 2), source_site="S2", temp_budget_bytes=budget
    ).admitted
    with TransferDB(tmp_path / "aso.sqlite") as db:
        for row in db.acquire("a", 10, 60.0):
            if row.job_id == "job-1":
                db.mark_done(row.id, row.lease_token, 0.1)  # temp copies removed
    assert site_temp_usage(tmp_path / "aso.sqlite", "S") == 0
    assert _register(
        tmp_path, "job-2", files=files("job-2", 2), source_site="S", temp_budget_bytes=budget
    ).admitted
    # an empty area accepts even a job larger than the whole budget (no deadlock)
    assert _register(
        tmp_path, "job-4", files=files("job-4", 5), source_site="S4", temp_budget_bytes=budget
    ).admitted


def test_aso_database_is_private_and_bad_files_give_clear_errors(tmp_path) -> None:
    with TransferDB(tmp_path / "deep" / "aso.sqlite"):
        pass
    assert stat.S_IMODE((tmp_path / "deep" / "aso.sqlite").stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "deep").stat().st_mode) == 0o700
    with pytest.raises(TransferDBError, match="no transfer database"):
        TransferDB(tmp_path / "missing.sqlite", create=False)
    (tmp_path / "junk.sqlite").write_text("this is not sqlite " * 100)
    with pytest.raises(TransferDBError, match="not a usable SQLite database"):
        TransferDB(tmp_path / "junk.sqlite")
    conn = sqlite3.connect(tmp_path / "future.sqlite")
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(TransferDBError, match="newer than this autosplit"):
        TransferDB(tmp_path / "future.sqlite")
    with sqlite3.connect(tmp_path / "deep" / "aso.sqlite") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
