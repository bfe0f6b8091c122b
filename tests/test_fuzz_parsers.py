"""Fuzzing every parser of outside input (issue 14): lumi masks (golden JSON and CMSSW range strings), DBS
listings, task TOML, job-report JSON, CMSSW framework job reports (XML), DAG files and submit descriptions.

The contract, for any input: a result, or the parser's own error class (an :class:`AutosplitError`) whose
message is one line (``"\\n" not in str(exc)``) and names the file -- never another exception, never a hang
(each example runs under a wall-clock alarm, :func:`bounded`), never a file written (reading a task TOML
creates nothing). Inputs mix structured documents (valid-ish, with mutated values: huge and negative
integers, floats, nan/inf, wrong types, deep nesting, unicode digits, control characters) with mutated
serialisations (truncated, spliced, byte-order marks, other encodings) and raw bytes.

Deterministic: ``derandomize=True`` and no example database, so CI runs the same examples every time; the
``@example`` lines are the inputs that broke a parser before its fix (one per bug, named in a comment).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from autosplit import Dataset, LumiMask
from autosplit.backends.local import DagParseError, SubmitError, find_cycle, parse_dag
from autosplit.backends.local.submit import build_job, parse_environment, split_arguments
from autosplit.datasets import load_mask
from autosplit.errors import AutosplitError, DatasetError, JobReportError, LumiMaskError
from autosplit.fjr import FJRError
from autosplit.jobreport import JobReport, read_fjr
from autosplit.pipeline.config import ConfigError, load_config

# AUTOSPLIT_FUZZ_EXAMPLES=5000 AUTOSPLIT_FUZZ_RANDOM=1 explores further (new random examples each run); CI
# runs the fixed, derandomized set.
FUZZ = settings(
    max_examples=int(os.environ.get("AUTOSPLIT_FUZZ_EXAMPLES", "200")),
    deadline=None,  # the wall-clock bound is bounded()'s alarm: hypothesis' deadline would flake on busy CI
    derandomize=not os.environ.get("AUTOSPLIT_FUZZ_RANDOM"),
    database=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
        HealthCheck.function_scoped_fixture,
    ],
)
SECONDS = 10.0  # per example; real examples take milliseconds
DEEP = 200_000


class Hang(BaseException):
    """An example outlived its alarm (BaseException: no parser's ``except Exception`` may swallow it)."""


@contextlib.contextmanager
def bounded(seconds: float = SECONDS) -> Iterator[None]:
    def ring(signum, frame):
        raise Hang(f"the parser ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def outcome(call: Callable[[], object], error: type[AutosplitError], origin: str | None = None) -> object:
    """``call()``'s result, or its ``error`` after checking the message: one line, naming ``origin``."""
    with bounded():
        try:
            return call()
        except error as exc:
            message = str(exc)
            assert isinstance(exc, AutosplitError)
            assert message and "\n" not in message, repr(message)
            if origin is not None:
                assert origin in message, (origin, message)
            return exc


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


# ------------------------------------------------------------------------------------------ strategies
INTS = st.one_of(
    st.integers(-3, 300),
    st.sampled_from([2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1, 2**32, 2**53, 2**53 + 1, 2**62, 2**63 - 1]),
    st.sampled_from([2**63, 2**64, -(2**63), -(2**64), 10**30]),
    st.integers(),
)
FLOATS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([0.5, 1e-300, 1e300]))
ODD_TEXT = st.sampled_from(
    ["", " ", "1", "٣", "١٢", "𝟙", "²", "1e3", "0x10", "-1", " 7 ", "NaN", "inf", "\n", "\x00", "a\nb", "ä"]
)
TEXT = st.one_of(ODD_TEXT, st.text(max_size=10))
SCALARS = st.one_of(st.none(), st.booleans(), INTS, FLOATS, TEXT)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)


WILD = st.one_of(INTS, FLOATS, TEXT, JSON)


