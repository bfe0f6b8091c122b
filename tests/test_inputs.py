"""Bad input files give the project's own one-line errors naming the file (issue 14, item 5 and the inputs
of items 7-10): never a traceback from another exception class, a hang, or a partial result.

Each test here fails without its fix: binary files (UnicodeDecodeError before), deeply nested JSON
(RecursionError), wrong types in a DBS listing (TypeError), numbers beyond 64 bits (OverflowError, or an
events count printed as -9223372036854775808), a junk ledger (sqlite3.DatabaseError), FIFOs (a hang), a
truncated ROOT file (accepted), a DAG cycle reported at line 0.
"""

from __future__ import annotations

import json
import os
import random
import threading
from pathlib import Path

import pytest

from autosplit import Dataset, LumiMask
from autosplit.backends.local import DagParseError, parse_dag, run_dag
from autosplit.errors import AutosplitError, DatasetError, JobReportError, LumiMaskError
from autosplit.fjr import FJRError
from autosplit.jobreport import JobReport, read_fjr
from autosplit.ledger import Ledger, LedgerError
from autosplit.pipeline.config import ConfigError, load_config
from tests.conftest import DATA

DEEP = 200_000
TASK = '[task]\nname = "t"\n[dataset]\nsource = "d.json"\n[code]\ncallable = "a:b"\n'


def one_line_error(error: type[Exception], call, *names: str) -> str:
    """Run ``call``; it must raise ``error`` with a one-line message holding every one of ``names``."""
    with pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert isinstance(info.value, AutosplitError) and "\n" not in message, message
    for name in names:
        assert name in message, (name, message)
    return message


# ------------------------------------------------------------------------------------------- binary files
BINARY = b"{\xff\xfe\x00\x80 not text"


@pytest.mark.parametrize(
    ("reader", "error"),
    [
        (LumiMask.from_json, LumiMaskError),
        (Dataset.from_dbs_json, DatasetError),
        (load_config, ConfigError),
        (JobReport.from_json, JobReportError),
        (parse_dag, DagParseError),
    ],
    ids=["mask", "listing", "config", "report", "dag"],
)
def test_binary_file_is_named_not_a_unicode_traceback(tmp_path: Path, reader, error) -> None:
    path = tmp_path / "binary.in"
    path.write_bytes(BINARY)
    message = one_line_error(error, lambda: reader(path), str(path))
    if error is not JobReportError:  # a report is JSON bytes: "not valid JSON" says it
        assert "not a text file" in message and "0xff" in message


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"1": [[1, 3]]}')
    assert LumiMask.from_json(path).n_lumis == 3


# ----------------------------------------------------------------------------------------- deep nesting
def test_deeply_nested_json_mask_listing_and_report(tmp_path: Path) -> None:
    arrays = tmp_path / "deep.json"
    arrays.write_text("[" * DEEP + "]" * DEEP)
    in_object = tmp_path / "deep_object.json"
    in_object.write_text('{"1": ' + "[" * DEEP + "]" * DEEP + "}")
    one_line_error(LumiMaskError, lambda: LumiMask.from_json(arrays), "deep.json", "nested too deeply")
    one_line_error(LumiMaskError, lambda: LumiMask.from_json(in_object), "deep_object.json")
    one_line_error(DatasetError, lambda: Dataset.from_dbs_json(arrays), "deep.json", "nested too deeply")
    report = tmp_path / "report.json"
    report.write_text(
        '{"format": "autosplit-jobreport/1", "job_id": "j", "meta": '
        + '{"a":' * DEEP
        + "1"
        + "}" * DEEP
        + "}"
    )
    one_line_error(JobReportError, lambda: JobReport.from_json(report), "report.json", "nested too deeply")
    one_line_error(JobReportError, lambda: JobReport.from_json(arrays), "deep.json")


def test_deeply_nested_toml(tmp_path: Path) -> None:
    path = tmp_path / "task.toml"
    path.write_text(TASK + "[limits]\nx = " + "[" * DEEP + "]" * DEEP + "\n")
    one_line_error(ConfigError, lambda: load_config(path), "task.toml", "not valid TOML")


def test_integer_with_thousands_of_digits(tmp_path: Path) -> None:
    mask = tmp_path / "digits.json"
    mask.write_text('{"1": [[1, ' + "9" * 5000 + "]]}")
    one_line_error(LumiMaskError, lambda: LumiMask.from_json(mask), "digits.json", "too many digits")
    task = tmp_path / "task.toml"
    task.write_text(TASK + "[limits]\nretries = " + "9" * 5000 + "\n")
    one_line_error(ConfigError, lambda: load_config(task), "task.toml", "too many digits")


