"""CMSSW framework job report (FJR XML) parsing, on the real reports in tests/data/fjr."""

from __future__ import annotations

import pytest

from autosplit.datasets import LumiMask
from autosplit.jobreport import FJRError, JobReport, read_fjr
from tests.conftest import DATA

FJR = DATA / "fjr"
MIB = 1024 * 1024


def test_truncated_report_is_refused_with_a_reason():
    with pytest.raises(
        FJRError, match=r"CMSSWFailReport2\.xml: not a complete XML document \(no element found"
    ):
        read_fjr(FJR / "CMSSWFailReport2.xml")
    with pytest.raises(FJRError, match="truncated"):
        JobReport.from_fjr_xml(FJR / "CMSSWFailReport2.xml")


def test_multithreaded_report_uses_loop_time_not_avg_event_time():
    report = read_fjr(FJR / "CMSSWJobReportXrdSiteStatistics.xml", site="T2_CH_CERN", stage="probe")
    assert report.threads == 2 and report.meta["streams"] == 2
    assert report.wall_seconds == pytest.approx(153.001)
    assert report.init_seconds == pytest.approx(73.9733)
    # TotalLoopTime already excludes init here (job = init + loop), so it is used as is.
    assert report.loop_seconds == pytest.approx(78.9568)
    assert "loop_included_init" not in report.meta
    assert report.events_read == 3 and report.total_events == 3
    assert report.meta["seconds_per_event"] == pytest.approx(78.9568 / 3)
    # AvgEventTime (per-stream latency, 34.1 s) is kept only as information.
    assert report.meta["avg_event_time"] == pytest.approx(34.1318)
    assert report.meta["seconds_per_event"] < report.meta["avg_event_time"]
    assert report.cpu_seconds == pytest.approx(155.483)
    assert report.peak_rss_bytes == round(3331.98 * MIB)
    assert [(u["run"], u["lumi"]) for u in report.units] == [(1, 2)]
    assert report.units[0]["events"] is None  # input lumis carry no per-lumi counts
    assert report.processing_seconds == pytest.approx(78.9568) and not report.has_unit_seconds
    assert [o.name for o in report.outputs] == ["file:step2.root"]
    assert report.site == "T2_CH_CERN" and report.stage == "probe" and report.exit_code == 0


def test_zero_event_merge_report_placeholders_are_missing_values():
    report = read_fjr(FJR / "CMSSWMergeReport2.xml")
    assert report.events_read == 0
    assert "min_event_time" not in report.meta  # MinEventTime = 1e+06 placeholder
    assert "avg_event_time" not in report.meta and "event_throughput" not in report.meta
    assert report.peak_rss_bytes is None  # PeakValueRss 0 next to -nan growth rates: never sampled
    assert len(report.units) == 118 and {u["run"] for u in report.units} == {352572}
    assert report.loop_seconds == pytest.approx(25.3236)
    assert report.outputs[0].name.endswith("/Merged.root")


def test_old_report_without_loop_time_uses_throughput_and_primary_files_only():
    report = read_fjr(FJR / "CMSSWPileup.xml")
    # Pile-up (mixingFiles) inputs read 20608-event files; only the primary file's 813 events count.
    assert report.events_read == 813
    assert [(u["run"], u["lumi"]) for u in report.units] == [(1, 1), (1, 2), (1, 3), (1, 4)]
    assert report.init_seconds is None
    assert report.meta["loop_from_throughput"] is True
    assert report.loop_seconds == pytest.approx(813 / 0.0540636)
    assert report.wall_seconds == pytest.approx(15040.2)
    assert report.meta["cpu_model"] == "AMD Opteron(tm) Processor 6168"


def test_report_without_timing_has_missing_times():
    report = read_fjr(FJR / "CMSSWWithEventCounts.xml", job_id="job-7")
    assert report.job_id == "job-7"
    assert report.wall_seconds is None and report.loop_seconds is None and report.processing_seconds is None
    assert report.events_read == 2 and len(report.outputs) == 2
    assert [(u["run"], u["lumi"]) for u in report.units] == [(122023, 215)]


def test_framework_error_gives_the_exit_code(tmp_path):
    # The real failure report is truncated; closing its root element makes it well-formed.
    text = (FJR / "CMSSWFailReport2.xml").read_text() + "</FrameworkJobReport>\n"
    path = tmp_path / "closed.xml"
    path.write_text(text)
    report = read_fjr(path)
    assert report.exit_code == 8001 and not report.ok
    assert report.exit_message.startswith("CMSException:")
    assert 'No "SiStripFedCablingRcd" record found' in report.exit_message


def _fjr(timing: str, lumis: str = '<LumiSection ID="1"/><LumiSection ID="2"/>') -> str:
    return f"""<FrameworkJobReport>
<InputFile><InputType>primaryFiles</InputType><EventsRead>100</EventsRead>
<Runs><Run ID="5">{lumis}</Run></Runs></InputFile>
<PerformanceReport><PerformanceSummary Metric="Timing">{timing}</PerformanceSummary></PerformanceReport>
</FrameworkJobReport>"""


def _metric(name: str, value: str) -> str:
    return f'<Metric Name="{name}" Value="{value}"/>'