def either(good: st.SearchStrategy, *others: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` values 85 % of the time, else one of ``others`` or anything JSON can hold."""
    odd = st.one_of(*others, JSON)
    return st.integers(0, 19).flatmap(lambda roll: good if roll < 17 else odd)


@st.composite
def tweaked(draw, valid: st.SearchStrategy, wild: dict[str, st.SearchStrategy], most: int = 2) -> dict:
    """A ``valid`` document with up to ``most`` of its keys replaced by ``wild`` values (or removed): deep
    enough into the document that the parser checks that key, unlike a document wrong everywhere."""
    doc = dict(draw(valid))
    for key in draw(st.lists(st.sampled_from(sorted(wild)), max_size=most, unique=True)):
        if key in doc and draw(st.integers(0, 4)) == 0:
            del doc[key]
        else:
            doc[key] = draw(wild[key])
    return doc


@st.composite
def garbled(draw, text: str) -> str:
    """``text`` as written, or damaged: truncated, a character spliced in, nested deeply, doubled."""
    how = draw(st.sampled_from(["keep"] * 5 + ["cut", "splice", "nest", "double", "bom"]))
    at = draw(st.integers(0, len(text)))
    if how == "cut":
        return text[:at]
    if how == "splice":
        return text[:at] + draw(st.sampled_from(list('{}[]",:\\\n\x00ÿ<>&$()') + ["٣", "1e999"])) + text[at:]
    if how == "nest":
        depth = draw(st.sampled_from([50, 999, 1000, 1001, 3000]))
        return "[" * depth + text + "]" * depth
    if how == "double":
        return text + text
    if how == "bom":
        return "\ufeff" + text
    return text


@st.composite
def encoded(draw, text: str) -> bytes:
    """``text`` as UTF-8 (mostly), another encoding, or raw bytes."""
    how = draw(st.sampled_from(["utf-8"] * 7 + ["utf-16", "latin-1", "raw"]))
    if how == "raw":
        return draw(st.binary(max_size=200))
    return text.encode(how, errors="replace")


def json_text(value: object) -> str:
    return json.dumps(value, allow_nan=True)


def write(work: Path, name: str, data: bytes) -> Path:
    path = work / name
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------------------------- masks
RUN_KEYS = st.one_of(st.integers(0, 400_000).map(str), INTS.map(str), TEXT)
RANGES = st.lists(
    st.tuples(st.integers(0, 5000), st.integers(0, 50)).map(lambda t: [t[0], t[0] + t[1]]),
    min_size=1,
    max_size=3,
)
VALID_MASK = st.dictionaries(st.integers(0, 400_000).map(str), RANGES, max_size=4)


@st.composite
def tweaked_mask(draw) -> dict:
    """A valid golden JSON with up to two odd spots: a run key, a ranges list, a pair, one number."""
    mask = draw(VALID_MASK)
    for _ in range(draw(st.integers(0, 2))):
        spot = draw(st.sampled_from(["key", "ranges", "pair", "number"]))
        if spot == "key" or not mask:
            mask[draw(RUN_KEYS)] = draw(RANGES)
            continue
        run = draw(st.sampled_from(sorted(mask)))
        if spot == "ranges":
            mask[run] = draw(WILD)
        elif spot == "pair" and isinstance(mask[run], list):
            mask[run].append(draw(st.one_of(WILD, st.lists(WILD, max_size=3))))
        elif isinstance(mask[run], list) and mask[run] and isinstance(mask[run][0], list):
            mask[run][0][draw(st.integers(0, 1))] = draw(WILD)
    return mask


MASKS = st.one_of(tweaked_mask(), tweaked_mask(), JSON)


@FUZZ
@given(document=MASKS.map(json_text).flatmap(garbled).flatmap(encoded))
@example(document=b"{\xff\xfe\x00\x80}")  # binary: UnicodeDecodeError before
@example(document=("[" * DEEP + "]" * DEEP).encode())  # deep nesting: RecursionError before
@example(document=('{"1": [[1, ' + "9" * 5000 + "]]}").encode())  # 5000 digits: ValueError (int limit)
@example(document=b'{"1": [[1, 18446744073709551616]]}')
def test_lumi_mask_json(work: Path, document: bytes) -> None:
    path = write(work, "mask.json", document)
    result = outcome(lambda: LumiMask.from_json(path), LumiMaskError, "mask.json")
    if isinstance(result, LumiMask):
        assert LumiMask(result.to_dict()) == result  # what was read is a valid mask


@FUZZ
@given(text=MASKS.map(json_text).flatmap(garbled))
def test_lumi_mask_json_text(text: str) -> None:
    outcome(lambda: LumiMask.from_json("{" + text), LumiMaskError, "JSON text")


CMSSW_ITEM = st.one_of(
    st.builds(lambda r, a, b: f"{r}:{a}-{r}:{b}", INTS, INTS, INTS),
    st.builds(lambda r, a: f"{r}:{a}", INTS, INTS),
    st.text(alphabet="0123456789:-, \t٣²x", max_size=20),
)


@FUZZ
@given(text=st.lists(CMSSW_ITEM, max_size=5).map(",".join))
@example(text=f"1:{2**64}")  # accepted as an out-of-range lumi before the range check
@example(text="1:1-1:" + "9" * 5000)  # ValueError: int() refuses 5000 digits
@example(text="١:٣")  # \d took Arabic-Indic digits
def test_lumi_mask_cmssw_ranges(text: str) -> None:
    result = outcome(lambda: LumiMask.from_cmssw(text), LumiMaskError)
    if isinstance(result, LumiMask):
        assert LumiMask.from_cmssw(result.to_cmssw()) == result


@FUZZ
@given(text=st.one_of(st.lists(CMSSW_ITEM, max_size=5).map(",".join), MASKS.map(json_text), TEXT))
@example(text="1:1-1:10," * 1000)  # found: OSError "File name too long" from the is-it-a-path check
@example(text="1:1\x00")
def test_mask_setting(text: str) -> None:
    """A task's ``mask`` setting: golden-JSON text, a path, or CMSSW ranges (``load_mask`` decides)."""
    outcome(lambda: load_mask(text), LumiMaskError)


# -------------------------------------------------------------------------------------------- listings
SITES = st.lists(st.sampled_from(["T2_CH_CERN", "T1_US_FNAL", "T2_DE_DESY"]), max_size=2)
VALID_RECORD = st.fixed_dictionaries(
    {"lfn": st.integers(0, 10**6).map("/store/f{}.root".format), "events": st.integers(0, 10_000)},
    optional={
        "size": st.integers(0, 10**9),
        "lumis": st.dictionaries(
            st.integers(1, 400_000).map(str), st.lists(st.integers(0, 100), max_size=4), max_size=3
        ),
        "block": st.just("/A/B/C#1"),
        "locations": SITES,
        "valid": st.sampled_from([0, 1, True, False]),
    },
)
RECORD_WILD = {
    "lfn": WILD,
    "events": WILD,
    "size": WILD,
    "lumis": st.one_of(
        WILD, st.dictionaries(RUN_KEYS, st.one_of(st.lists(WILD, max_size=3), WILD), max_size=2)
    ),
    "block": WILD,
    "locations": st.one_of(WILD, st.lists(SCALARS, max_size=3)),
    "location": WILD,
    "valid": WILD,
    "extra": WILD,
}
RECORDS = st.lists(st.one_of(VALID_RECORD, tweaked(VALID_RECORD, RECORD_WILD)), max_size=4)
LISTINGS = st.one_of(
    RECORDS,
    RECORDS,
    st.dictionaries(TEXT, RECORDS, max_size=2).map(lambda d: {"datasets": d}),
    JSON,
)


@FUZZ
@given(document=LISTINGS.map(json_text).flatmap(garbled).flatmap(encoded))
@example(document=json.dumps([{"lfn": "/a", "events": 1, "lumis": {"1": [1]}, "locations": 5}]).encode())
@example(document=json.dumps([{"lfn": "/a", "events": 1, "lumis": {"1": [2**64]}}]).encode())  # Overflow
@example(document=json.dumps([{"lfn": "/a", "events": 2**63, "lumis": {"1": [1]}}]).encode())  # TypeError
@example(  # -9223372036854775808 events per lumi
    document=json.dumps(
        [{"lfn": f"/{i}", "events": 2**63 - 1, "lumis": {"1": [i]}} for i in range(2)]
    ).encode()
)
@example(document=json.dumps([{"lfn": "/a", "events": 1, "lumis": {"9" * 30: [1]}}]).encode())  # Overflow
@example(document=json.dumps([{"lfn": "/a", "events": 1, "valid": "0"}]).encode())  # "0" counted as valid
@example(document=json.dumps({"datasets": {"x": []}, "y": 1}).encode())
@example(document=json.dumps([{"lfn": "/a", "events": 0, "location": 1}]).encode())  # found: TypeError
@example(document=json.dumps({"datasets": {"": [], "\n": []}}).encode())  # found: a two-line message
def test_dbs_listing(work: Path, document: bytes) -> None:
    path = write(work, "listing.json", document)
    result = outcome(lambda: Dataset.from_dbs_json(path), DatasetError, "listing.json")
    if isinstance(result, Dataset):  # what was read is consistent: each file's events spread over its lumis
        assert 0 <= result.n_events < 2**63 and (
            result.units.height == 0 or result.units["events"].min() >= 0
        )
        assert result.n_events <= int(result.files["events"].sum())


# ---------------------------------------------------------------------------------------- task TOML
def toml_value(value: object) -> str:
    """A TOML literal for ``value`` (JSON-like data): strings, numbers (inf/nan), booleans, arrays, tables."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string (\uXXXX escapes are TOML too)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value if v is not None) + "]"
    if isinstance(value, dict):
        return (
            "{"
            + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items() if v is not None)
            + "}"
        )
    return '""'


def toml_document(sections: dict) -> str:
    lines = []
    for section, keys in sections.items():
        if not isinstance(keys, dict):  # a section replaced by a plain value
            lines.append(f"{json.dumps(section)} = {toml_value(keys)}")
            continue
        lines.append(f"[{json.dumps(section)}]")
        lines.extend(
            f"{json.dumps(key)} = {toml_value(value)}" for key, value in keys.items() if value is not None
        )
    return "\n".join(lines) + "\n"


DURATION = st.one_of(
    st.sampled_from(["8h", "90m", "2h30m", "45s", "1s", "200h", "0s", " ", "1e3h", "1h1h", "-5m"]),
    FLOATS,
    INTS,
    TEXT,
)
VALID_SECTIONS = {
    "task": st.fixed_dictionaries(
        {"name": st.sampled_from(["dimuon", "t-1"])}, optional={"workdir": st.just("tasks")}
    ),
    "dataset": st.fixed_dictionaries(
        {"source": st.sampled_from(["data/*.root", "d.json", "d.parquet"])},
        optional={"mask": st.sampled_from(["1:1-1:10", "m.json"]), "features": st.just("f.csv")},
    ),
    "code": st.sampled_from([{"callable": "a:b"}, {"executable": ["run.sh", "--fast"]}]),
    "splitting": st.fixed_dictionaries(
        {},
        optional={
            "target_runtime": st.sampled_from(["8h", "2h30m", 3600]),
            "probe_seconds": st.sampled_from(["15m", 60]),
            "alpha": st.floats(0.001, 0.4),
            "probe_fraction": st.floats(0.001, 0.5),
            "max_tails": st.integers(0, 20),
            "slots": st.integers(1, 1000),
        },
    ),
    "limits": st.fixed_dictionaries(
        {}, optional={"grace_seconds": st.sampled_from(["60s", 0]), "memory_mb": st.integers(16, 64_000)}
    ),
    "output": st.fixed_dictionaries(
        {}, optional={"transfer_timeout": st.just("6h"), "stage_out": st.just("aso")}
    ),
    "backend": st.fixed_dictionaries({}, optional={"kind": st.just("local"), "max_jobs": st.integers(1, 64)}),
}
CONFIG_WILD = {
    "task": {"name": TEXT, "workdir": TEXT, "other": WILD},
    "dataset": {"source": st.one_of(WILD, st.lists(TEXT, max_size=2)), "mask": WILD, "tree": WILD},
    "code": {"callable": WILD, "executable": st.one_of(WILD, st.lists(TEXT, max_size=2)), "path": WILD},
    "splitting": {
        "target_runtime": DURATION,
        "probe_seconds": DURATION,
        "alpha": WILD,
        "probe_fraction": WILD,
        "rel_precision": WILD,
        "max_tails": WILD,
        "probes": WILD,
        "slots": WILD,
        "max_output_bytes": WILD,
        "max_files_per_job": WILD,
    },
    "limits": {
        "grace_seconds": DURATION,
        "memory_mb": WILD,
        "retries": WILD,
        "max_unit_failures": WILD,
        "abort_fraction": WILD,
        "abort_min_jobs": WILD,
    },
    "output": {
        "transfer_timeout": DURATION,
        "stage_out": WILD,
        "temp_budget_bytes": WILD,
        "destination": WILD,
    },
    "backend": {"kind": WILD, "max_jobs": WILD, "site": WILD},
}


@st.composite
def configs(draw) -> dict:
    """A valid task configuration with one or two sections tweaked (or dropped, or replaced whole)."""
    sections = {name: draw(strategy) for name, strategy in VALID_SECTIONS.items()}
    for name in draw(st.lists(st.sampled_from(sorted(CONFIG_WILD)), max_size=2, unique=True)):
        roll = draw(st.integers(0, 9))
        if roll == 0:
            del sections[name]
        elif roll == 1:
            sections[name] = draw(WILD)
        else:
            sections[name] = draw(tweaked(st.just(sections[name]), CONFIG_WILD[name]))
    return sections


CONFIGS = configs()


@FUZZ
@given(document=CONFIGS.map(toml_document).flatmap(garbled).flatmap(encoded))
@example(document=b'[task]\nname = "\xff"\n')  # binary: UnicodeDecodeError before
@example(document=b"[splitting]\ntarget_runtime = inf\n")  # accepted before, broke later
@example(document=("[task]\nx = " + "[" * DEEP + "]" * DEEP + "\n").encode())  # RecursionError
@example(document=("[limits]\nretries = " + "9" * 5000 + "\n").encode())  # ValueError (int digits)
def test_task_toml(work: Path, document: bytes) -> None:
    folder = work / "config"
    folder.mkdir(exist_ok=True)
    path = write(folder, "task.toml", document)
    outcome(lambda: load_config(path), ConfigError, "task.toml")
    assert [p.name for p in folder.iterdir()] == ["task.toml"]  # reading a task creates nothing


# --------------------------------------------------------------------------------------- job reports
VALID_UNIT = st.fixed_dictionaries(
    {"run": st.integers(1, 400_000), "lumi": st.integers(1, 5000)},
    optional={"events": st.integers(0, 1000), "seconds": st.floats(0, 1e4), "pileup": st.floats(0, 80)},
)
UNIT_WILD = {"run": WILD, "lumi": WILD, "events": WILD, "seconds": WILD, "pileup": WILD, "site": WILD}
UNITS = st.lists(st.one_of(VALID_UNIT, VALID_UNIT, tweaked(VALID_UNIT, UNIT_WILD)), max_size=4)
VALID_REPORT = st.fixed_dictionaries(
    {"format": st.just("autosplit-jobreport/1"), "job_id": st.sampled_from(["job-1", "probe-2"])},
    optional={
        "attempt": st.integers(0, 3),
        "exit_code": st.integers(0, 3),
        "wall_seconds": st.floats(0, 1e5),
        "events_read": st.integers(0, 10**6),
        "threads": st.integers(1, 8),
        "units": UNITS,
        "outputs": st.lists(
            st.fixed_dictionaries({"name": st.just("out.root")}, optional={"bytes": st.integers(0, 10**9)}),
            max_size=2,
        ),
        "meta": st.dictionaries(st.text(max_size=5), SCALARS, max_size=3),
        "soft_stopped": st.booleans(),
    },
)
REPORT_WILD = {
    key: WILD
    for key in (
        "format",
        "job_id",
        "stage",
        "attempt",
        "site",
        "exit_code",
        "wall_seconds",
        "cpu_seconds",
        "loop_seconds",
    )
}
REPORT_WILD |= {
    key: WILD for key in ("threads", "events_read", "peak_rss_bytes", "meta", "soft_stopped", "extra")
}
REPORT_WILD |= {"units": st.one_of(WILD, UNITS), "unfinished": st.one_of(WILD, UNITS), "outputs": WILD}
REPORTS = st.one_of(
    VALID_REPORT, tweaked(VALID_REPORT, REPORT_WILD), tweaked(VALID_REPORT, REPORT_WILD), JSON
)
NESTED_REPORT = (
    '{"format": "autosplit-jobreport/1", "job_id": "j", "meta": ' + '{"a":' * DEEP + "1" + "}" * DEEP + "}"
)


@FUZZ
@given(document=REPORTS.map(json_text).flatmap(garbled).flatmap(encoded))
@example(document=NESTED_REPORT.encode())  # RecursionError, not a JobReportError
@example(document=("[" * DEEP + "]" * DEEP).encode())
@example(document=b'{"format": "autosplit-jobreport/1", "job_id": "j", "units": [{"run": 1, "lumi": -1}]}')
def test_job_report_json(work: Path, document: bytes) -> None:
    outcome(lambda: JobReport.from_json(document), JobReportError)
    path = write(work, "report.json", document)
    result = outcome(lambda: JobReport.from_json(path), JobReportError, "report.json")
    if isinstance(result, JobReport):
        assert JobReport.from_json(result.to_json()) == result


# ------------------------------------------------------------------------------ framework job reports
def attr(value: object) -> str:
    return quoteattr(str(value))


LUMI_XML = st.builds(
    lambda i, n: f"<LumiSection ID={attr(i)}" + (f" NEvents={attr(n)}" if n is not None else "") + "/>",
    either(st.integers(0, 50), INTS, TEXT),
    st.none() | either(st.integers(0, 50), INTS, TEXT),
)
RUN_XML = st.builds(
    lambda i, lumis: f"<Run ID={attr(i)}>{''.join(lumis)}</Run>",
    either(st.integers(1, 9), INTS, TEXT),
    st.lists(LUMI_XML, max_size=4),
)
INPUT_XML = st.builds(
    lambda kind, read, runs: (
        f"<InputFile><InputType>{kind}</InputType><EventsRead>{read}</EventsRead>"
        f"<Runs>{''.join(runs)}</Runs></InputFile>"
    ),
    st.sampled_from(["primaryFiles", "mixingFiles", "secondaryFiles", ""]),
    either(st.integers(0, 100), INTS, TEXT),
    st.lists(RUN_XML, max_size=3),
)
METRIC_XML = st.builds(
    lambda name, value: f"<Metric Name={attr(name)} Value={attr(value)}/>",
    st.sampled_from(
        [
            "TotalJobTime",
            "TotalJobCPU",
            "TotalLoopTime",
            "TotalInitTime",
            "EventThroughput",
            "NumberOfThreads",
        ]
        + ["NumberOfStreams", "PeakValueRss", "NumberEvents", "MinEventTime", "CPUModels"]
    ),
    either(st.sampled_from(["100", "-nan", "inf", "1e+06", "0", "3.5"]), FLOATS, INTS, TEXT),
)
SUMMARY_XML = st.builds(
    lambda kind, metrics: (
        f"<PerformanceReport><PerformanceSummary Metric={attr(kind)}>{''.join(metrics)}"
        "</PerformanceSummary></PerformanceReport>"
    ),
    st.sampled_from(["Timing", "ApplicationMemory", "ProcessingSummary", "SystemCPU"]),
    st.lists(METRIC_XML, max_size=5),
)
ERROR_XML = st.builds(
    lambda status, text: f'<FrameworkError ExitStatus={attr(status)} Type="X">{text}</FrameworkError>',
    either(st.integers(0, 9000), INTS, TEXT),
    st.sampled_from(["boom", "", "<b>nested</b> text", "&amp;"]),
)
FILE_XML = st.builds(
    lambda lfn, size: f"<File><LFN>{lfn}</LFN><PFN>out.root</PFN><Size>{size}</Size></File>",
    st.sampled_from(["/store/out.root", "", "&lt;x&gt;"]),
    either(st.integers(0, 10**9), INTS, TEXT),
)
DTDS = [
    "",
    "",
    "",
    "<!DOCTYPE FrameworkJobReport>",
    '<!DOCTYPE r [<!ENTITY a "aaaa">]>',
    "<?xml version='1.0'?>",
]
FJRS = st.builds(
    lambda head, root, parts: f"{head}<{root}>{''.join(parts)}</{root}>",
    st.sampled_from(DTDS),
    st.sampled_from(["FrameworkJobReport", "FrameworkJobReport", "Other"]),
    st.lists(
        st.one_of(INPUT_XML, SUMMARY_XML, ERROR_XML, FILE_XML, st.sampled_from(["<x/>", "&lt;", "text"])),
        max_size=6,
    ),
)
LAUGHS = (
    '<!DOCTYPE FrameworkJobReport [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    "<FrameworkJobReport>&b;</FrameworkJobReport>"
)


@FUZZ
@given(document=FJRS.flatmap(garbled).flatmap(encoded))
@example(document=LAUGHS.encode())  # DTDs and entity declarations are refused
@example(document=b"<FrameworkJobReport><File><LFN>x</LFN><Size>\xc2\xb2</Size></File></FrameworkJobReport>")
@example(  # NEvents "²" passed isdigit() and failed int()
    document='<FrameworkJobReport><InputFile><Runs><Run ID="1"><LumiSection ID="1" NEvents="²"/></Run></Runs>'
    "</InputFile></FrameworkJobReport>".encode()
)
@example(  # a lumi ID beyond 64 bits must not overflow the arrays the stream reader keeps
    document=f'<FrameworkJobReport><InputFile><Runs><Run ID="1"><LumiSection ID="{2**70}"/></Run></Runs>'
    "</InputFile></FrameworkJobReport>".encode()
)
def test_framework_job_report_xml(work: Path, document: bytes) -> None:
    path = write(work, "fjr.xml", document)
    result = outcome(lambda: read_fjr(path), FJRError, "fjr.xml")
    if isinstance(result, JobReport):
        assert all(0 <= u["lumi"] < 2**32 for u in result.units)


# ------------------------------------------------------------------------------------------- DAG files
NAMES = st.one_of(st.sampled_from(["A", "B", "C", "all_nodes", "PARENT", "a+b", "x:y", "N-1"]), TEXT)
WORDS = st.one_of(
    NAMES,
    st.sampled_from(["job.sub", "inner.dag", "-1", "9" * 30, "UNLESS-EXIT", "DIR", "NOOP", "x" * 300]),
)
DAG_LINE = st.one_of(
    st.builds(lambda n, s, o: f"JOB {n} {s} {o}", NAMES, st.sampled_from(["job.sub", "missing.sub"]), WORDS),
    st.builds(
        lambda p, c: f"PARENT {' '.join(p)} CHILD {' '.join(c)}",
        st.lists(NAMES, max_size=3),
        st.lists(NAMES, max_size=3),
    ),
    st.builds(
        lambda k, n, a: f"SCRIPT {k} {n} {a}",
        st.sampled_from(["PRE", "POST", "HOLD", "DEFER 4 x PRE"]),
        NAMES,
        WORDS,
    ),
    st.builds(lambda n, v: f"RETRY {n} {v}", NAMES, WORDS),
    st.builds(lambda n, k, v: f'VARS {n} {k}="{v}"', NAMES, TEXT, TEXT),
    st.builds(
        lambda *w: " ".join(w),
        st.sampled_from(
            [
                "PRIORITY",
                "CATEGORY",
                "MAXJOBS",
                "ABORT-DAG-ON",
                "PRE_SKIP",
                "DONE",
                "SPLICE",
                "INCLUDE",
                "CONFIG",
                "NODE_STATUS_FILE",
                "SUBDAG EXTERNAL",
                "REJECT",
                "DOT",
                "CONNECT",
                "PIN_IN",
                "ENV SET",
                "FINAL",
                "SUBMIT-DESCRIPTION",
            ]
        ),
        WORDS,
        WORDS,
    ),
    st.sampled_from(
        [
            "JOB I {",
            "executable = /bin/true",
            "}",
            "# comment",
            "",
            "JOB K @=T",
            "@T",
            "line \\",
            "SERVICE S s.sub",
        ]
    ),
    TEXT,
)


@FUZZ
@given(document=st.lists(DAG_LINE, max_size=12).map("\n".join).flatmap(garbled).flatmap(encoded))
@example(document=b"JOB A job.sub\n\xff\xfe\x00\x81\n")  # binary: UnicodeDecodeError before
@example(document=b"JOB A job.sub\nJOB B job.sub\nPARENT A CHILD B\nPARENT B CHILD A\n")
@example(document=b"INCLUDE fuzz.dag\n")  # includes itself
@example(document=b"SPLICE S " + b"x" * 300 + b"\n")  # found: OSError "File name too long"
def test_dag_file(work: Path, document: bytes) -> None:
    folder = work / "dag"
    folder.mkdir(exist_ok=True)
    (folder / "job.sub").write_text("executable = /bin/true\nqueue\n")
    (folder / "inner.dag").write_text("JOB X job.sub\n")
    path = write(folder, "fuzz.dag", document)
    result = outcome(lambda: parse_dag(path), DagParseError, "fuzz.dag")
    if not isinstance(result, DagParseError):
        cycle = find_cycle(result)
        if cycle:
            where = result.cycle_location(cycle)
            assert where is not None and where.line > 0  # a cycle is reported at a PARENT line, not line 0


# ----------------------------------------------------------------------------------- submit descriptions
MACRO_TEXT = st.one_of(
    st.sampled_from(
        [
            "$(X)",
            "$(X:dflt)",
            "$(undefined)",
            "$((1+1))",
            "$(cat n.txt || echo 0)",
            "$(X",
            "$()",
            "$(DOLLAR)",
            "$ENV(HOME)",
            "$ENV(NOPE:z)",
            "$CHOICE(1,a,b)",
            "$CHOICE(9,a)",
            "$RANDOM_INTEGER(1,2)",
            "$Fp(x)",
            "$$([1 + 1])",
            "$$(Memory)",
            "$(Process)",
            "'quoted arg'",
            '""',
            "\\",
            "a=b;c=d",
            "$(A:$(X))",
        ]
    ),
    st.text(alphabet="$()[]:,'\" \\abcXYZ019_.=/", max_size=20),
    st.integers(250, 5000).map(lambda n: "x" * n),  # longer than a file name may be
    TEXT,
)
SUBMIT_LINE = st.one_of(
    st.builds(
        lambda k, v: f"{k} = {v}",
        st.sampled_from(
            [
                "executable",
                "arguments",
                "environment",
                "env",
                "getenv",
                "input",
                "output",
                "error",
                "log",
                "initialdir",
                "universe",
                "kill_sig",
                "job_max_vacate_time",
                "log_xml",
                "+Attr",
                "My.x",
                "X",
                "A",
                "hold",
                "request_memory",
            ]
        ),
        st.lists(MACRO_TEXT, max_size=4).map(" ".join),
    ),
    st.sampled_from(
        [
            "queue",
            "queue 2",
            "queue X in (a, b)",
            "queue X from items.txt",
            "queue 0",
            "if x",
            "queue 3 X in (p q)",
        ]
    ),
    TEXT,
)


@FUZZ
@given(lines=st.lists(SUBMIT_LINE, max_size=8))
@example(lines=["executable = /bin/sh", "arguments = \"-c 'echo $(cat n.txt || echo 0) $((1+1))'\"", "queue"])
@example(lines=["executable = exe", "A = $(B)", "B = $(A)", "arguments = $(A)", "queue"])  # circular
@example(lines=["executable = " + "x" * 300, "queue"])  # found: OSError "File name too long"
@example(lines=["executable = exe", 'arguments = "unterminated \'quote"', "queue"])
def test_submit_description(work: Path, lines: list[str]) -> None:
    folder = work / "submit"
    folder.mkdir(exist_ok=True)
    (folder / "exe").write_text("#!/bin/sh\n")
    (folder / "exe").chmod(0o755)
    (folder / "items.txt").write_text("one\ntwo\n")
    text = "executable = exe\n" + "\n".join(lines) + "\n"

    def build():
        return build_job(
            text,
            "fuzz.sub",
            submit_dir=folder,
            cluster=3,
            prepend={"X": "5"},
            append={},
            base_env={"HOME": "/h"},
            dag_attributes={"DAGNodeName": '"N"'},
        )

    result = outcome(build, SubmitError, "fuzz.sub")
    if not isinstance(result, SubmitError):
        assert all(p.argv and p.argv[0].endswith(("exe", "sh")) for p in result.procs)


@FUZZ
@given(value=MACRO_TEXT | st.text(max_size=30))
def test_arguments_and_environment_syntax(value: str) -> None:
    outcome(lambda: split_arguments(value), SubmitError)
    outcome(lambda: parse_environment(value), SubmitError)