# ------------------------------------------------------------------------------- wrong types in a listing
GOOD = {"lfn": "/store/a.root", "events": 10, "size": 100, "lumis": {"1": [1, 2]}}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"locations": 5}, "field 'locations' must be a list of site names"),
        ({"locations": [1, {"a": 2}]}, "field 'locations' must be a list of site names"),
        ({"location": {"T2": 1}}, "field 'location' must be a list of site names"),
        ({"block": ["x"]}, "field 'block' must be a string"),
        ({"valid": "0"}, "field 'valid' must be 1, 0, true or false"),
        ({"lfn": 7}, "field 'lfn' must be a string"),
        ({"lfn": " "}, "field 'lfn' is empty"),
        ({"events": 1.5}, "field 'events' must be a non-negative integer"),
        ({"events": None}, "field 'events' must be a non-negative integer"),
        ({"size": "100"}, "field 'size' must be a non-negative integer"),
        ({"lumis": [[1, 2]]}, "field 'lumis' must be a JSON object"),
        ({"lumis": {"1": "1,2"}}, "run 1: lumis must be a list of integers"),
        ({"lumis": {"1": [True]}}, "run 1: lumis must be a list of integers"),
    ],
)
def test_wrong_types_anywhere_in_a_listing(tmp_path: Path, change: dict, fragment: str) -> None:
    path = tmp_path / "listing.json"
    path.write_text(json.dumps([{**GOOD, **change}]))
    one_line_error(DatasetError, lambda: Dataset.from_dbs_json(path), "listing.json", fragment)


def test_listing_with_good_optional_fields_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "listing.json"
    records = [{**GOOD, "locations": "T2_CH_CERN", "block": None, "valid": True}, {**GOOD, "lfn": "/b"}]
    path.write_text(json.dumps(records))
    ds = Dataset.from_dbs_json(path)
    located = dict(zip(ds.files["lfn"].to_list(), ds.files["locations"].to_list(), strict=True))
    assert located == {"/store/a.root": ["T2_CH_CERN"], "/b": []}


# ------------------------------------------------------------------------------------ beyond 64 bits
def test_lumi_and_run_numbers_beyond_64_bits(tmp_path: Path) -> None:
    listing = tmp_path / "lumis.json"
    listing.write_text(json.dumps([{**GOOD, "lumis": {"1": [2**64]}}]))
    one_line_error(DatasetError, lambda: Dataset.from_dbs_json(listing), "lumis.json", "run 1: lumis")
    runs = tmp_path / "runs.json"
    runs.write_text(json.dumps([{**GOOD, "lumis": {str(2**64): [1]}}]))
    one_line_error(DatasetError, lambda: Dataset.from_dbs_json(runs), "runs.json", "outside 0..2147483647")
    mask = tmp_path / "mask.json"
    mask.write_text(f'{{"1": [[1, {2**64}]]}}')
    one_line_error(LumiMaskError, lambda: LumiMask.from_json(mask), "mask.json", "exceeds the largest lumi")
    for text in (f"1:{2**64}", f"{2**64}:1", f"1:1-1:{'9' * 5000}"):
        one_line_error(LumiMaskError, lambda t=text: LumiMask.from_cmssw(t), "out of range")


@pytest.mark.parametrize(
    "records",
    [
        [{**GOOD, "events": 2**63}],
        [{**GOOD, "size": 2**64}],
        # each fits in int64, their per-lumi spread and sum did not: "events=-9223372036854775808"
        [{**GOOD, "events": 2**63 - 1}, {**GOOD, "lfn": "/b", "events": 2**63 - 1}],
    ],
    ids=["events 2^63", "size 2^64", "two files of 2^63-1 events"],
)
def test_event_counts_beyond_64_bits(tmp_path: Path, records: list) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps(records))
    message = one_line_error(DatasetError, lambda: Dataset.from_dbs_json(path), "events.json", "at most")
    assert "-9223372036854775808" not in message


def test_totals_beyond_int64_are_refused(tmp_path: Path) -> None:
    big = 2**53 - 1
    records = [{**GOOD, "lfn": f"/f{i}", "events": big, "lumis": {"1": [i]}} for i in range(600)]
    path = tmp_path / "many.json"
    path.write_text(json.dumps(records))
    one_line_error(DatasetError, lambda: Dataset.from_dbs_json(path), "many.json", "in total")


# ----------------------------------------------------------------------------------------- junk ledger
@pytest.mark.parametrize(
    "junk",
    [random.Random(14).randbytes(4096), b"", b"SQLite format 2\x00" + bytes(100)],
    ids=["random bytes", "empty", "other header"],
)
def test_junk_ledger_is_not_a_ledger_and_is_left_untouched(tmp_path: Path, junk: bytes) -> None:
    path = tmp_path / "ledger.sqlite"
    path.write_bytes(junk)
    one_line_error(LedgerError, lambda: Ledger.open(path), "ledger.sqlite", "not a ledger")
    assert path.read_bytes() == junk
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ledger.sqlite"]  # no -wal / -shm left behind


