"""Pipeline pieces at scale (issue 15): vectorized job specs, the task's dataset read fast, the ledger's
bulk creation and summaries, and an incremental ``status`` that shows jobs of an ended task as they ended."""

from __future__ import annotations

import json

import msgspec
import numpy as np
import polars as pl
import pytest

import autosplit as asp
from autosplit.datasets.dataset import UNIT_SCHEMA
from autosplit.ledger import Ledger, LedgerError
from autosplit.pipeline import status as status_mod
from autosplit.pipeline.bind import bind
from autosplit.pipeline.finalize import run_finalize
from autosplit.pipeline.postjob import run_postjob
from autosplit.pipeline.scheduling import _files_table, task_dataset
from autosplit.pipeline.stages import UnitColumns, spec_files, task_unit_columns
from autosplit.pipeline.status import task_status
from autosplit.pipeline.taskdir import TaskDir
from autosplit.worker import FileUnits
from tests.pipeline_helpers import fake_report, make_task


def reference_spec_files(ds: asp.Dataset, unit_ids: np.ndarray) -> list[FileUnits]:
    """The row-by-row implementation the vectorized one replaced (the expected output)."""
    units = ds.units[np.asarray(unit_ids, dtype=np.int64)]
    lfn_of = dict(zip(ds.files["file_id"].to_list(), ds.files["lfn"].to_list(), strict=True))
    extras = [c for c in units.columns if c not in UNIT_SCHEMA]
    columns = units.select("run", "lumi", "events", "file_id", "file_ids", *extras).to_dict(as_series=False)
    grouped: dict[str, list[dict]] = {}
    for i in range(units.height):
        unit = {
            "run": columns["run"][i],
            "lumi": columns["lumi"][i],
            "events": columns["events"][i],
            "files": [lfn_of[f] for f in columns["file_ids"][i]],
        }
        for key in extras:
            value = columns[key][i]
            if isinstance(value, int | float | str | bool):
                unit[key] = value
        grouped.setdefault(lfn_of[columns["file_id"][i]], []).append(unit)
    return [FileUnits(lfn=name, units=items) for name, items in grouped.items()]


