"""Classic algorithms: invariants on random datasets, WMCore spot checks against a plain reference."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from autosplit import Dataset
from autosplit.cli import cli
from autosplit.errors import SplittingError
from autosplit.splitting import JobPlan, split
from tests.conftest import DBS_JSON
from tests.strategies import datasets

COSMICS_HI = "/Cosmics/ComissioningHI-PromptReco-v1/RECO"


def lfn_of(ds: Dataset) -> dict[int, str]:
    return dict(zip(ds.files["file_id"].to_list(), ds.files["lfn"].to_list(), strict=True))


def locations_of(ds: Dataset) -> dict[int, tuple[str, ...]]:
    return {
        fid: tuple(sorted(locs))
        for fid, locs in zip(ds.files["file_id"].to_list(), ds.files["locations"].to_list(), strict=True)
    }


def check_lumi_plan_invariants(ds: Dataset, plan: JobPlan) -> None:
    """Every unit in exactly one job; files are exactly those holding the job's units; no mixed locations."""
    assert (plan.assignment >= 0).all(), "every unit is in a job"
    assert sorted(set(plan.assignment.tolist())) == list(range(plan.n_jobs)), "job ids are 0..n-1"
    masks = [plan.job_mask(j) for j in range(plan.n_jobs)]
    assert sum(m.n_lumis for m in masks) == ds.n_units, "no lumi in two jobs"
    union = masks[0]
    for m in masks[1:]:
        union = union | m
    assert union == ds.lumi_mask()
    lfns, locs = lfn_of(ds), locations_of(ds)
    units = ds.units
    for job in range(plan.n_jobs):
        job_units = units[plan.job_rows(job)]
        holders = {fid for ids in job_units["file_ids"].to_list() for fid in ids}
        assert plan.job_files(job) == sorted(lfns[f] for f in holders)
        assert plan.jobs["n_files"][job] == len(holders)
        assert plan.jobs["events"][job] == job_units["events"].sum()
        assert len({locs[f] for f in job_units["file_id"].to_list()}) == 1, "one location set per job"


@settings(max_examples=60)
@given(datasets(), st.integers(1, 4))
def test_file_based_invariants(ds: Dataset, files_per_job: int) -> None:
    plan = split(ds, "FileBased", files_per_job=files_per_job)
    check_lumi_plan_invariants(ds, plan)
    # WMCore: ceil(files / files_per_job) jobs per location set (counting files that are some unit's first file).
    primary = ds.units["file_id"].unique().to_list()
    locs = locations_of(ds)
    per_set: dict[tuple[str, ...], int] = {}
    for fid in primary:
        per_set[locs[fid]] = per_set.get(locs[fid], 0) + 1
    assert plan.n_jobs == sum(math.ceil(n / files_per_job) for n in per_set.values())
    for job in range(plan.n_jobs):
        assert plan.job_units(job)["file_id"].n_unique() <= files_per_job


@settings(max_examples=60)
@given(datasets(), st.integers(1, 7), st.booleans(), st.booleans())
def test_lumi_based_invariants(ds: Dataset, lumis_per_job: int, split_on_run: bool, halt: bool) -> None:
    plan = split(
        ds, "LumiBased", lumis_per_job=lumis_per_job, split_on_run=split_on_run, halt_on_file_boundaries=halt
    )
    check_lumi_plan_invariants(ds, plan)
    assert plan.jobs["n_units"].max() <= lumis_per_job
    for job in range(plan.n_jobs):
        units = plan.job_units(job)
        if split_on_run:
            assert units["run"].n_unique() == 1
        if halt:
            assert units["file_id"].n_unique() == 1
    if not split_on_run and not halt:
        locs = locations_of(ds)
        n_sets = len({locs[f] for f in ds.units["file_id"].to_list()})
        short = int((plan.jobs["n_units"] < lumis_per_job).sum())
        assert short <= n_sets, "only the last job of each location set may be short"


@settings(max_examples=60)
@given(datasets(), st.integers(1, 3000), st.booleans())
def test_event_aware_lumi_based_invariants(ds: Dataset, events_per_job: int, split_on_run: bool) -> None:
    plan = split(ds, "EventAwareLumiBased", events_per_job=events_per_job, split_on_run=split_on_run)
    check_lumi_plan_invariants(ds, plan)
    jobs = plan.jobs
    over = jobs.filter(pl.col("events") > events_per_job)
    assert (over["n_units"] == 1).all(), "only a single lumi larger than the target may exceed it"
    # Greedy: a job could not have taken the next lumi of the same run/location segment.
    assignment = plan.assignment
    for job in range(plan.n_jobs - 1):
        nxt = plan.job_units(job + 1)
        this = plan.job_units(job)
        same_segment = locations_of(ds)[this["file_id"][-1]] == locations_of(ds)[nxt["file_id"][0]]
        if split_on_run:
            same_segment &= this["run"][-1] == nxt["run"][0]
        if same_segment:
            assert this["events"].sum() + nxt["events"][0] > events_per_job
    assert (
        plan.assignment.tolist()
        == split(
            ds, "EventAwareLumiBased", events_per_job=events_per_job, split_on_run=split_on_run
        ).assignment.tolist()
    ), "deterministic"
    assert assignment.min() >= 0