def test_inf_and_nan_values_are_missing(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text(
        _fjr(
            _metric("TotalJobTime", "inf")
            + _metric("TotalLoopTime", "-nan")
            + _metric("EventThroughput", "nan")
        )
    )
    report = read_fjr(path)
    assert (
        report.wall_seconds is None and report.loop_seconds is None and "event_throughput" not in report.meta
    )


def test_loop_time_that_contains_init_is_corrected(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text(
        _fjr(
            _metric("TotalJobTime", "1000")
            + _metric("TotalInitTime", "200")
            + _metric("TotalLoopTime", "990")
        )
    )
    report = read_fjr(path)
    assert report.meta["loop_included_init"] is True
    assert report.loop_seconds == pytest.approx(790.0)


def test_assignment_gives_unfinished_and_catches_foreign_lumis(tmp_path):
    path = tmp_path / "r.xml"
    path.write_text(_fjr(_metric("TotalJobTime", "50")))
    report = read_fjr(path, assignment=LumiMask({"5": [[1, 4]]}))
    assert [(u["run"], u["lumi"]) for u in report.unfinished] == [(5, 3), (5, 4)]
    with pytest.raises(FJRError, match="processed unit run 5 lumi 2 was not assigned"):
        read_fjr(path, assignment=[(5, 1)])


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("<Other/>", "root element is <Other>"),
        (_fjr("", '<LumiSection ID="x"/>'), "LumiSection> with ID 'x'"),
        (_fjr("").replace("<EventsRead>100", "<EventsRead>ten"), "<EventsRead> is 'ten'"),
        (_fjr(_metric("TotalJobTime", "-5")), "wall_seconds must be a finite number >= 0"),
    ],
)
def test_untrustworthy_reports_are_refused(tmp_path, body, message):
    path = tmp_path / "bad.xml"
    path.write_text(body)
    with pytest.raises(FJRError, match=message):
        read_fjr(path)


def test_missing_file():
    with pytest.raises(FJRError, match="no such framework job report"):
        read_fjr(FJR / "absent.xml")


# ------------------------------------------------------------------------------- streaming, DTDs, memory
LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE FrameworkJobReport [
 <!ENTITY a "aaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
]>
<FrameworkJobReport><FrameworkError ExitStatus="8001" Type="X">&c;</FrameworkError></FrameworkJobReport>
"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (LAUGHS, "document type declaration"),
        ('<!DOCTYPE r SYSTEM "file:///etc/passwd"><FrameworkJobReport/>', "document type declaration"),
        ("<FrameworkJobReport>&undefined;</FrameworkJobReport>", "undefined entity"),
        ("<FrameworkJobReport><InputFile>" * 3, "no element found"),
        ("", "no element found"),
    ],
    ids=["entity expansion", "external DTD", "undefined entity", "truncated", "empty"],
)
def test_dtds_entities_and_broken_documents_are_refused(tmp_path, body, message):
    path = tmp_path / "evil.xml"
    path.write_text(body)
    with pytest.raises(FJRError, match=message) as err:
        read_fjr(path)
    assert "\n" not in str(err.value) and "evil.xml" in str(err.value)


def _many_inputs(n_files: int, lumis: int, branches: int) -> str:
    """A large FJR: every input file with many <Branch> lines (as real ones have) and a few lumis."""
    parts = ["<FrameworkJobReport>\n"]
    for f in range(n_files):
        parts.append(f"<InputFile><LFN>/store/f{f}.root</LFN><Branches>\n")
        parts.extend(f"  <Branch>recoTracks_generalTracks_{b}__RECO.</Branch>\n" for b in range(branches))
        kind = "mixingFiles" if f % 5 == 4 else "primaryFiles"
        parts.append(f"</Branches><InputType>{kind}</InputType><EventsRead>{lumis}</EventsRead><Runs>")
        parts.append(f'<Run ID="{1000 + f // 10}">')
        parts.extend(f'<LumiSection ID="{f % 10 * lumis + lu + 1}" NEvents="1"/>' for lu in range(lumis))
        parts.append("</Run></Runs></InputFile>\n")
    parts.append('<PerformanceReport><PerformanceSummary Metric="Timing">')
    parts.append('<Metric Name="TotalJobTime" Value="100"/></PerformanceSummary></PerformanceReport>\n')
    parts.append("</FrameworkJobReport>\n")
    return "".join(parts)


def test_large_report_is_streamed_not_held_as_a_tree(tmp_path):
    """Memory follows what the report says (units), not the file: the old tree-building parser peaked at
    more than five times this file's size (1.7 GB for a real 51 MB report); the stream stays below it."""
    import tracemalloc

    path = tmp_path / "big.xml"
    path.write_text(_many_inputs(n_files=600, lumis=10, branches=200))
    size = path.stat().st_size
    assert size > 6_000_000
    tracemalloc.start()
    try:
        report = read_fjr(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.75 * size, (peak, size)
    primary = [f for f in range(600) if f % 5 != 4]
    assert len(report.units) == len(primary) * 10 and report.events_read == len(primary) * 10
    assert report.units[0] == {"run": 1000, "lumi": 1, "events": 1} and report.wall_seconds == 100.0


def test_lumi_read_from_two_files_is_one_unit_with_summed_events(tmp_path):
    path = tmp_path / "split.xml"
    infile = (
        '<InputFile><InputType>primaryFiles</InputType><EventsRead>{n}</EventsRead><Runs><Run ID="7">'
        '<LumiSection ID="3" NEvents="{n}"/>{extra}</Run></Runs></InputFile>'
    )
    path.write_text(
        "<FrameworkJobReport>"
        + infile.format(n=4, extra="")
        + infile.format(n=6, extra='<LumiSection ID="4"/>')
        + "</FrameworkJobReport>"
    )
    report = read_fjr(path)
    assert report.units == [{"run": 7, "lumi": 3, "events": 10}, {"run": 7, "lumi": 4, "events": None}]
    assert report.events_read == 10