def multifile_dataset() -> asp.Dataset:
    """Lumis spanning two or three files, and unit features (numbers with gaps, strings, booleans)."""
    rows = []
    for lumi in range(1, 61):
        files = [f"/store/m/f{lumi // 4}.root"] + (
            [f"/store/m/f{lumi // 4 + 1}.root"] if lumi % 4 == 3 else []
        )
        files += [f"/store/m/g{lumi % 5}.root"] if lumi % 7 == 0 else []
        for name in files:
            rows.append(
                {"run": 1 + lumi // 30, "lumi": lumi, "events": 10 + lumi, "file": name, "bytes": 100}
            )
    ds = asp.Dataset.from_units(pl.DataFrame(rows))
    n = ds.n_units
    return ds.with_features(
        pl.DataFrame(
            {
                "run": ds.units["run"],
                "lumi": ds.units["lumi"],
                "pileup": [None if i % 9 == 0 else i * 0.5 for i in range(n)],
                "tag": [None if i % 4 == 0 else f"t{i}" for i in range(n)],
                "good": [i % 2 == 0 for i in range(n)],
            }
        )
    )


@pytest.mark.parametrize("features", [False, True])
def test_vectorized_spec_files_equal_the_row_by_row_ones(tmp_path, features) -> None:
    ds = multifile_dataset()
    if not features:
        ds = asp.Dataset(ds.units.select(list(UNIT_SCHEMA)), ds.files)
    assert ds.has_multifile_units
    rng = np.random.default_rng(2)
    for size in (1, 5, ds.n_units):
        ids = rng.permutation(ds.n_units)[:size]
        expected = msgspec.json.encode(reference_spec_files(ds, ids))
        assert msgspec.json.encode(spec_files(ds, ids)) == expected
        columns = UnitColumns.from_dataset(ds)
        columns.save(tmp_path / f"u{size}{features}")
        mapped = UnitColumns.load(tmp_path / f"u{size}{features}")
        assert msgspec.json.encode(mapped.spec_files(ids)) == expected


def test_task_dataset_and_unit_cache_match_the_dataset(tmp_path) -> None:
    task = make_task(tmp_path)
    fresh = TaskDir(task.root)
    ds = task_dataset(fresh)
    reference = asp.Dataset.from_parquet(task.dataset_path)
    assert ds.units.equals(reference.units) and ds.files.equals(reference.files)
    assert (task.root / "dataset.files.parquet").exists()
    again = task_dataset(TaskDir(task.root))  # from the cached files table
    assert again.files.equals(reference.files) and again.units.equals(reference.units)
    ids = np.arange(reference.n_units)[::3]
    assert msgspec.json.encode(task_unit_columns(TaskDir(task.root)).spec_files(ids)) == msgspec.json.encode(
        reference_spec_files(reference, ids)
    )
    columns = reference.files.to_dict(as_series=False)
    columns["locations"] = [["T2_A", "T2_B"] if i % 2 else [] for i in range(len(columns["file_id"]))]
    table = _files_table(json.loads(json.dumps(columns)))
    assert table["locations"].to_list() == columns["locations"]
    assert table.schema == reference.files.schema


def test_ledger_bulk_create_refuses_duplicates_and_summarises_in_one_query(tmp_path) -> None:
    units = pl.DataFrame({"run": [1, 1, 2], "lumi": [1, 2, 1], "events": [10, 20, 30]})
    with Ledger.create(tmp_path / "l.sqlite", units, task="t") as ledger:
        assert ledger.unit_summary()["pending"] == (3, 60)
        assert ledger.units()["unit_id"].to_list() == [0, 1, 2]
        assert ledger.quarantine([1], "bad") == 1
        assert ledger.quarantine_reasons() == [("bad", 1)]
        assert ledger.unit_summary()["quarantined"] == (1, 20)
    dup = pl.DataFrame({"run": [1, 1], "lumi": [1, 1], "events": [1, 2]})
    with pytest.raises(LedgerError):
        Ledger.create(tmp_path / "d.sqlite", dup, task="t")


def test_status_of_a_killed_task_shows_jobs_that_never_ran_as_killed(tmp_path) -> None:
    task = make_task(tmp_path, probes=2)
    for node in ("c1-1", "c2-1"):
        assert bind(str(task.root), node)[0] == 0
    fake_report(task, "c1-1")
    run_postjob(task, "c1-1", 0, 0, 1)
    status = task_status(task)
    assert sum(s["states"].get("queued", 0) for s in status["stages"].values()) == 1
    with task.ledger() as ledger:
        ledger.set_meta(killed="1")
    run_finalize(task, 0)
    status = task_status(task)
    states = {k: v for s in status["stages"].values() for k, v in s["states"].items()}
    assert "queued" not in states, states
    assert states.get("killed") == 1, states


def test_status_polls_read_only_what_changed(tmp_path, monkeypatch) -> None:
    task = make_task(tmp_path, probes=2)
    assert bind(str(task.root), "c1-1")[0] == 0
    first = task_status(task)
    opened = []
    real_open = Ledger.open

    def counting_open(path):
        opened.append(path)
        return real_open(path)

    monkeypatch.setattr(Ledger, "open", staticmethod(counting_open))
    assert task_status(task) == first
    assert not opened, "nothing new: the ledger is not read again"
    # a node status file: only PRE/SUBMITTED/POST nodes matter
    (task.dag_dir / "task.status").write_text(
        '[\n  Type = "DagStatus";\n]\n'
        '[\n  Type = "NodeStatus";\n  Node = "c1-1";\n  NodeStatus = 3; /* "STATUS_SUBMITTED" */\n'
        '  StatusDetails = "";\n  RetryCount = 0;\n  JobProcsQueued = 1;\n  JobProcsHeld = 0;\n]\n'
    )
    running = task_status(task)
    assert not opened
    assert running["stages"]["probe"]["states"] == {"running": 1}
    fake_report(task, "c1-1")
    run_postjob(task, "c1-1", 0, 0, 1)
    opened.clear()
    after = task_status(task)
    assert opened, "the ledger changed: read again"
    assert after["stages"]["probe"]["states"] == {"done": 1}
    status_mod.forget(task)


def test_file_sites_from_the_unit_cache_are_the_datasets_locations(tmp_path) -> None:
    """A condor bind takes each file's sites from the task's unit-column cache, not the dataset: the same
    lists, one per file holding the job's units (lumis spanning two files included), in LFN order."""
    records = [
        {
            "lfn": f"/store/s/f{i}.root",
            "events": 100,
            "size": 1000,
            "locations": [["T2_A"], ["T2_B", "T2_C"], []][i % 3],
            "lumis": {"1": [i * 5 + k for k in range(1, 7)]},  # the last lumi also opens the next file
        }
        for i in range(7)
    ]
    listing = tmp_path / "listing.json"
    listing.write_text(json.dumps({"datasets": {"/S/x/RAW": records}}))
    ds = asp.Dataset.from_dbs_json(listing, dataset="/S/x/RAW")
    assert ds.n_units == 36
    UnitColumns.from_dataset(ds).save(tmp_path / "units.d")
    cache = UnitColumns.load(tmp_path / "units.d")
    where = dict(zip(ds.files["lfn"].to_list(), ds.files["locations"].to_list(), strict=True))
    for ids in (np.arange(36), np.array([5, 6, 30]), np.array([0]), np.arange(36)[::7]):
        specs = cache.spec_files(ids)
        lfns = sorted({f.lfn for f in specs} | {n for f in specs for u in f.units for n in u["files"]})
        assert cache.file_sites(ids) == [where[lfn] for lfn in lfns]
    old = tmp_path / "old.d"  # a cache written before sites were kept: the caller reads the dataset
    UnitColumns.from_dataset(ds).save(old)
    for name in ("sites_offsets.npy", "sites_values.npy"):
        (old / name).unlink()
    assert UnitColumns.load(old).file_sites(np.arange(3)) is None
