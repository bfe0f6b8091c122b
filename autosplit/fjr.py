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
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

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


def _metrics(root: ET.Element, summary: str) -> dict[str, float | None]:
    """``{name: value}`` of one ``PerformanceSummary`` kind (merged over repeated blocks)."""
    out: dict[str, float | None] = {}
    for block in root.iter("PerformanceSummary"):
        if block.get("Metric") != summary:
            continue
        for metric in block.iter("Metric"):
            name = metric.get("Name")
            if name:
                out[name] = _number(metric.get("Value"))
    return out


def _text(element: ET.Element | None, tag: str) -> str:
    child = element.find(tag) if element is not None else None
    return (child.text or "").strip() if child is not None else ""


def _int_field(element: ET.Element, tag: str, where: str, path: Path) -> int | None:
    text = _text(element, tag)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise FJRError(f"{path}: {where} <{tag}> is {text!r}, not an integer") from None
    if value < 0:
        raise FJRError(f"{path}: {where} <{tag}> is negative ({value})")
    return value


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
    try:
        root = ET.parse(path).getroot()
    except FileNotFoundError:
        raise FJRError(f"{path}: no such framework job report") from None
    except ET.ParseError as exc:
        raise FJRError(
            f"{path}: not a complete XML document ({exc}); the job report is truncated or corrupt and "
            "cannot be trusted"
        ) from None
    if root.tag != "FrameworkJobReport":
        raise FJRError(f"{path}: root element is <{root.tag}>, expected <FrameworkJobReport>")

    # ---------------------------------------------------------------- input: units and events
    units: dict[tuple[int, int], int | None] = {}
    events_read = 0
    n_primary = 0
    for index, infile in enumerate(root.findall("InputFile")):
        if _text(infile, "InputType") in _NOT_PRIMARY:
            continue
        n_primary += 1
        where = f"InputFile #{index + 1}"
        events_read += _int_field(infile, "EventsRead", where, path) or 0
        for run_el in infile.iter("Run"):
            try:
                run = int(run_el.get("ID", ""))
            except ValueError:
                raise FJRError(f"{path}: {where} has a <Run> with ID {run_el.get('ID')!r}") from None
            for lumi_el in run_el.iter("LumiSection"):
                try:
                    lumi = int(lumi_el.get("ID", ""))
                except ValueError:
                    raise FJRError(
                        f"{path}: {where} run {run} has a <LumiSection> with ID {lumi_el.get('ID')!r}"
                    ) from None
                n_events = lumi_el.get("NEvents")
                events = int(n_events) if n_events and n_events.strip().isdigit() else None
                key = (run, lumi)
                if key in units:  # the lumi continues in another input file
                    previous = units[key]
                    units[key] = previous + events if previous is not None and events is not None else None
                else:
                    units[key] = events

    timing = _metrics(root, "Timing")
    processing = _metrics(root, "ProcessingSummary")
    memory = _metrics(root, "ApplicationMemory")
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
    cpu_model = root.find(".//PerformanceSummary[@Metric='SystemCPU']/Metric[@Name='CPUModels']")
    if cpu_model is not None and cpu_model.get("Value"):
        meta["cpu_model"] = cpu_model.get("Value")

    rss = memory.get("PeakValueRss")
    peak_rss = int(round(rss * _MIB)) if rss is not None and rss > 0 else None

    # ---------------------------------------------------------------- exit code
    exit_code, exit_message = 0, ""
    for error in root.iter("FrameworkError"):
        status = error.get("ExitStatus", "")
        try:
            code = int(status)
        except ValueError:
            raise FJRError(f"{path}: <FrameworkError> has ExitStatus {status!r}, not an integer") from None
        if code != 0:
            kind = error.get("Type", "")
            detail = " ".join((error.text or "").split())
            exit_code = code
            exit_message = f"{kind}: {detail}" if kind else detail
            break

    # ---------------------------------------------------------------- outputs
    outputs = []
    for out in root.findall("File"):
        name = _text(out, "LFN") or _text(out, "PFN")
        if name:
            size = _text(out, "Size")
            outputs.append({"name": name, "bytes": int(size) if size.isdigit() else None})

    unit_list = [
        {"run": run, "lumi": lumi, "events": events} for (run, lumi), events in sorted(units.items())
    ]
    unfinished: list[dict[str, Any]] = []
    if assignment is not None:
        if hasattr(assignment, "to_pairs"):
            runs, lumis = assignment.to_pairs()
            assigned = list(zip(runs.tolist(), lumis.tolist(), strict=True))
        else:
            assigned = [(int(r), int(lu)) for r, lu in assignment]
        unfinished = [{"run": r, "lumi": lu} for r, lu in sorted(set(assigned) - set(units))]

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
