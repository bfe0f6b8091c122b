"""Read CMSSW framework job reports (FJR XML): the fields of a :class:`~autosplit.jobreport.JobReport`.

:func:`fjr_fields` parses the XML into the report's fields; :meth:`JobReport.from_fjr_xml
<autosplit.jobreport.JobReport.from_fjr_xml>` (and :func:`~autosplit.jobreport.read_fjr`) builds and checks
the report from them. This module uses only the standard library and does not import the report, so the
report format can read FJRs without an import cycle.

What is read, and from where (the FJR layout written by CMSSW's ``JobReport`` service):

* processed units: ``InputFile/Runs/Run[@ID]/LumiSection[@ID]`` of the *primary* input files (``InputType``
  ``primaryFiles`` or absent; pile-up ``mixingFiles`` and ``secondaryFiles`` are ignored). A lumi read from
  several files is one unit. Per-lumi events exist only when the input lumi carries ``NEvents``.
* events: the sum of ``EventsRead`` over the primary input files (``events_read``), else the
  ``ProcessingSummary`` ``NumberEvents``.
* timing (``PerformanceSummary Metric="Timing"``): ``TotalJobTime`` -> ``wall_seconds``, ``TotalJobCPU`` ->
  ``cpu_seconds``, ``TotalInitTime`` -> ``init_seconds``, ``TotalLoopTime`` -> ``loop_seconds``,
  ``NumberOfThreads`` -> ``threads``; ``EventThroughput``, ``AvgEventTime``, ``MinEventTime`` and
  ``MaxEventTime`` go to ``meta``.
* memory: ``ApplicationMemory`` ``PeakValueRss`` (MiB) -> ``peak_rss_bytes``.
* exit code: the first non-zero ``FrameworkError/@ExitStatus``; its ``Type`` and text -> ``exit_message``.
* outputs: the ``File`` elements (output modules), by LFN (or PFN when the LFN is empty).

Traps handled (all present in real reports):

* a truncated or malformed XML file is refused with :class:`FJRError` and the parser's reason; nothing is
  half-read;
* a document type declaration (``<!DOCTYPE``, the only place entities can be declared) is refused, so
  entity-expansion attacks ("billion laughs") and external entities never reach the reader;
* large reports (tens of MB: thousands of input files and lumis) are read as a stream of parser events,
  keeping only the values above, never the document tree: memory grows with the lumis reported, not with
  the file.
* ``inf``, ``-nan`` and ``nan`` metric values are missing values;
* ``MinEventTime = 1e+06`` is the Timing service's initial value, left when a job saw no event: dropped,
  as are ``AvgEventTime``/``MaxEventTime``/``EventThroughput`` of 0-event jobs; ``PeakValueRss = 0`` means
  memory was never sampled and is dropped too;
* multithreaded jobs: ``AvgEventTime`` is the mean per-*stream* latency of an event, which over-counts the
  job's wall time per event by up to the number of streams. The wall seconds per event of the job is the
  event-loop time over the events, ``loop_seconds / events`` (stored in ``meta["seconds_per_event"]``).
  Current CMSSW measures ``TotalLoopTime`` from the end of initialisation, so init is already excluded
  (the real 2-thread report here has ``TotalJobTime`` = 153.0 s ~= ``TotalInitTime`` 74.0 s +
  ``TotalLoopTime`` 79.0 s). When a report's loop time plainly contains the init time
  (``loop + init > job``), init is subtracted from it.
* old reports without ``TotalLoopTime`` get ``loop_seconds = events / EventThroughput`` (the Timing service
  defines the throughput as events over loop time).

No per-unit times exist in an FJR: the report carries job-level timing only and the cost models fit it as
such.
"""

from __future__ import annotations

import math
import os
from array import array
from pathlib import Path
from typing import Any
from xml.parsers import expat

from autosplit._io import require_regular_file, short_repr
from autosplit.errors import JobReportError

MIN_EVENT_TIME_PLACEHOLDER = 1.0e6  # Timing service's initial min_events_time_ (seconds)
_MIB = 1024 * 1024
_NOT_PRIMARY = {"mixingFiles", "secondaryFiles"}


class FJRError(JobReportError):
    """A CMSSW framework job report cannot be trusted (malformed, truncated, inconsistent)."""


def _number(text: str | None) -> float | None:
    """A metric value as a finite float; ``inf``/``nan``/garbage -> ``None``."""
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _int_text(text: str, tag: str, where: str, path: Path) -> int | None:
    """``<tag>`` text of a count: None when empty, else a non-negative integer (FJRError otherwise)."""
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise FJRError(f"{path}: {where} <{tag}> is {short_repr(text)}, not an integer") from None
    if value < 0:
        raise FJRError(f"{path}: {where} <{tag}> is negative ({value})")
    return value