@settings(max_examples=40)
@given(datasets(), st.integers(1, 400))
def test_event_based_covers_every_file_exactly(ds: Dataset, events_per_job: int) -> None:
    plan = split(ds, "EventBased", events_per_job=events_per_job)
    ranges = plan.event_ranges
    assert plan.n_jobs == ranges.height
    assert (ranges["n_events"] <= events_per_job).all()
    for fid, events in zip(ds.files["file_id"].to_list(), ds.files["events"].to_list(), strict=True):
        mine = ranges.filter(pl.col("file_id") == fid).sort("first_event")
        assert mine.height == max(math.ceil(events / events_per_job), 1)
        assert mine["n_events"].sum() == events
        expected_first = np.concatenate(([0], np.cumsum(mine["n_events"].to_numpy())[:-1]))
        assert mine["first_event"].to_list() == expected_first.tolist(), "ranges are contiguous"


def reference_event_aware(events: list[int], events_per_job: int) -> list[int]:
    """A plain per-lumi loop of the EventAwareLumiBased rule, for comparison."""
    jobs, current, total = [], -1, None
    for e in events:
        if total is None or total + e > events_per_job:
            current += 1
            total = 0
        total += e
        jobs.append(current)
    return jobs


def test_event_aware_on_real_dbs_listing_matches_reference() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    plan = split(ds, "EventAwareLumiBased", events_per_job=50_000)
    expected = reference_event_aware(ds.units["events"].to_list(), 50_000)
    assert plan.assignment.tolist() == expected
    check_lumi_plan_invariants(ds, plan)


def test_file_based_per_location_set_on_real_listing() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    # Put a third of the files at a second site: FileBased makes ceil(n/k) jobs per location set.
    files = ds.files.with_columns(
        pl.when(pl.col("file_id") % 3 == 0)
        .then(pl.lit(["T2_A"]))
        .otherwise(pl.lit(["T1_B"]))
        .alias("locations")
    )
    ds2 = Dataset(ds.units, files, name=ds.name)
    plan = split(ds2, "FileBased", files_per_job=7)
    assert plan.n_jobs == math.ceil(36 / 7) + math.ceil(72 / 7)
    check_lumi_plan_invariants(ds2, plan)


def test_lumi_based_exact_sizes_on_real_listing() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    plan = split(ds, "LumiBased", lumis_per_job=100)
    assert plan.n_jobs == math.ceil(7985 / 100)
    assert plan.jobs["n_units"].to_list() == [100] * 79 + [85]


def test_split_errors() -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    with pytest.raises(SplittingError, match="unknown algorithm 'Automagic'"):
        split(ds, "Automagic")
    with pytest.raises(SplittingError, match="LumiBased does not take events_per_job"):
        split(ds, "LumiBased", lumis_per_job=3, events_per_job=4)
    with pytest.raises(SplittingError, match="lumis_per_job must be a positive integer"):
        split(ds, "LumiBased", lumis_per_job=0)
    with pytest.raises(SplittingError, match="FileBased needs files_per_job"):
        split(ds, "FileBased")


def test_plan_json_round_trip(tmp_path) -> None:
    ds = Dataset.from_dbs_json(DBS_JSON, dataset=COSMICS_HI)
    plan = split(ds, "EventAwareLumiBased", events_per_job=40_000)
    path = tmp_path / "plan.json"
    plan.to_json(path)
    back = JobPlan.from_json(path)
    assert back.n_jobs == plan.n_jobs and (back.assignment == plan.assignment).all()
    assert back.jobs.equals(plan.jobs)
    assert back.job_mask(3) == plan.job_mask(3) and back.job_files(3) == plan.job_files(3)
    assert json.loads(path.read_text())["format"] == "autosplit-jobplan/1"
    events = split(ds, "EventBased", events_per_job=10_000)
    assert JobPlan.from_json(events.to_json()).event_ranges.equals(events.event_ranges)
    with pytest.raises(SplittingError, match="not an autosplit-jobplan/1 plan"):
        JobPlan.from_json('{"format": "other"}')


def test_split_cli(tmp_path) -> None:
    out = tmp_path / "plan.json"
    args = ["split", str(DBS_JSON), "--dataset", COSMICS_HI, "-a", "LumiBased", "--lumis-per-job", "100"]
    result = CliRunner().invoke(cli, [*args, "--json", "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["total_jobs"] == 80 and summary["max_lumis"] == 100 and summary["min_lumis"] == 85
    assert JobPlan.from_json(out).n_jobs == 80
    table = CliRunner().invoke(cli, args)
    assert table.exit_code == 0 and "Per job" in table.output
    wrong = CliRunner().invoke(cli, [*args[:-2], "--events-per-job", "5"])
    assert wrong.exit_code == 2 and "LumiBased needs --lumis-per-job" in wrong.output
