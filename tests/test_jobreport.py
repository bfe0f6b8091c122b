"""JobReport: the versioned JSON model of what a job did."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autosplit.datasets import LumiMask
from autosplit.jobreport import FORMAT, JobReport, JobReportError, OutputFile


def make(**kw) -> JobReport:
    fields = {
        "job_id": "job-1",
        "stage": "processing",
        "site": "T2_CH_CERN",
        "wall_seconds": 100.0,
        "cpu_seconds": 90.0,
        "init_seconds": 10.0,
        "units": [
            {"run": 1, "lumi": 1, "events": 100, "seconds": 40.0, "pileup": 30.5},
            {"run": 1, "lumi": 2, "events": 120, "seconds": 45.0, "pileup": 31.0, "bytes": 1000},
        ],
        "unfinished": [{"run": 1, "lumi": 3}],
        "outputs": [OutputFile(name="out.root", bytes=5000, checksum="adler32:0badf00d")],
        "peak_rss_bytes": 2_000_000_000,
    }
    fields.update(kw)
    return JobReport(**fields)


def test_defaults_and_format():
    report = JobReport(job_id="probe-1")
    assert report.format == FORMAT == "autosplit-jobreport/1"
    assert report.units == [] and report.outputs == [] and report.exit_code == 0
    assert report.total_events == 0 and report.processing_seconds is None and not report.has_unit_seconds


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("wall_seconds", -1.0, "wall_seconds must be a finite number >= 0"),
        ("cpu_seconds", math.nan, "cpu_seconds must be a finite number >= 0"),
        ("init_seconds", math.inf, "init_seconds must be a finite number >= 0"),
        ("peak_rss_bytes", -5, "peak_rss_bytes must be >= 0"),
        ("attempt", -1, "attempt must be >= 0"),
        ("threads", 0, "threads must be >= 1"),
        ("format", "autosplit-jobreport/2", "format 'autosplit-jobreport/2' is not supported"),
    ],
)
def test_invalid_job_fields_are_named(field, value, message):
    with pytest.raises(JobReportError, match=message):
        make(**{field: value})


@pytest.mark.parametrize(
    ("units", "message"),
    [
        ([{"run": 1, "lumi": 1, "seconds": -0.5}], r"units\[0\] \(run 1 lumi 1\): seconds must be finite"),
        ([{"run": 1, "lumi": 1, "seconds": math.nan}], r"run 1 lumi 1\): seconds must be finite"),
        ([{"run": 1, "lumi": 1, "events": -3}], "events must be an integer >= 0"),
        ([{"run": 1, "lumi": 1, "pileup": math.inf}], "feature 'pileup' = inf is not finite"),
        ([{"run": "1", "lumi": 1}], "needs integer 'run' and 'lumi'"),
        ([{"run": 1, "lumi": 1}, {"run": 1, "lumi": 1}], "run 1 lumi 1 is listed twice in units"),
        ([{"run": 1, "lumi": 1, "x": [1]}], "must be a number or a string"),
    ],
)
def test_invalid_units_name_the_unit(units, message):
    with pytest.raises(JobReportError, match=message):
        make(units=units, unfinished=[])


def test_unit_both_processed_and_unfinished_is_refused():
    with pytest.raises(JobReportError, match="run 1 lumi 2 is listed twice"):
        make(unfinished=[{"run": 1, "lumi": 2}])


def test_a_report_built_from_numpy_arrays_validates_and_writes_out_like_one_built_by_hand():
    run, lumi = np.array([1, 1, 1], np.int64), np.array([2, 3, 4], np.int32)
    report = JobReport(
        job_id="j-1",
        attempt=np.int64(1),
        wall_seconds=np.float64(30.5),
        events_read=np.int64(20),
        units=[
            {
                "run": run[0],
                "lumi": lumi[0],
                "events": np.int64(20),
                "seconds": np.float32(1.5),
                "pu": np.float64(30.0),
            }
        ],
        unfinished=[{"run": run[2], "lumi": lumi[2]}],
        in_progress={"run": run[1], "lumi": lumi[1], "seconds": np.float64(2.0)},
        outputs=[OutputFile(name="out.root", bytes=np.int64(100))],
    )
    again = JobReport.from_json(report.to_json())
    assert again == report
    assert type(again.units[0]["run"]) is int and type(report.units[0]["run"]) is int
    assert type(report.wall_seconds) is float and report.units[0]["seconds"] == 1.5
    assert report.in_progress_pair == (1, 3)
    with pytest.raises(JobReportError, match="integer 'run'"):
        JobReport(job_id="j-2", units=[{"run": np.float64(1.0), "lumi": 2}])
    with pytest.raises(JobReportError, match="attempt must be an integer"):
        JobReport(job_id="j-3", attempt=np.float64(1.0))  # would write a report from_json refuses
    failed = JobReport(
        job_id="j-4", exit_code=1, meta={"failed_unit": [run[0], lumi[0]]}, hard_killed=np.bool_(False)
    )
    assert failed.meta == {"failed_unit": [1, 2]} and failed.hard_killed is False
    assert JobReport.from_json(failed.to_json()) == failed


def test_json_round_trip_text_and_file(tmp_path):
    report = make(meta={"host": "node-7"})
    text = report.to_json()
    assert json.loads(text)["format"] == FORMAT
    assert JobReport.from_json(text) == report
    path = tmp_path / "report.json"
    assert report.to_json(path) == text
    assert JobReport.from_json(path) == report
    assert JobReport.from_json(path.read_bytes()) == report
    # Atomic write: only the final file is left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_to_json_leaves_nothing_when_the_directory_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError):
        make().to_json(tmp_path / "missing" / "report.json")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"format": "autosplit-jobreport/1", "job_id": "a", "wall_seconds": ', "not valid JSON"),
        (
            '{"format": "autosplit-jobreport/1", "job_id": "a", "wall_second": 3}',
            "unknown field `wall_second`",
        ),
        ('{"format": "autosplit-jobreport/1", "job_id": "a", "wall_seconds": -3}', "wall_seconds must be"),
        ('{"format": "autosplit-jobreport/1", "job_id": "a", "attempt": "x"}', r"Expected `int`.*attempt"),
        ('{"job_id": "a"}', "format None is not supported"),
        ('{"format": "autosplit-jobreport/9", "job_id": "a", "new": 1}', "autosplit-jobreport/9"),
        ("[1, 2]", "not valid JSON|expected a JSON object"),
    ],
)
def test_from_json_errors(text, message):
    with pytest.raises(JobReportError, match=message):
        JobReport.from_json(text if not text.startswith("[") else text.encode())


def test_from_json_names_the_file(tmp_path):
    path = tmp_path / "job-3.json"
    path.write_text('{"format": "autosplit-jobreport/1", "job_id": "job-3", "cpu_seconds": -1}')
    with pytest.raises(JobReportError, match=r"job-3\.json: .*cpu_seconds"):
        JobReport.from_json(path)
    with pytest.raises(JobReportError, match="no such job report file"):
        JobReport.from_json(tmp_path / "absent.json")


def test_validate_against_assignment_mask_and_pairs():
    report = make()
    mask = LumiMask({"1": [[1, 3]]})
    assert report.validate(mask) is report
    assert report.validate({(1, 1), (1, 2), (1, 3)}) is report
    with pytest.raises(JobReportError, match="processed unit run 1 lumi 2 was not assigned"):
        report.validate(LumiMask({"1": [[1, 1], [3, 3]]}))
    with pytest.raises(JobReportError, match="unfinished unit run 1 lumi 3 was not assigned"):
        report.validate([(1, 1), (1, 2)])


def test_unaccounted_units():
    report = make()
    assert report.unaccounted(LumiMask({"1": [[1, 5]]})) == [(1, 4), (1, 5)]
    assert report.unaccounted([(1, 1), (1, 3)]) == []


def test_convenience_views():
    report = make()
    runs, lumis = report.processed_pairs()
    assert runs.tolist() == [1, 1] and lumis.tolist() == [1, 2]
    assert report.processed_mask() == LumiMask({"1": [[1, 2]]})
    assert report.unfinished_mask() == LumiMask({"1": [[3, 3]]})
    assert report.total_events == 220
    assert report.has_unit_seconds and report.processing_seconds == pytest.approx(85.0)
    assert report.output_bytes == 5000 and report.ok
    table = report.units_table()
    assert table.columns == ["run", "lumi", "events", "seconds", "pileup", "bytes"]
    assert table["seconds"].to_list() == [40.0, 45.0]
    assert table["bytes"].to_list() == [None, 1000]
    assert table.schema["events"] == pl.Int64


def test_processing_seconds_fallbacks():
    job_level = make(units=[{"run": 1, "lumi": 1}], unfinished=[], events_read=10)
    assert job_level.total_events == 10 and not job_level.has_unit_seconds
    assert job_level.processing_seconds == pytest.approx(90.0)  # wall - init
    assert make(units=[{"run": 1, "lumi": 1}], unfinished=[], loop_seconds=70.0).processing_seconds == 70.0
    assert make(units=[{"run": 1, "lumi": 1}], unfinished=[]).total_events is None
    assert not make(hard_killed=True).ok and not make(exit_code=8001).ok


def test_in_progress_unit_is_a_censored_unfinished_unit(tmp_path):
    cut = {"run": 1, "lumi": 3, "seconds": 612.5, "events": 40}
    report = make(in_progress=cut, hard_killed=True)
    assert report.in_progress_pair == (1, 3) and report.censored_seconds == 612.5
    assert [u["lumi"] for u in report.unfinished] == [3], "listed once, as unfinished"
    assert report.processing_seconds == pytest.approx(85.0), "censored seconds are not processing seconds"
    # A document that does not list it in unfinished is read with it appended there.
    alone = make(unfinished=[], in_progress={"run": 1, "lumi": 4, "seconds": 3.0})
    assert alone.unfinished == [{"run": 1, "lumi": 4}]
    assert alone.unaccounted([(1, 1), (1, 2), (1, 4), (1, 5)]) == [(1, 5)]
    again = JobReport.from_json(alone.to_json())
    assert again == alone and again.in_progress == {"run": 1, "lumi": 4, "seconds": 3.0}
    path = tmp_path / "r.json"
    report.to_json(path)
    assert JobReport.from_json(path).in_progress == cut
    # Old reports (no field) read as before.
    old = '{"format": "autosplit-jobreport/1", "job_id": "a", "units": [{"run": 1, "lumi": 1}]}'
    assert JobReport.from_json(old).in_progress is None and JobReport.from_json(old).censored_seconds == 0.0


@pytest.mark.parametrize(
    ("in_progress", "message"),
    [
        ({"run": 1, "lumi": 3}, r"in_progress \(run 1 lumi 3\): seconds .* is required"),
        ({"run": 1, "lumi": 3, "seconds": -1.0}, r"in_progress \(run 1 lumi 3\): seconds must be finite"),
        ({"run": 1, "lumi": 3, "seconds": math.inf}, "seconds must be finite"),
        ({"run": 1, "lumi": 3, "seconds": "5"}, "seconds must be a number"),
        ({"run": 1, "lumi": 3, "seconds": 5.0, "events": -1}, "events must be an integer >= 0"),
        ({"run": 1, "lumi": 2, "seconds": 5.0}, "run 1 lumi 2 is both processed .* and in progress"),
        ({"lumi": 3, "seconds": 5.0}, r"in_progress needs integer 'run' and 'lumi'"),
        ([1, 3], "Expected `object | null`"),
    ],
)
def test_invalid_in_progress_is_named(in_progress, message):
    with pytest.raises(JobReportError, match=message):
        if isinstance(in_progress, list):
            JobReport.from_json(json.dumps({"format": FORMAT, "job_id": "a", "in_progress": in_progress}))
        else:
            make(in_progress=in_progress)


def test_validate_checks_the_in_progress_unit_was_assigned():
    report = make(unfinished=[], in_progress={"run": 1, "lumi": 3, "seconds": 9.0})
    assert report.validate([(1, 1), (1, 2), (1, 3)]) is report
    with pytest.raises(JobReportError, match="in-progress unit run 1 lumi 3 was not assigned"):
        report.validate(LumiMask({"1": [[1, 2]]}))
    # Even when a caller replaced the unfinished list after construction.
    report.unfinished = []
    with pytest.raises(JobReportError, match="in-progress unit run 1 lumi 3 was not assigned"):
        report.validate([(1, 1), (1, 2)])


def test_jobreport_module_stays_light():
    code = (
        "import sys, autosplit.jobreport as jr\n"
        "r = jr.JobReport.from_fjr_xml('tests/data/fjr/CMSSWPileup.xml')\n"
        "bad = [m for m in ('sklearn', 'scipy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=str(__import__("pathlib").Path(__file__).parents[1])
    )


unit_strategy = st.fixed_dictionaries(
    {"run": st.integers(1, 400000), "lumi": st.integers(1, 5000)},
    optional={
        "events": st.integers(0, 10**6),
        "seconds": st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
        "pileup": st.floats(0, 100, allow_nan=False),
        "tag": st.text(max_size=5),
    },
)


@given(
    units=st.lists(unit_strategy, max_size=20, unique_by=lambda u: (u["run"], u["lumi"])),
    wall=st.one_of(st.none(), st.floats(0, 1e7, allow_nan=False, allow_infinity=False)),
    rss=st.one_of(st.none(), st.integers(0, 2**40)),
)
def test_json_round_trip_property(units, wall, rss):
    report = JobReport(job_id="j", units=units, wall_seconds=wall, peak_rss_bytes=rss, soft_stopped=True)
    again = JobReport.from_json(report.to_json())
    assert again == report
    assert again.validate(LumiMask.from_pairs([u["run"] for u in units], [u["lumi"] for u in units])) is again
    assert np.array_equal(again.processed_pairs()[0], [u["run"] for u in units])