_ID_LIMIT = 2**62  # IDs and counts beyond this are not CMS numbers (and would not fit the arrays below)


def _id(value: str | None) -> int | None:
    """An ``ID`` attribute as an int, None when it is not one (or absurdly large)."""
    if value is None or len(value) > 24:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if -_ID_LIMIT < number < _ID_LIMIT else None


def _count(value: str | None) -> int:
    """A ``NEvents`` attribute: the count, or -1 when absent or not a plain non-negative integer."""
    if not value:
        return -1
    value = value.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        return -1
    return int(value)


class _InputFile:
    """What one ``InputFile`` says, gathered while it streams by (its type may come after its runs)."""

    __slots__ = ("index", "kind", "events_read", "run", "runs", "lumis", "events", "bad_id")

    def __init__(self, index: int) -> None:
        self.index = index
        self.kind: str | None = None  # InputType text (first one)
        self.events_read: str | None = None  # EventsRead text (first one)
        self.run: int | None = None  # the <Run> being read
        self.runs = array("q")  # one entry per LumiSection: run, lumi, events (-1: unknown)
        self.lumis = array("q")
        self.events = array("q")
        self.bad_id: str | None = None  # first malformed Run/LumiSection ID (an error if the file is primary)


class _Reader:
    """expat handlers that keep only what :func:`fjr_fields` returns (no element tree is built)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stack: list[str] = []
        # Text of a leaf element being collected: ElementTree's .text, the character data before its first
        # child element. (what it is, its depth); text_open turns False at the first child.
        self.text: list[str] | None = None
        self.text_for: tuple[str, int] | None = None
        self.text_open = False
        self.infile: _InputFile | None = None
        self.n_infiles = 0
        self.primary: list[_InputFile] = []
        self.metrics: dict[str, dict[str, float | None]] = {}
        self.summary: str | None = None  # Metric attribute of the open PerformanceSummary
        self.cpu_model: str | None = None
        self.cpu_model_seen = False
        self.exit_code = 0
        self.exit_message = ""
        self.error_kind: str | None = None  # Type of the failing FrameworkError
        self.outputs: list[dict[str, Any]] = []
        self.file_fields: dict[str, str] | None = None  # LFN/PFN/Size of the open output <File>

    # ---------------------------------------------------------------- expat callbacks
    def doctype(self, name: str, *_: Any) -> None:
        raise FJRError(
            f"{self.path}: has a document type declaration (<!DOCTYPE {name}>); a CMSSW job report has "
            "none, and entity declarations are refused"
        )

    def entity(self, name: str, *_: Any) -> None:
        raise FJRError(f"{self.path}: declares an XML entity ({name}); entity declarations are refused")

    def start(self, tag: str, attrs: dict[str, str]) -> None:
        depth = len(self.stack)
        self.stack.append(tag)
        self.text_open = False  # the collected element's text ends at its first child element
        if depth == 0:
            if tag != "FrameworkJobReport":
                raise FJRError(f"{self.path}: root element is <{tag}>, expected <FrameworkJobReport>")
            return
        infile = self.infile
        if depth == 1 and tag == "InputFile":
            self.n_infiles += 1
            self.infile = _InputFile(self.n_infiles)
        elif infile is not None:
            if depth == 2 and tag in ("InputType", "EventsRead"):
                self._collect(tag, depth)
            elif tag == "Run":
                infile.run = _id(attrs.get("ID"))
                if infile.run is None and infile.bad_id is None:
                    infile.bad_id = f"has a <Run> with ID {short_repr(attrs.get('ID'))}"
            elif tag == "LumiSection" and "Run" in self.stack[2:-1]:
                lumi = _id(attrs.get("ID"))
                if lumi is None or infile.run is None:
                    if lumi is None and infile.bad_id is None:
                        infile.bad_id = (
                            f"run {infile.run} has a <LumiSection> with ID {short_repr(attrs.get('ID'))}"
                        )
                    return
                infile.runs.append(infile.run)
                infile.lumis.append(lumi)
                infile.events.append(_count(attrs.get("NEvents")))
        if tag == "PerformanceSummary":
            self.summary = attrs.get("Metric")
        elif tag == "Metric" and self.summary is not None:
            name = attrs.get("Name")
            if name:
                self.metrics.setdefault(self.summary, {})[name] = _number(attrs.get("Value"))
            if (
                self.summary == "SystemCPU"
                and name == "CPUModels"
                and self.stack[-2] == "PerformanceSummary"
                and not self.cpu_model_seen
            ):
                self.cpu_model_seen = True
                self.cpu_model = attrs.get("Value")
        elif tag == "FrameworkError" and self.error_kind is None and self.exit_code == 0:
            status = attrs.get("ExitStatus", "")
            try:
                code = int(status)
            except ValueError:
                raise FJRError(
                    f"{self.path}: <FrameworkError> has ExitStatus {short_repr(status)}, not an integer"
                ) from None
            if code != 0:
                self.exit_code = code
                self.error_kind = attrs.get("Type", "")
                self._collect("FrameworkError", depth)
        elif depth == 1 and tag == "File":
            self.file_fields = {}
        elif depth == 2 and self.file_fields is not None and tag in ("LFN", "PFN", "Size"):
            self._collect(tag, depth)

    def end(self, tag: str) -> None:
        depth = len(self.stack) - 1
        self.stack.pop()
        if self.text_for is not None and self.text_for[1] == depth:
            what = self.text_for[0]
            text = "".join(self.text or ())
            self.text, self.text_for, self.text_open = None, None, False
            self._collected(what, text)
        if tag == "PerformanceSummary":
            self.summary = None
        elif depth == 1 and tag == "InputFile" and self.infile is not None:
            self._end_infile(self.infile)
            self.infile = None
        elif depth == 1 and tag == "File" and self.file_fields is not None:
            name = self.file_fields.get("LFN") or self.file_fields.get("PFN")
            if name:
                size = self.file_fields.get("Size", "")
                self.outputs.append({"name": name, "bytes": _count(size) if _count(size) >= 0 else None})
            self.file_fields = None

    def chars(self, data: str) -> None:
        if self.text_open:
            self.text.append(data)  # type: ignore[union-attr]

    # ---------------------------------------------------------------- helpers
    def _collect(self, what: str, depth: int) -> None:
        self.text, self.text_for, self.text_open = [], (what, depth), True

    def _collected(self, what: str, text: str) -> None:
        if what == "FrameworkError":
            detail = " ".join(text.split())
            self.exit_message = f"{self.error_kind}: {detail}" if self.error_kind else detail
        elif what in ("InputType", "EventsRead") and self.infile is not None:
            attr = "kind" if what == "InputType" else "events_read"
            if getattr(self.infile, attr) is None:
                setattr(self.infile, attr, text.strip())
        elif self.file_fields is not None:
            self.file_fields.setdefault(what, text.strip())

    def _end_infile(self, infile: _InputFile) -> None:
        if (infile.kind or "") in _NOT_PRIMARY:
            return
        where = f"InputFile #{infile.index}"
        if infile.bad_id is not None:
            raise FJRError(f"{self.path}: {where} {infile.bad_id}")
        infile.events_read = str(_int_text(infile.events_read or "", "EventsRead", where, self.path) or 0)
        self.primary.append(infile)

    def parse(self, handle: Any) -> None:
        parser = expat.ParserCreate()
        parser.StartDoctypeDeclHandler = self.doctype
        parser.EntityDeclHandler = self.entity
        parser.StartElementHandler = self.start
        parser.EndElementHandler = self.end
        parser.CharacterDataHandler = self.chars
        parser.buffer_text = True
        parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
        try:
            while chunk := handle.read(1 << 20):
                parser.Parse(chunk, False)
            parser.Parse(b"", True)
        except expat.ExpatError as exc:
            raise FJRError(
                f"{self.path}: not a complete XML document ({expat.ErrorString(exc.code)}: line {exc.lineno}, "
                f"column {exc.offset}); the job report is truncated or corrupt and cannot be trusted"
            ) from None


def fjr_fields(
    path: str | os.PathLike[str],
    *,
    job_id: str | None = None,
    assignment: Any = None,
) -> dict[str, Any]:
    """The :class:`~autosplit.jobreport.JobReport` fields one CMSSW FJR XML file gives (see the module
    docstring); ``outputs`` are ``{"name", "bytes"}`` dicts.

    ``job_id`` defaults to the file name without suffix. With an ``assignment`` (a LumiMask or
    ``(run, lumi)`` pairs) the assigned-but-unprocessed lumis are listed as ``unfinished``; checking that
    every processed lumi was assigned is the report's job (:meth:`JobReport.validate
    <autosplit.jobreport.JobReport.validate>`).
    """
    path = Path(path)
    reader = _Reader(path)
    # Checked before the open: a FIFO (or a directory) is refused without waiting for a writer.
    require_regular_file(
        path, FJRError, "framework job report", missing=f"{path}: no such framework job report"
    )
    try:
        with open(path, "rb") as handle:
            reader.parse(handle)
    except FileNotFoundError:
        raise FJRError(f"{path}: no such framework job report") from None
    except OSError as exc:
        raise FJRError(f"{path}: cannot read the framework job report ({exc.strerror or exc})") from None

    # ---------------------------------------------------------------- input: units and events
    units: dict[int, int] = {}  # run << 32 | lumi -> events (-1: unknown), first-seen order
    events_read = 0
    for infile in reader.primary:
        events_read += int(infile.events_read or 0)
        for run, lumi, events in zip(infile.runs, infile.lumis, infile.events, strict=True):
            if not 0 <= lumi <= 0xFFFFFFFF:
                raise FJRError(f"{path}: InputFile #{infile.index} run {run} has lumi {lumi}, out of range")
            key = (run << 32) | lumi
            previous = units.get(key)
            if previous is None:
                units[key] = events
            else:  # the lumi continues in another input file
                units[key] = previous + events if previous >= 0 and events >= 0 else -1
    n_primary = len(reader.primary)

    timing = reader.metrics.get("Timing", {})
    processing = reader.metrics.get("ProcessingSummary", {})
    memory = reader.metrics.get("ApplicationMemory", {})
    if n_primary == 0 and processing.get("NumberEvents") is not None:
        events_read = int(processing["NumberEvents"])  # type: ignore[arg-type]

    # ---------------------------------------------------------------- timing
    wall = timing.get("TotalJobTime")
    cpu = timing.get("TotalJobCPU")
    init = timing.get("TotalInitTime")
    loop = timing.get("TotalLoopTime")
    throughput = timing.get("EventThroughput")
    threads = timing.get("NumberOfThreads")
    meta: dict[str, Any] = {"source": "cmssw-fjr", "fjr_path": str(path)}
    if loop is not None and init is not None and wall is not None and loop + init > wall * 1.02 + 1.0:
        meta["loop_included_init"] = True
        loop = max(loop - init, 0.0)
    if loop is None and throughput and events_read:
        loop = events_read / throughput
        meta["loop_from_throughput"] = True
    if events_read > 0:
        for key, name in (
            ("EventThroughput", "event_throughput"),
            ("AvgEventTime", "avg_event_time"),
            ("MaxEventTime", "max_event_time"),
            ("MinEventTime", "min_event_time"),
        ):
            value = timing.get(key)
            if value is None or value <= 0:
                continue
            if key == "MinEventTime" and value >= MIN_EVENT_TIME_PLACEHOLDER:
                continue
            meta[name] = value
        if loop:
            meta["seconds_per_event"] = loop / events_read
    if timing.get("NumberOfStreams"):
        meta["streams"] = int(timing["NumberOfStreams"])  # type: ignore[arg-type]
    if reader.cpu_model:
        meta["cpu_model"] = reader.cpu_model

    rss = memory.get("PeakValueRss")
    peak_rss = int(round(rss * _MIB)) if rss is not None and rss > 0 else None

    # ---------------------------------------------------------------- exit code, outputs
    exit_code, exit_message = reader.exit_code, reader.exit_message
    outputs = reader.outputs

    run_ints: dict[int, int] = {}  # one int object per run, shared by its units (a report can hold 10^6)
    unit_list = [
        {
            "run": run_ints.setdefault(key >> 32, key >> 32),
            "lumi": key & 0xFFFFFFFF,
            "events": units[key] if units[key] >= 0 else None,
        }
        for key in sorted(units)
    ]
    unfinished: list[dict[str, Any]] = []
    if assignment is not None:
        if hasattr(assignment, "to_pairs"):
            runs, lumis = assignment.to_pairs()
            assigned = list(zip(runs.tolist(), lumis.tolist(), strict=True))
        else:
            assigned = [(int(r), int(lu)) for r, lu in assignment]
        missing = {(r << 32) | lu for r, lu in assigned if 0 <= lu <= 0xFFFFFFFF} - units.keys()
        unfinished = [{"run": key >> 32, "lumi": key & 0xFFFFFFFF} for key in sorted(missing)]

    return {
        "job_id": job_id or path.stem,
        "exit_code": exit_code,
        "exit_message": exit_message,
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "init_seconds": init,
        "loop_seconds": loop,
        "threads": int(threads) if threads and threads >= 1 else 1,
        "events_read": events_read,
        "peak_rss_bytes": peak_rss,
        "units": unit_list,
        "unfinished": unfinished,
        "outputs": outputs,
        "meta": meta,
    }