# ---------------------------------------------------------------------------------- FIFOs never hang
def _without_hanging(fifo: Path, call) -> BaseException | None:
    """Run ``call`` in a thread; if it blocks (opened the FIFO and waits for a writer), unblock it and fail."""
    box: dict[str, BaseException] = {}

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # gives the blocked reader its end of file
        os.close(fd)
        thread.join(10)
        pytest.fail(f"reading the FIFO {fifo} blocked")
    return box.get("error")


@pytest.mark.parametrize(
    ("reader", "error"),
    [
        (LumiMask.from_json, LumiMaskError),
        (Dataset.from_dbs_json, DatasetError),
        (load_config, ConfigError),
        (JobReport.from_json, JobReportError),
        (read_fjr, FJRError),
        (parse_dag, DagParseError),
        (Dataset.from_root, DatasetError),
        (Dataset.from_parquet, DatasetError),
    ],
    ids=["mask", "listing", "config", "report", "fjr", "dag", "root", "parquet"],
)
def test_fifo_is_refused_before_it_is_opened(tmp_path: Path, reader, error) -> None:
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    exc = _without_hanging(fifo, lambda: reader(fifo))
    assert isinstance(exc, error) and "\n" not in str(exc), exc
    assert "input.fifo" in str(exc) and "FIFO" in str(exc), exc


def test_directory_is_named_as_such(tmp_path: Path) -> None:
    one_line_error(LumiMaskError, lambda: LumiMask.from_json(tmp_path), "is a directory")


# ------------------------------------------------------------------------------- truncated ROOT files
@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99, 0.999])
def test_truncated_root_file_is_refused_at_submit(tmp_path: Path, fraction: float) -> None:
    data = (DATA / "root" / "nano_dimuon.root").read_bytes()
    path = tmp_path / "cut.root"
    path.write_bytes(data[: int(len(data) * fraction)])
    message = one_line_error(DatasetError, lambda: Dataset.from_root(path), "cut.root", "truncated ROOT file")
    assert f"{path.stat().st_size} bytes" in message and str(len(data)) in message


def test_whole_root_files_still_read() -> None:
    ds = Dataset.from_root(DATA / "root" / "nano_dimuon.root")
    assert ds.n_units > 0 and ds.n_events == 40


# ---------------------------------------------------------------------------------------- DAG inputs
def test_dag_cycle_names_the_line_of_an_edge_in_it(tmp_path: Path) -> None:
    (tmp_path / "a.sub").write_text("executable = /bin/true\nqueue\n")
    dag = tmp_path / "c.dag"
    dag.write_text(
        "JOB A a.sub\nJOB B a.sub\nJOB C a.sub\nJOB D a.sub\n"
        "PARENT A CHILD B\nPARENT D CHILD A\nPARENT B CHILD C\n# the next line closes A -> B -> C -> A\n"
        "PARENT C CHILD A\n"
    )
    message = one_line_error(DagParseError, lambda: run_dag(dag, handle_signals=False), "c.dag:9: PARENT")
    assert "A -> B -> C -> A" in message or "B -> C -> A -> B" in message or "C -> A -> B -> C" in message


def test_dag_cycle_through_a_splice_names_the_parent_file_line(tmp_path: Path) -> None:
    (tmp_path / "a.sub").write_text("executable = /bin/true\nqueue\n")
    (tmp_path / "inner.dag").write_text("JOB X a.sub\nJOB Y a.sub\nPARENT X CHILD Y\n")
    dag = tmp_path / "outer.dag"
    dag.write_text("SPLICE S inner.dag\nJOB Z a.sub\nPARENT S CHILD Z\nPARENT Z CHILD S\n")
    one_line_error(DagParseError, lambda: run_dag(dag, handle_signals=False), "outer.dag:4: PARENT")


def test_binary_include_and_config_files_name_the_including_line(tmp_path: Path) -> None:
    (tmp_path / "bin.inc").write_bytes(BINARY)
    dag = tmp_path / "i.dag"
    dag.write_text("JOB A a.sub\nINCLUDE bin.inc\n")
    one_line_error(DagParseError, lambda: parse_dag(dag), "i.dag:2: INCLUDE", "bin.inc", "not a text file")
    (tmp_path / "bin.config").write_bytes(BINARY)
    dag.write_text("JOB A a.sub\nCONFIG bin.config\n")
    one_line_error(DagParseError, lambda: parse_dag(dag), "i.dag:2: CONFIG", "bin.config", "not a text file")
