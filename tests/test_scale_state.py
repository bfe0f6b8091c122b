"""The scheduler's saved state (issue 15): loading and saving cost does not grow with the task, and a
scheduler saved and loaded between every call decides exactly as one kept in memory."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

import autosplit as asp
from autosplit.jobreport import JobReport
from autosplit.pipeline import statestore


def dataset(n_files: int = 60, per_file: int = 7) -> asp.Dataset:
    n = n_files * per_file
    rng = np.random.default_rng(3)
    return asp.Dataset.from_units(
        pl.DataFrame(
            {
                "run": np.full(n, 297050),
                "lumi": np.arange(1, n + 1),
                "events": rng.integers(50, 150, n),
                "file": [f"/store/s/f{i // per_file:03d}.root" for i in range(n)],
                "bytes": np.full(n, 1000),
            }
        )
    )


def make(ds: asp.Dataset) -> asp.Scheduler:
    model = asp.ConstantRateModel(seconds_per_event=0.5, cv=0.3, overhead_seconds=20)
    return asp.Scheduler(ds, target_runtime=600, alpha=0.05, slots=4, model=model, max_files_per_job=2)


def report(ds: asp.Dataset, job_id: str, rows: np.ndarray, done: int, *, fail: bool = False) -> JobReport:
    units = ds.units
    run, lumi, events = (units[c].to_numpy()[rows] for c in ("run", "lumi", "events"))
    processed = [
        {"run": int(r), "lumi": int(lu), "events": int(e), "seconds": float(e) * 0.5}
        for r, lu, e in zip(run[:done], lumi[:done], events[:done], strict=True)
    ]
    rest = [{"run": int(r), "lumi": int(lu)} for r, lu in zip(run[done:], lumi[done:], strict=True)]
    meta = {"failed_unit": [int(run[done]), int(lumi[done])]} if fail and done < rows.size else {}
    return JobReport(
        job_id=job_id,
        site="T2_XX_A",
        exit_code=1 if fail else 0,
        exit_message="ValueError: bad" if fail else "",
        wall_seconds=sum(u["seconds"] for u in processed) + 5.0,
        cpu_seconds=sum(u["seconds"] for u in processed),
        units=processed,
        unfinished=rest,
        soft_stopped=bool(rest) and not fail,
        meta=meta,
    )


class Persisted:
    """A scheduler saved and loaded around every call, as the DAG scripts do."""

    def __init__(self, tmp_path, ds: asp.Dataset) -> None:
        self.header = tmp_path / "scheduler.state"
        self.ds = ds
        self.version = 0
        statestore.save(self.header, make(ds), self.version, None, [])

    def call(self, method: str, *args, **kwargs):
        found = statestore.load(self.header, self.version, self.ds)
        assert found is not None, "a state saved at this version loads"
        sched, loaded = found
        result = getattr(sched, method)(*args, **kwargs)
        dirty = [sched.changed_units()["rows"]]
        self.version += 1
        statestore.save(self.header, sched, self.version, loaded, dirty)
        self.last = sched
        return result


def test_a_scheduler_saved_between_calls_decides_as_one_in_memory(tmp_path) -> None:
    ds = dataset()
    memory = make(ds)
    saved = Persisted(tmp_path, ds)
    rng = np.random.default_rng(0)
    now = 1_000_000.0
    running: list[tuple[str, np.ndarray]] = []
    step = 0
    while step < 400:
        step += 1
        now += 60.0
        if running and (rng.random() < 0.6 or len(running) >= 4):
            job_id, rows = running.pop(int(rng.integers(len(running))))
            kind = rng.random()
            if kind < 0.1:
                a = memory.job_failed(job_id, now, reason="lost")
                b = saved.call("job_failed", job_id, now, reason="lost")
            else:
                done = int(rows.size if kind < 0.7 else rng.integers(0, rows.size))
                rep = report(ds, job_id, rows, done, fail=0.7 <= kind < 0.8)
                a = memory.job_finished(rep, now)
                b = saved.call("job_finished", rep, now)
            for key in ("done", "returned", "quarantined"):
                assert np.array_equal(np.asarray(a.get(key, [])), np.asarray(b.get(key, []))), key
            continue
        names = [f"n{step}"]
        a = memory.next_jobs(1, now, names=names)
        b = saved.call("next_jobs", 1, now, names=names)
        assert [(r.job_id, r.rows.tolist(), r.soft_limit_seconds, r.hard_limit_seconds) for r in a] == [
            (r.job_id, r.rows.tolist(), r.soft_limit_seconds, r.hard_limit_seconds) for r in b
        ]
        running.extend((r.job_id, r.rows) for r in a)
        if memory.finished and not running:
            break
    assert np.array_equal(memory.unit_states(), saved.last.unit_states())
    final = statestore.load(saved.header, saved.version, ds)[0]
    assert np.array_equal(memory.unit_states(), final.unit_states())
    assert memory.summary()["jobs"] == final.summary()["jobs"]
    assert [j.job_id for j in final._jobs] == [j.job_id for j in memory._jobs]
    assert all(final._by_id[j.job_id] == j.index for j in memory._jobs)
    assert len(final._reports) == len(memory._reports)
    assert [r.job_id for r in final._reports] == [r.job_id for r in memory._reports]


def test_a_save_cut_short_or_another_version_is_never_loaded(tmp_path) -> None:
    ds = dataset(10, 5)
    header = tmp_path / "scheduler.state"
    sched = make(ds)
    statestore.save(header, sched, 3, None, [])
    assert statestore.load(header, 3, ds) is not None
    assert statestore.load(header, 4, ds) is None, "the ledger moved on: rebuild"
    header.write_bytes(statestore.STATE_MAGIC + statestore.INVALID + b"\n")  # what a save writes first
    assert statestore.load(header, 3, ds) is None
    header.write_bytes(b"garbage")
    assert statestore.load(header, 3, ds) is None
    header.unlink()
    assert statestore.load(header, 3, ds) is None


def test_a_state_saved_before_the_book_remembered_kills_still_loads_and_runs(tmp_path) -> None:
    ds = dataset(10, 5)
    header = tmp_path / "scheduler.state"
    sched = make(ds)
    req = sched.next_jobs(free_slots=1, now=0.0)[0]
    del sched._book.spent, sched._book.oversized  # as a state written by an earlier version has them
    statestore.save(header, sched, 3, None, [])
    loaded = statestore.load(header, 3, ds)[0]
    assert loaded._book.spent == {} and not loaded._book.oversized.any()
    row = int(req.rows[0])
    cut = {"run": int(ds.units["run"][row]), "lumi": int(ds.units["lumi"][row]), "seconds": 700.0}
    killed = JobReport(job_id=req.job_id, wall_seconds=1860.0, in_progress=cut, hard_killed=True)
    loaded.job_finished(killed, now=1900.0)
    assert loaded._book.spent == {row: 700.0}
    alone = next(r for r in loaded.next_jobs(free_slots=2, now=1901.0) if r.alone)
    assert alone.rows.tolist() == [row] and alone.hard_limit_seconds >= 2 * 700.0


def test_saving_writes_back_only_what_changed_and_appends_jobs(tmp_path) -> None:
    ds = dataset(200, 30)  # 6000 units: the unit arrays live in their own files
    header = tmp_path / "scheduler.state"
    statestore.save(header, make(ds), 0, None, [])
    root = statestore.state_dir(header)
    sched, loaded = statestore.load(header, 0, ds)
    arrays = {p.name: p.stat().st_mtime_ns for p in root.glob("book.*.npy")}
    assert any(".state." in name for name in arrays), "the unit states are stored as an array file"
    requests = sched.next_jobs(2, 10.0, names=["a", "b"])
    statestore.save(header, sched, 1, loaded, [sched.changed_units()["rows"]])
    after = {p.name for p in root.glob("book.*.npy")}
    assert set(arrays) == after, "unit arrays changed in place are written back into the same files"
    sched2, loaded2 = statestore.load(header, 1, ds)
    assert isinstance(sched2._jobs, statestore.LazyJobs) and len(sched2._jobs) == 2
    assert not sched2._jobs.live, "no job is read before it is asked for"
    assert sched2._by_id.get("b") == 1 and "zz" not in sched2._by_id
    assert np.array_equal(sched2._jobs[0].rows, requests[0].rows)
    assert (sched2.unit_states()[requests[0].rows] == 1).all()
    # garbage a cut-short save appended to the rows file is dropped by the next save
    with open(root / "jobs.rows.bin", "ab") as handle:
        handle.write(b"\x01" * 24)
    sched2.next_jobs(1, 20.0, names=["a-very-long-job-name-wider-than-before"])
    statestore.save(header, sched2, 2, loaded2, [sched2.changed_units()["rows"]])
    sched3, _ = statestore.load(header, 2, ds)
    assert sched3._jobs[2].job_id == "a-very-long-job-name-wider-than-before"
    assert sched3._by_id["a-very-long-job-name-wider-than-before"] == 2 and sched3._by_id["a"] == 0
    assert np.array_equal(sched3._jobs[1].rows, requests[1].rows)
    assert (root / "jobs.rows.bin").stat().st_size == 8 * sum(j.rows.size for j in sched3._jobs)


def test_read_only_arrays_refuse_silent_writes(tmp_path) -> None:
    ds = dataset(200, 30)
    header = tmp_path / "scheduler.state"
    statestore.save(header, make(ds), 0, None, [])
    sched, _ = statestore.load(header, 0, ds)
    with pytest.raises(ValueError):
        sched._book.order[0] = 1  # never changed in place: mapped read-only, a write would be lost
