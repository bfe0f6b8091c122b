"""Dataset: loaders on the real data, multi-file lumis, selection, parquet round trip, error paths."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autosplit import Dataset, DatasetError, LumiMask, load_dataset, load_mask
from tests.conftest import DATA, DBS_JSON, ROOT_DIR

COSMICS_HI = "/Cosmics/ComissioningHI-PromptReco-v1/RECO"


def unit_set(ds: Dataset) -> set[tuple[int, int]]:
    return set(zip(ds.units["run"].to_list(), ds.units["lumi"].to_list(), strict=True))


# ---------------------------------------------------------------------------------------------- ROOT
def test_root_ttbar_has_200_events_in_6_lumis() -> None:
    ds = Dataset.from_root(ROOT_DIR / "nanoAOD_2015_CMS_Open_Data_ttbar.root")
    assert ds.n_units == 6 and ds.n_events == 200
    assert ds.units["events_exact"].all()
    assert ds.units["events"].to_list() == [34, 45, 22, 43, 45, 11]
    size = (ROOT_DIR / "nanoAOD_2015_CMS_Open_Data_ttbar.root").stat().st_size
    assert ds.units["bytes"].sum() == size, "bytes apportioned by events add up to the file size"
    assert ds.files["events"].to_list() == [200]


def test_root_dimuon_real_collision_lumi() -> None:
    ds = Dataset.from_root(ROOT_DIR / "nano_dimuon.root")
    assert ds.units.select("run", "lumi", "events").rows() == [(315267, 205, 40)]


def test_root_rntuple_and_glob() -> None:
    rntuple = Dataset.from_root(
        ROOT_DIR / "cmsopendata2015_ttbar_19980_NANOAOD_RNTupleImporter_rntuple_v1-0-0-1.root"
    )
    assert rntuple.n_events == 10 and rntuple.n_units == 1
    several = Dataset.from_root(str(ROOT_DIR / "nano_d*.root"))
    assert several.n_files == 2 and several.n_events == 80
    assert unit_set(several) == {(315267, 205), (1, 13889)}


def test_root_missing_lumi_branch_names_file_and_branch() -> None:
    with pytest.raises(DatasetError, match=r"missing_luminosityBlock\.root.*'luminosityBlock'"):
        Dataset.from_root(ROOT_DIR / "missing_luminosityBlock.root")


def test_root_error_paths(tmp_path) -> None:
    with pytest.raises(DatasetError, match="nope.root: no such file"):
        Dataset.from_root(tmp_path / "nope.root")
    junk = tmp_path / "junk.root"
    junk.write_bytes(b"not a root file at all")
    with pytest.raises(DatasetError, match=r"junk.root: not a readable ROOT file \([^\n]*\)$"):
        Dataset.from_root(junk)
    with pytest.raises(DatasetError, match="no tree 'Missing'"):
        Dataset.from_root(ROOT_DIR / "nano_dy.root", tree="Missing")
    with pytest.raises(DatasetError, match="matches no file"):
        Dataset.from_root(str(tmp_path / "*.nothing"))


def test_lumi_spread_over_two_root_files_is_one_unit(tmp_path) -> None:
    """Split the ttbar file in two at an event inside a lumi: that lumi becomes one unit with both files."""
    uproot = pytest.importorskip("uproot")
    src = uproot.open(ROOT_DIR / "nanoAOD_2015_CMS_Open_Data_ttbar.root")["Events"]
    arrays = src.arrays(["run", "luminosityBlock", "event"], library="np")
    cut = 50  # lumi 2272916 holds events 34..78, so it is cut in two
    for name, sl in (("a.root", slice(0, cut)), ("b.root", slice(cut, None))):
        with uproot.recreate(tmp_path / name) as out:
            out["Events"] = {k: v[sl] for k, v in arrays.items()}
    ds = Dataset.from_root(str(tmp_path / "*.root"))
    assert ds.n_units == 6 and ds.n_events == 200
    row = ds.units.filter(pl.col("lumi") == 2272916).row(0, named=True)
    assert row["events"] == 45 and sorted(row["file_ids"]) == [0, 1] and row["file_id"] == 0
    assert ds.has_multifile_units
    only_b = ds.select(LumiMask({"1": [[2272916, 2272916]]}))
    assert only_b.n_files == 2, "selecting the split lumi keeps both files"


# ---------------------------------------------------------------------------------------------- DBS
def test_dbs_listing_estimates_events_per_lumi() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    raw = json.loads(DBS_JSON.read_text())["datasets"][COSMICS_HI]
    assert ds.n_files == len(raw) == 108
    assert ds.n_units == sum(len(v) for f in raw for v in f["lumis"].values())
    assert ds.n_events == sum(f["events"] for f in raw)
    assert not ds.units["events_exact"].any()
    # Per file, estimated lumi events sum to the file's events and differ by at most one.
    per_file = ds.units.group_by("file_id").agg(
        pl.col("events").sum().alias("sum"), (pl.col("events").max() - pl.col("events").min()).alias("spread")
    )
    joined = per_file.join(ds.files, on="file_id")
    assert (joined["sum"] == joined["events"]).all()
    assert joined["spread"].max() <= 1
    assert ds.units["bytes"].sum() == sum(f["size"] for f in raw)


def test_dbs_zero_event_files_are_kept() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    zero_files = ds.files.filter(pl.col("events") == 0)
    assert zero_files.height == 12 == ds.meta["n_zero_event_files"]
    held = ds.units.filter(pl.col("file_id").is_in(zero_files["file_id"].implode()))
    assert held.height == 1205 and held["events"].sum() == 0


def test_dbs_needs_dataset_choice_and_names_choices() -> None:
    with pytest.raises(DatasetError, match="holds 3 datasets.*Cosmics/Commissioning2015"):
        Dataset.from_dbs_json(DBS_JSON)
    with pytest.raises(DatasetError, match="no dataset '/Nope'"):
        Dataset.from_dbs_json(DBS_JSON, dataset="/Nope")


def test_dbs_plain_list_invalid_files_and_multifile_lumis(tmp_path) -> None:
    records = [
        {"lfn": "/store/b.root", "events": 10, "size": 1000, "lumis": {"5": [1, 2]}, "locations": ["T2_A"]},
        {"lfn": "/store/a.root", "events": 30, "size": 3000, "lumis": {"5": [2, 3, 4]}, "location": "T2_A"},
        {"lfn": "/store/bad.root", "events": 99, "size": 9, "lumis": {"5": [9]}, "valid": 0},
        {"lfn": "/store/empty.root", "events": 0, "size": 5, "lumis": {"6": [1]}},
    ]
    path = tmp_path / "list.json"
    path.write_text(json.dumps(records))
    ds = Dataset.from_dbs_json(path)
    assert ds.meta["n_invalid_files"] == 1
    assert "/store/bad.root" not in ds.files["lfn"].to_list()
    assert unit_set(ds) == {(5, 1), (5, 2), (5, 3), (5, 4), (6, 1)}
    lumi2 = ds.units.filter((pl.col("run") == 5) & (pl.col("lumi") == 2)).row(0, named=True)
    ids = dict(zip(ds.files["lfn"], ds.files["file_id"], strict=True))
    assert sorted(lumi2["file_ids"]) == sorted([ids["/store/a.root"], ids["/store/b.root"]])
    assert lumi2["events"] == 5 + 10, "events of a multi-file lumi are summed"
    assert ds.n_events == 40
    assert ds.files.filter(pl.col("lfn") == "/store/a.root")["locations"].to_list() == [["T2_A"]]


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ("{oops", "not valid JSON"),
        ('{"x": 1}', "expected a list of file records"),
        ('[{"events": 1}]', "file record 0: missing field 'lfn'"),
        ('[{"lfn": "/a", "events": -1}]', "file /a: field 'events' must be a non-negative integer"),
        ('[{"lfn": "/a", "events": 1, "lumis": {"x": [1]}}]', "file /a: run key 'x'"),
        ('[{"lfn": "/a", "events": 1, "lumis": {"1": [1, "2"]}}]', "file /a: run 1: lumis must be"),
        ('[{"lfn": "/a", "events": 1}, {"lfn": "/a", "events": 1}]', "file /a: listed twice"),
        ("[3]", "file record 0: expected an object"),
    ],
)
def test_dbs_bad_input(tmp_path, payload: str, fragment: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(payload)
    with pytest.raises(DatasetError, match=fragment):
        Dataset.from_dbs_json(path)


# ---------------------------------------------------------------------------------------------- units
def test_from_units_and_parquet_round_trip(tmp_path) -> None:
    df = pl.DataFrame(
        {
            "run": [1, 1, 1, 2],
            "lumi": [1, 2, 2, 7],
            "events": [10, 5, 6, 0],
            "file": ["f1", "f1", "f2", "f2"],
            "bytes": [100, 50, 60, 0],
            "pileup": [30.0, 31.0, 31.0, 40.0],
        }
    )
    ds = Dataset.from_units(df, name="toy")
    assert ds.n_units == 3 and ds.n_events == 21
    assert "pileup" in ds.units.columns
    row = ds.units.filter(pl.col("lumi") == 2).row(0, named=True)
    assert row["events"] == 11 and row["bytes"] == 110 and row["file_ids"] == [0, 1]
    path = ds.to_parquet(tmp_path / "toy.parquet")
    back = Dataset.from_parquet(path)
    assert back.units.equals(ds.units) and back.files.equals(ds.files)
    assert back.name == "toy"
    plain = tmp_path / "plain.parquet"
    df.write_parquet(plain)
    assert Dataset.from_parquet(plain).units.drop("pileup").equals(ds.units.drop("pileup"))
    assert load_dataset(path).n_units == 3


@pytest.mark.parametrize(
    ("df", "fragment"),
    [
        (pl.DataFrame({"run": [1], "lumi": [1], "events": [1]}), r"missing column\(s\) \['file'\]"),
        (pl.DataFrame({"run": [1], "lumi": [1], "events": [-4], "file": ["a"]}), "negative or out-of-range"),
        (pl.DataFrame({"run": [1], "lumi": [None], "events": [1], "file": ["a"]}), "'lumi' has 1 missing"),
        (pl.DataFrame({"run": ["x"], "lumi": [1], "events": [1], "file": ["a"]}), "must be integers"),
        (pl.DataFrame({"run": [1, 1], "lumi": [3, 3], "events": [1, 1], "file": ["a", "a"]}), "listed twice"),
    ],
)
def test_from_units_bad_input(df: pl.DataFrame, fragment: str) -> None:
    with pytest.raises(DatasetError, match=fragment):
        Dataset.from_units(df)


def test_parquet_errors(tmp_path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        Dataset.from_parquet(tmp_path / "none.parquet")
    bad = tmp_path / "bad.parquet"
    bad.write_text("nope")
    with pytest.raises(DatasetError, match="not a readable parquet"):
        Dataset.from_parquet(bad)


# ---------------------------------------------------------------------------------------------- select
def test_select_with_real_mask_and_dataset() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    run = ds.runs[0]
    lumis = ds.units.filter(pl.col("run") == run)["lumi"].to_list()
    mask = LumiMask({str(run): [[min(lumis), min(lumis) + 9]]})
    sel = ds.select(mask)
    assert unit_set(sel) == {(run, lumi) for lumi in lumis if lumi <= min(lumis) + 9}
    assert set(sel.files["file_id"].to_list()) == set(sel.units["file_id"].to_list())
    assert sel.lumi_mask() == mask & ds.lumi_mask()
    golden = LumiMask.from_json(
        DATA / "lumimask" / "Cert_294927-306462_13TeV_EOY2017ReReco_Collisions17_JSON.txt"
    )
    assert ds.select(golden).n_units == 0, "2017 mask and 2011 cosmics share no run"


unit_rows = st.lists(
    st.tuples(st.integers(1, 3), st.integers(1, 20), st.integers(0, 50), st.sampled_from(["a", "b", "c"])),
    max_size=40,
    unique_by=lambda t: (t[0], t[1], t[3]),
)
small_masks = st.dictionaries(
    st.integers(1, 3).map(str),
    st.lists(st.tuples(st.integers(1, 20), st.integers(0, 5)).map(lambda t: [t[0], t[0] + t[1]]), max_size=3),
    max_size=3,
)


@given(unit_rows, small_masks, small_masks)
def test_select_is_set_intersection(rows, m1, m2) -> None:
    df = pl.DataFrame(rows, schema=["run", "lumi", "events", "file"], orient="row")
    ds = Dataset.from_units(df)
    a, b = LumiMask(m1), LumiMask(m2)
    assert unit_set(ds.select(a)) == unit_set(ds) & set(zip(*a.to_pairs(), strict=True))
    assert unit_set(ds.select(a).select(b)) == unit_set(ds.select(a & b))
    assert ds.n_units == len({(r, lumi) for r, lumi, _, _ in rows}), "one unit per (run, lumi)"
    assert ds.n_events == sum(r[2] for r in rows)
    sel = ds.select(a)
    # Every file that holds a selected unit is kept, and no other.
    held = set(np.unique(sel.units["file_ids"].explode().to_numpy()).tolist()) if sel.n_units else set()
    assert set(sel.files["file_id"].to_list()) == held


def test_load_helpers(tmp_path) -> None:
    assert load_mask("1:1-1:3") == LumiMask({"1": [[1, 3]]})
    assert load_mask('{"1": [[1, 3]]}') == LumiMask({"1": [[1, 3]]})
    assert load_mask(None) is None
    with pytest.raises(DatasetError, match="unknown dataset type"):
        load_dataset(tmp_path / "x.csv")
