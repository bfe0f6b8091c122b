"""Job side: unit iteration, soft deadline, SIGTERM, failures, the columnar ROOT helper, outputs."""

from __future__ import annotations

import json
import os
import signal
import zlib

import numpy as np
import pytest

from autosplit.jobreport import JobReport
from autosplit.worker import EXIT_USER_ERROR, FileUnits, Job, JobSpec, JobSpecError
from tests.conftest import ROOT_DIR

TTBAR = ROOT_DIR / "nanoAOD_2015_CMS_Open_Data_ttbar.root"
TTBAR_LUMIS = {2272915: 34, 2272916: 45, 2272917: 22, 2272918: 43, 2272919: 45, 2272920: 11}


class FakeClock:
    """A clock the test advances by hand (seconds)."""

    def __init__(self, start: float = 1_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def make_spec(tmp_path, n_units: int = 5, **fields) -> JobSpec:
    units = [
        {"run": 1, "lumi": lumi, "events": 10 * lumi, "pileup": 30.0 + lumi} for lumi in range(1, n_units + 1)
    ]
    return JobSpec(
        task="t",
        job_id="job-1",
        stage="processing",
        output_dir=str(tmp_path / "out"),
        files=[FileUnits(lfn="/store/a.root", units=units)],
        **fields,
    )


def test_all_units_processed_and_timed(tmp_path) -> None:
    clock = FakeClock()
    spec = make_spec(tmp_path)
    with Job(spec, tmp_path / "report.json", clock=clock) as job:
        for unit in job.iter_units():
            clock.now += unit.lumi  # unit k takes k seconds
    report = JobReport.from_json(tmp_path / "report.json")
    assert report.exit_code == 0 and not report.soft_stopped and report.unfinished == []
    assert [u["seconds"] for u in report.units] == [1.0, 2.0, 3.0, 4.0, 5.0]
    assert [u["events"] for u in report.units] == [10, 20, 30, 40, 50]
    assert report.units[0]["pileup"] == 31.0, "unit features travel into the report"
    assert report.loop_seconds == 15.0
    assert not (tmp_path / "report.json.progress").exists(), "journal removed once the report is written"


def test_soft_deadline_stops_at_unit_boundary(tmp_path) -> None:
    clock = FakeClock()
    spec = make_spec(tmp_path, n_units=10, soft_limit_seconds=25.0)
    with Job(spec, tmp_path / "r.json", clock=clock) as job:
        for _ in job.iter_units():
            clock.now += 10.0
    report = JobReport.from_json(tmp_path / "r.json")
    assert report.soft_stopped and report.exit_code == 0
    assert [u["lumi"] for u in report.units] == [1, 2, 3], "units started before the deadline finish"
    assert [u["lumi"] for u in report.unfinished] == list(range(4, 11))


def test_absolute_deadline_in_the_past_still_makes_progress(tmp_path) -> None:
    clock = FakeClock(5_000.0)
    spec = make_spec(tmp_path, soft_deadline=4_000.0)
    with Job(spec, tmp_path / "r.json", clock=clock) as job:
        processed = [unit.lumi for unit in job.iter_units()]
    assert processed == [1], "one unit per job even when it starts after its deadline"


def test_sigterm_stops_at_next_boundary(tmp_path) -> None:
    spec = make_spec(tmp_path, n_units=6)
    with Job(spec, tmp_path / "r.json") as job:
        for unit in job.iter_units():
            if unit.lumi == 2:
                os.kill(os.getpid(), signal.SIGTERM)
    report = JobReport.from_json(tmp_path / "r.json")
    assert [u["lumi"] for u in report.units] == [1, 2]
    assert report.soft_stopped
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def test_exception_reports_failure_and_keeps_finished_units(tmp_path) -> None:
    spec = make_spec(tmp_path)
    with pytest.raises(RuntimeError), Job(spec, tmp_path / "r.json") as job:
        for unit in job.iter_units():
            if unit.lumi == 3:
                raise RuntimeError("corrupt lumi 3")
    report = JobReport.from_json(tmp_path / "r.json")
    assert report.exit_code == EXIT_USER_ERROR and "corrupt lumi 3" in report.exit_message
    assert [u["lumi"] for u in report.units] == [1, 2]
    assert [u["lumi"] for u in report.unfinished] == [3, 4, 5], "the unit in progress is not counted done"
    assert report.meta["failed_unit"] == [1, 3], "the unit being processed is named as the culprit"


def test_journal_records_units_as_they_start_and_finish(tmp_path) -> None:
    clock = FakeClock()
    spec = make_spec(tmp_path)
    job = Job(spec, tmp_path / "r.json", clock=clock)
    units = job.iter_units()
    next(units)
    clock.now += 4.0
    next(units)  # unit 1 is done now, unit 2 in progress
    records = [json.loads(line) for line in (tmp_path / "r.json.progress").read_text().splitlines()]
    finished = [r for r in records if "run" in r]
    starts = [r for r in records if "start" in r]
    assert [(r["lumi"], r["seconds"]) for r in finished] == [(1, 4.0)]
    assert starts == [
        {"start": {"run": 1, "lumi": 1}, "at": 1000.0, "before": 0.0},
        {"start": {"run": 1, "lumi": 2}, "at": 1004.0, "before": 0.0},
    ], "the last start without its end is the unit in progress"


def test_unit_abandoned_on_stop_is_reported_in_progress(tmp_path) -> None:
    clock = FakeClock()
    spec = make_spec(tmp_path, n_units=4)
    with Job(spec, tmp_path / "r.json", clock=clock) as job:
        for unit in job.iter_units():
            clock.now += 2.0
            if unit.lumi == 3:
                clock.now += 30.0  # a long unit; the code gives up on it when asked to stop
                break
    report = JobReport.from_json(tmp_path / "r.json")
    assert [u["lumi"] for u in report.units] == [1, 2]
    assert report.in_progress == {"run": 1, "lumi": 3, "seconds": 32.0, "events": None}
    assert [u["lumi"] for u in report.unfinished] == [3, 4] and report.censored_seconds == 32.0
    # A unit the code raised on is the failed unit, not a censored measurement.
    with pytest.raises(RuntimeError), Job(spec, tmp_path / "f.json", clock=clock) as job:
        for unit in job.iter_units():
            clock.now += 2.0
            if unit.lumi == 2:
                raise RuntimeError("bad lumi")
    failed = JobReport.from_json(tmp_path / "f.json")
    assert failed.in_progress is None and failed.meta["failed_unit"] == [1, 2]


def test_outputs_checksummed_and_confined(tmp_path) -> None:
    spec = make_spec(tmp_path)
    with Job(spec, tmp_path / "r.json") as job:
        out = job.output_path("hist.npy")
        np.save(out, np.arange(10))
        job.add_output(out)
        with pytest.raises(JobSpecError):
            job.output_path("../escape.npy")
        with pytest.raises(JobSpecError):
            job.output_path("/etc/passwd")
    report = JobReport.from_json(tmp_path / "r.json")
    data = out.read_bytes()
    assert report.outputs[0].bytes == len(data)
    assert report.outputs[0].checksum == f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def root_spec(tmp_path, files: dict[str, list[int]]) -> JobSpec:
    by_lumi: dict[int, list[str]] = {}
    for lfn, lumis in files.items():
        for lumi in lumis:
            by_lumi.setdefault(lumi, []).append(lfn)
    grouped: dict[str, list[dict]] = {}
    for lumi, lfns in by_lumi.items():
        grouped.setdefault(lfns[0], []).append(
            {"run": 1, "lumi": lumi, "events": TTBAR_LUMIS[lumi], "files": sorted(lfns)}
        )
    return JobSpec(
        task="t",
        job_id="job-2",
        output_dir=str(tmp_path / "out"),
        files=[FileUnits(lfn=lfn, units=units) for lfn, units in grouped.items()],
    )


def test_iter_lumis_selects_each_lumis_events_from_real_nanoaod(tmp_path) -> None:
    pytest.importorskip("uproot")
    spec = root_spec(tmp_path, {str(TTBAR): [2272916, 2272918, 2272920]})
    seen = {}
    with Job(spec, tmp_path / "r.json") as job:
        for unit, arrays in job.iter_lumis(["event", "nMuon"]):
            assert (arrays["luminosityBlock"] == unit.lumi).all()
            seen[unit.lumi] = len(arrays["event"])
    assert seen == {2272916: 45, 2272918: 43, 2272920: 11}
    report = JobReport.from_json(tmp_path / "r.json")
    assert sorted(u["events"] for u in report.units) == [11, 43, 45]


def test_iter_lumis_lumi_spanning_two_files_counts_once(tmp_path) -> None:
    uproot = pytest.importorskip("uproot")
    arrays = uproot.open(TTBAR)["Events"].arrays(["run", "luminosityBlock", "event"], library="np")
    paths = []
    for name, sl in (("a.root", slice(0, 50)), ("b.root", slice(50, None))):  # cuts lumi 2272916
        with uproot.recreate(tmp_path / name) as out:
            out["Events"] = {k: v[sl] for k, v in arrays.items()}
        paths.append(str(tmp_path / name))
    spec = root_spec(tmp_path, {paths[0]: [2272915, 2272916], paths[1]: [2272916, 2272917]})
    parts = []
    with Job(spec, tmp_path / "r.json") as job:
        for unit, arr in job.iter_lumis(["event"]):
            parts.append((unit.lumi, len(arr["event"])))
    assert sorted(parts) == [(2272915, 34), (2272916, 16), (2272916, 29), (2272917, 22)]
    report = JobReport.from_json(tmp_path / "r.json")
    assert {u["lumi"]: u["events"] for u in report.units} == {2272915: 34, 2272916: 45, 2272917: 22}
    # Stopped in the lumi's second part: in progress, with the seconds of both parts.
    clock = FakeClock()
    with Job(spec, tmp_path / "s.json", clock=clock) as job:
        seen_parts = 0
        for unit, _ in job.iter_lumis(["event"]):
            clock.now += 3.0
            seen_parts += unit.lumi == 2272916
            if seen_parts == 2:
                break
    stopped = JobReport.from_json(tmp_path / "s.json")
    assert stopped.in_progress == {"run": 1, "lumi": 2272916, "seconds": 6.0, "events": None}


def test_iter_lumis_soft_stop_between_parts_of_a_lumi_finishes_that_lumi(tmp_path) -> None:
    """Defect 2 of issue 14: a soft stop after the first file's part of a lumi spanning two files left that
    part's events in the job's output while the lumi went back to pending (processed again: counted twice).
    The loop now finishes the lumi's other parts, and only those, before it stops."""
    uproot = pytest.importorskip("uproot")
    arrays = uproot.open(TTBAR)["Events"].arrays(["run", "luminosityBlock", "event"], library="np")
    paths = []
    for name, sl in (("a.root", slice(0, 50)), ("b.root", slice(50, None))):  # cuts lumi 2272916
        with uproot.recreate(tmp_path / name) as out:
            out["Events"] = {k: v[sl] for k, v in arrays.items()}
        paths.append(str(tmp_path / name))
    spec = root_spec(tmp_path, {paths[0]: [2272915, 2272916], paths[1]: [2272916, 2272917, 2272918]})
    spec.soft_limit_seconds = 5.0  # passes during 2272916's first part
    clock = FakeClock()
    yielded: dict[int, int] = {}
    with Job(spec, tmp_path / "r.json", clock=clock) as job:
        for unit, arr in job.iter_lumis(["event"]):
            clock.now += 3.0
            yielded[unit.lumi] = yielded.get(unit.lumi, 0) + len(arr["event"])
    report = JobReport.from_json(tmp_path / "r.json")
    assert report.soft_stopped
    reported = {u["lumi"]: u["events"] for u in report.units}
    assert reported == yielded == {2272915: 34, 2272916: 45}, (
        "what the output holds is what the report counts"
    )
    assert {u["lumi"] for u in report.unfinished} == {2272917, 2272918}
    assert report.in_progress is None


def test_spec_validation(tmp_path) -> None:
    path = tmp_path / "spec.json"
    path.write_text('{"format": "something-else"}')
    with pytest.raises(JobSpecError, match="not an autosplit-jobspec/1"):
        JobSpec.read(path)
    spec = make_spec(tmp_path)
    spec.files[0].units.append({"run": 1, "lumi": 1})
    with pytest.raises(JobSpecError, match="listed twice"):
        spec.check()
    with pytest.raises(JobSpecError, match="no such job spec"):
        JobSpec.read(tmp_path / "missing.json")
