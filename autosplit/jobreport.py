"""The job report: what one job says it did, as a small versioned JSON document.

This module is imported on worker nodes (by :mod:`autosplit.worker`) and by the PostJob, so it uses only the
standard library and msgspec at import time; numpy, polars and :class:`~autosplit.datasets.LumiMask` are
imported lazily by the convenience methods that return arrays or tables.

Schema ``autosplit-jobreport/1`` (one JSON object; unknown fields are refused so a typo never passes
silently; ``null`` marks a value the job could not measure):

=================  ===================  ===============================================================
field              type                 meaning
=================  ===================  ===============================================================
format             str                  always ``"autosplit-jobreport/1"``
job_id             str                  node name of the job (e.g. ``"probe-3"``, ``"job-17"``)
stage              str                  ``probe``, ``processing`` or ``tail-K``
attempt            int >= 0             retry number (0 for the first try)
site               str | null           where the job ran (slot group / CMS site name)
exit_code          int                  0 on success (a soft stop is a success)
exit_message       str                  human-readable reason when ``exit_code != 0``
wall_seconds       float | null         wall time of the payload, start to end (seconds)
cpu_seconds        float | null         CPU time of the payload, all threads (seconds)
init_seconds       float | null         set-up before the first unit (seconds): the per-job overhead
loop_seconds       float | null         wall time of the unit loop (seconds); ``null`` = unknown
threads            int >= 1             threads the payload used
events_read        int | null           events processed, when only a job total is known (CMSSW FJR)
peak_rss_bytes     int | null           peak resident memory (bytes)
units              list[object]         units fully processed, see below
unfinished         list[object]         units assigned to the job but not processed (``run``, ``lumi``)
in_progress        object | null        the unit the job was processing when it was stopped, killed or died
                                        (optional, see below): a lower bound of that unit's cost
outputs            list[object]         output files: ``name``, ``bytes`` (int | null), ``checksum``
soft_stopped       bool                 the job stopped at a unit boundary after its soft deadline
hard_killed        bool                 the job was killed at its hard limit
meta               object               free-form extras (source file, CPU model, ...)
=================  ===================  ===============================================================

A processed unit is ``{"run": int, "lumi": int, "events": int | null, "seconds": float | null, ...}``:
``events`` processed in the unit, ``seconds`` of wall time spent on it (``null`` when the job only measured
job-level timing, as CMSSW does), and any extra unit features (``pileup``, ``bytes``, ...) as numbers or
strings. A unit appears at most once across ``units`` and ``unfinished``.

``in_progress`` is ``{"run": int, "lumi": int, "seconds": float, "events": int | null, ...}``: the unit that
had started and not finished when the job stopped (a SIGTERM/SIGKILL at the hard limit, a stop on request,
the payload's death mid-unit), ``seconds`` (finite, >= 0) of wall time spent on it so far and ``events`` of
it done (``null`` or absent when unknown); extra features as for processed units. It is a right-censored
measurement: the unit costs *at least* ``seconds`` on this job's node, which cost models use so that units
too long to finish are not missing from the fit. A unit that raised in the user code is not in progress
(``meta.failed_unit`` names it). ``in_progress`` is an unfinished unit: it is never in ``units``, and
``unfinished`` always lists it too (a document that omits it there is read with it appended), so
``unfinished`` stays the list of every accounted-for unit that was not processed. The field is optional and
additive: reports without it are read as before, with the same ``format``.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from autosplit._io import atomic_write_text, one_line, read_input_bytes, short_repr
from autosplit.errors import JobReportError as JobReportError
from autosplit.fjr import FJRError as FJRError
from autosplit.fjr import fjr_fields

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import polars as pl

    from autosplit.datasets import LumiMask

FORMAT = "autosplit-jobreport/1"
_MAX_RUN = 2**31 - 1  # same limits as autosplit.datasets.lumimask (kept here to stay import-light)
_MAX_LUMI = 2**32 - 2
_RESERVED_UNIT_KEYS = ("run", "lumi", "events", "seconds")
_NUMBER_FIELDS = (
    "attempt",
    "exit_code",
    "wall_seconds",
    "cpu_seconds",
    "init_seconds",
    "loop_seconds",
    "threads",
    "events_read",
    "peak_rss_bytes",
)


class OutputFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One output file of a job: ``name`` (LFN or local path), ``bytes`` (size), ``checksum`` (e.g. adler32)."""

    name: str
    bytes: int | None = None
    checksum: str | None = None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_PLAIN = (int, float, str, bool, type(None))
_PLAIN_TYPES = frozenset(_PLAIN)


def _builtin_number(value: Any) -> Any:
    """``value`` as a Python ``bool``, ``int`` or ``float`` when it is another scalar of that kind (numpy's,
    say), so that a report built from arrays validates and writes out like one built by hand; anything else
    unchanged."""
    if type(value) in _PLAIN:
        return value
    dtype = getattr(value, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "") == "b" and getattr(value, "ndim", 1) == 0:
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    return value


def _builtin(value: Any) -> Any:
    """``value`` with every number in it (inside dicts, lists and tuples too) as a Python number; a dict or
    list whose values are all plain already is returned as it is (no copy)."""
    if isinstance(value, dict):
        if _PLAIN_TYPES.issuperset(map(type, value.values())):
            return value
        return {key: _builtin(v) for key, v in value.items()}
    if isinstance(value, list | tuple):
        if _PLAIN_TYPES.issuperset(map(type, value)):
            return value
        return type(value)(_builtin(v) for v in value)
    return _builtin_number(value)


def _bad_number(value: Any) -> bool:
    """True for NaN/inf floats (never valid in a report)."""
    return isinstance(value, float) and not math.isfinite(value)


class JobReport(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What one job did; see the module docstring for every field and its unit.

    Build one with keyword arguments, :meth:`from_json`, or :meth:`from_fjr_xml` (a CMSSW framework job
    report). Construction validates the report on its own (:class:`JobReportError` names the bad field or
    unit); :meth:`validate` also checks it against the job's assignment.
    """

    format: str = FORMAT
    job_id: str
    stage: str = "processing"
    attempt: int = 0
    site: str | None = None
    exit_code: int = 0
    exit_message: str = ""
    wall_seconds: float | None = None
    cpu_seconds: float | None = None
    init_seconds: float | None = None
    loop_seconds: float | None = None
    threads: int = 1
    events_read: int | None = None
    peak_rss_bytes: int | None = None
    units: list[dict[str, Any]] = []
    unfinished: list[dict[str, Any]] = []
    in_progress: dict[str, Any] | None = None
    outputs: list[OutputFile] = []
    soft_stopped: bool = False
    hard_killed: bool = False
    meta: dict[str, Any] = {}

    def __post_init__(self) -> None:
        self._to_builtin_numbers()
        self._check_self()

    def _to_builtin_numbers(self) -> None:
        for name in _NUMBER_FIELDS:
            setattr(self, name, _builtin_number(getattr(self, name)))
        self.soft_stopped = _builtin_number(self.soft_stopped)
        self.hard_killed = _builtin_number(self.hard_killed)
        self.units = [_builtin(u) for u in self.units]
        self.unfinished = [_builtin(u) for u in self.unfinished]
        self.in_progress = _builtin(self.in_progress)
        self.meta = _builtin(self.meta)
        for out in self.outputs:
            out.bytes = _builtin_number(out.bytes)

    def _list_in_progress(self) -> None:
        """Append the unit in progress to ``unfinished`` when the document did not list it there."""
        cut = self.in_progress_pair
        if cut is not None and not any((u["run"], u["lumi"]) == cut for u in self.unfinished):
            self.unfinished = [*self.unfinished, {"run": cut[0], "lumi": cut[1]}]

    # ------------------------------------------------------------------ validation
    def _fail(self, message: str) -> JobReportError:
        return JobReportError(f"job report {self.job_id!r}: {message}")

    def _check_self(self) -> None:
        if self.format != FORMAT:
            raise JobReportError(
                f"job report {self.job_id!r}: format {self.format!r} is not supported; "
                f"this autosplit reads {FORMAT!r}"
            )
        if not self.job_id:
            raise JobReportError("job report: job_id must be a non-empty string")
        for name in ("attempt", "exit_code", "threads", "events_read", "peak_rss_bytes"):
            value = getattr(self, name)
            optional = name in ("events_read", "peak_rss_bytes")
            if not _is_int(value) and not (optional and value is None):
                raise self._fail(f"{name} must be an integer, got {value!r}")
        for i, out in enumerate(self.outputs):
            if out.bytes is not None and not _is_int(out.bytes):
                raise self._fail(f"outputs[{i}] ({out.name}): bytes must be an integer, got {out.bytes!r}")
        if self.attempt < 0:
            raise self._fail(f"attempt must be >= 0, got {self.attempt}")
        if self.threads < 1:
            raise self._fail(f"threads must be >= 1, got {self.threads}")
        for name in ("wall_seconds", "cpu_seconds", "init_seconds", "loop_seconds"):
            value = getattr(self, name)
            if value is None:
                continue
            if not math.isfinite(value) or value < 0:
                raise self._fail(f"{name} must be a finite number >= 0 (or null when unknown), got {value!r}")
        for name in ("events_read", "peak_rss_bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise self._fail(f"{name} must be >= 0 (or null when unknown), got {value!r}")
        seen: set[tuple[int, int]] = set()
        for i, unit in enumerate(self.units):
            key = self._check_unit(unit, f"units[{i}]", full=True)
            if key in seen:
                raise self._fail(f"unit run {key[0]} lumi {key[1]} is listed twice in units")
            seen.add(key)
        for i, unit in enumerate(self.unfinished):
            key = self._check_unit(unit, f"unfinished[{i}]", full=False)
            if key in seen:
                raise self._fail(
                    f"unit run {key[0]} lumi {key[1]} is listed twice (in units and unfinished, or twice "
                    "in unfinished); a unit is either processed or not"
                )
            seen.add(key)
        if self.in_progress is not None:
            key = self._check_unit(self.in_progress, "in_progress", full=False)
            seconds = self.in_progress.get("seconds")
            if seconds is None:
                raise self._fail(
                    f"in_progress (run {key[0]} lumi {key[1]}): seconds (spent on the unit so far) is required"
                )
            if any((u["run"], u["lumi"]) == key for u in self.units):
                raise self._fail(
                    f"unit run {key[0]} lumi {key[1]} is both processed (in units) and in progress; "
                    "a unit in progress was not finished"
                )
            self._list_in_progress()
        for i, out in enumerate(self.outputs):
            if out.bytes is not None and out.bytes < 0:
                raise self._fail(f"outputs[{i}] ({out.name}): bytes must be >= 0, got {out.bytes}")

    def _check_unit(self, unit: Any, where: str, *, full: bool) -> tuple[int, int]:
        if not isinstance(unit, dict):
            raise self._fail(f"{where} must be an object with run and lumi, got {type(unit).__name__}")
        run, lumi = unit.get("run"), unit.get("lumi")
        if not (_is_int(run) and _is_int(lumi)):
            raise self._fail(f"{where} needs integer 'run' and 'lumi', got run={run!r} lumi={lumi!r}")
        if not (0 <= run <= _MAX_RUN and 0 <= lumi <= _MAX_LUMI):
            raise self._fail(f"{where}: run {run} lumi {lumi} is outside the valid range")
        events = unit.get("events")
        if events is not None and (not _is_int(events) or events < 0):
            raise self._fail(
                f"{where} (run {run} lumi {lumi}): events must be an integer >= 0, got {events!r}"
            )
        seconds = unit.get("seconds")
        if seconds is not None:
            if not isinstance(seconds, int | float) or isinstance(seconds, bool):
                raise self._fail(
                    f"{where} (run {run} lumi {lumi}): seconds must be a number, got {seconds!r}"
                )
            if not math.isfinite(seconds) or seconds < 0:
                raise self._fail(
                    f"{where} (run {run} lumi {lumi}): seconds must be finite and >= 0, got {seconds!r}"
                )
        for key, value in unit.items():
            if key in _RESERVED_UNIT_KEYS:
                continue
            if not isinstance(key, str) or _bad_number(value):
                raise self._fail(
                    f"{where} (run {run} lumi {lumi}): feature {key!r} = {value!r} is not finite"
                )
            if value is not None and not isinstance(value, int | float | str | bool):
                raise self._fail(
                    f"{where} (run {run} lumi {lumi}): feature {key!r} must be a number or a string, "
                    f"got {type(value).__name__}"
                )
        return run, lumi

    def validate(self, assignment: LumiMask | Iterable[tuple[int, int]] | None = None) -> JobReport:
        """Check the report; with ``assignment`` also that every reported unit was assigned to this job.

        ``assignment`` is a :class:`~autosplit.datasets.LumiMask` or an iterable of ``(run, lumi)`` pairs.
        Raises :class:`JobReportError` naming the first offending unit; returns ``self`` when valid.
        """
        self._check_self()
        if assignment is None:
            return self
        listed = [
            *self.units,
            *([self.in_progress] if self.in_progress is not None else []),
            *self.unfinished,
        ]
        if not listed:
            return self
        if hasattr(assignment, "contains"):
            import numpy as np

            runs = np.fromiter((u["run"] for u in listed), np.int64, len(listed))
            lumis = np.fromiter((u["lumi"] for u in listed), np.int64, len(listed))
            outside = np.flatnonzero(~assignment.contains(runs, lumis))
            bad = listed[int(outside[0])] if outside.size else None
        else:
            allowed = {(int(r), int(lu)) for r, lu in assignment}
            bad = next((u for u in listed if (u["run"], u["lumi"]) not in allowed), None)
        if bad is not None:
            if any(bad is u for u in self.units):
                kind = "processed"
            elif bad is self.in_progress:
                kind = "in-progress"
            else:
                kind = "unfinished"
            raise self._fail(
                f"{kind} unit run {bad['run']} lumi {bad['lumi']} was not assigned to this job; "
                "the report belongs to another job or the job read the wrong lumis"
            )
        return self

    def unaccounted(self, assignment: LumiMask | Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
        """Assigned ``(run, lumi)`` pairs that the report lists neither as processed nor as unfinished.

        A job that exits 0 should leave this empty; the PostJob treats such units as unfinished.
        """
        if hasattr(assignment, "to_pairs"):
            runs, lumis = assignment.to_pairs()
            pairs = list(zip(runs.tolist(), lumis.tolist(), strict=True))
        else:
            pairs = [(int(r), int(lu)) for r, lu in assignment]
        listed = {(u["run"], u["lumi"]) for u in self.units} | {
            (u["run"], u["lumi"]) for u in self.unfinished
        }
        if self.in_progress_pair is not None:
            listed.add(self.in_progress_pair)
        return [p for p in pairs if p not in listed]

    # ------------------------------------------------------------------ convenience
    @property
    def ok(self) -> bool:
        """True when the job exited 0 and was not killed."""
        return self.exit_code == 0 and not self.hard_killed

    @property
    def total_events(self) -> int | None:
        """Events processed by the job: ``events_read`` when given, else the sum over processed units.

        ``None`` when neither is known (a unit without ``events`` and no ``events_read``).
        """
        if self.events_read is not None:
            return self.events_read
        total = 0
        for unit in self.units:
            events = unit.get("events")
            if events is None:
                return None
            total += events
        return total

    @property
    def has_unit_seconds(self) -> bool:
        """True when every processed unit carries its own ``seconds`` (per-unit timing)."""
        return bool(self.units) and all(u.get("seconds") is not None for u in self.units)

    @property
    def processing_seconds(self) -> float | None:
        """Seconds spent processing units (the unit loop), the quantity cost models fit.

        The sum of per-unit seconds when every unit has them; else ``loop_seconds``; else
        ``wall_seconds - init_seconds``; else ``None``.
        """
        if self.has_unit_seconds:
            return float(sum(u["seconds"] for u in self.units))
        if self.loop_seconds is not None:
            return self.loop_seconds
        if self.wall_seconds is not None and self.init_seconds is not None:
            return max(self.wall_seconds - self.init_seconds, 0.0)
        return None

    @property
    def in_progress_pair(self) -> tuple[int, int] | None:
        """``(run, lumi)`` of the unit in progress when the job stopped, or ``None``."""
        unit = self.in_progress
        if unit is None:
            return None
        return unit["run"], unit["lumi"]

    @property
    def censored_seconds(self) -> float:
        """Seconds spent on the unit in progress when the job stopped (0.0 when none): a lower bound of
        that unit's cost, not part of :attr:`processing_seconds`."""
        if self.in_progress is None:
            return 0.0
        return float(self.in_progress["seconds"])

    @property
    def output_bytes(self) -> int | None:
        """Total bytes over all outputs; ``None`` if any output has an unknown size (or there are none)."""
        if not self.outputs or any(o.bytes is None for o in self.outputs):
            return None
        return int(sum(o.bytes for o in self.outputs))  # type: ignore[misc]

    def processed_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Processed units as two int64 arrays ``(runs, lumis)`` in report order."""
        import numpy as np

        n = len(self.units)
        return (
            np.fromiter((u["run"] for u in self.units), np.int64, n),
            np.fromiter((u["lumi"] for u in self.units), np.int64, n),
        )

    def processed_mask(self) -> LumiMask:
        """Processed units as a :class:`~autosplit.datasets.LumiMask`."""
        from autosplit.datasets.lumimask import LumiMask

        return LumiMask.from_pairs(*self.processed_pairs())

    def unfinished_mask(self) -> LumiMask:
        """Unfinished units as a :class:`~autosplit.datasets.LumiMask`."""
        import numpy as np

        from autosplit.datasets.lumimask import LumiMask

        n = len(self.unfinished)
        return LumiMask.from_pairs(
            np.fromiter((u["run"] for u in self.unfinished), np.int64, n),
            np.fromiter((u["lumi"] for u in self.unfinished), np.int64, n),
        )

    def units_table(self) -> pl.DataFrame:
        """Processed units as a polars table: run, lumi (Int64), events (Int64), seconds (Float64), extras.

        Missing values are null; extra feature columns keep the types polars infers from the values.
        """
        import polars as pl

        extras: list[str] = []
        for unit in self.units:
            for key in unit:
                if key not in _RESERVED_UNIT_KEYS and key not in extras:
                    extras.append(key)
        columns: dict[str, Any] = {
            "run": pl.Series("run", [u["run"] for u in self.units], dtype=pl.Int64),
            "lumi": pl.Series("lumi", [u["lumi"] for u in self.units], dtype=pl.Int64),
            "events": pl.Series("events", [u.get("events") for u in self.units], dtype=pl.Int64),
            "seconds": pl.Series("seconds", [u.get("seconds") for u in self.units], dtype=pl.Float64),
        }
        for key in extras:
            columns[key] = pl.Series(key, [u.get(key) for u in self.units], strict=False)
        return pl.DataFrame(columns)

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready Python objects."""
        return msgspec.to_builtins(self)

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as JSON text; when ``path`` is given also write it atomically (temp file + rename)."""
        text = msgspec.json.format(msgspec.json.encode(self), indent=1).decode()
        if path is not None:
            atomic_write_text(path, text + "\n", fsync=True)
        return text

    @classmethod
    def from_json(cls, source: str | bytes | os.PathLike[str]) -> JobReport:
        """Read a report from JSON text (``str``/``bytes`` starting with ``{``) or from a file path."""
        label = "job report"
        if isinstance(source, bytes):
            data = source
        elif isinstance(source, str) and source.lstrip().startswith("{"):
            data = source.encode()
        else:
            path = Path(source)
            label = str(path)
            # A regular file only: a FIFO given as the report would block the reader forever.
            data = read_input_bytes(
                path, JobReportError, "job report", missing=f"{path}: no such job report file"
            )
        try:
            raw = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise JobReportError(
                f"{label}: not valid JSON ({one_line(str(exc))}); the file may be truncated"
            ) from None
        except RecursionError:
            raise JobReportError(f"{label}: JSON nested too deeply to be a job report") from None
        if not isinstance(raw, dict):
            raise JobReportError(f"{label}: expected a JSON object, got {type(raw).__name__}")
        fmt = raw.get("format")
        if fmt != FORMAT:
            raise JobReportError(
                f"{label}: format {short_repr(fmt)} is not supported; this autosplit reads {FORMAT!r}"
            )
        try:
            return msgspec.convert(raw, type=cls)
        except JobReportError:
            raise
        except msgspec.ValidationError as exc:
            raise JobReportError(f"{label}: {one_line(str(exc))}") from None
        except RecursionError:
            raise JobReportError(f"{label}: a field is nested too deeply to be a job report") from None

    @classmethod
    def from_fjr_xml(
        cls,
        path: str | os.PathLike[str],
        *,
        job_id: str | None = None,
        assignment: Any = None,
        **fields: Any,
    ) -> JobReport:
        """Parse one CMSSW framework job report (XML) into a report (what is read: :mod:`autosplit.fjr`).

        ``job_id`` defaults to the file name without suffix. ``assignment`` (a LumiMask or ``(run, lumi)``
        pairs) checks that every processed lumi was assigned and lists the assigned-but-unprocessed lumis as
        ``unfinished``. Other keyword ``fields`` (``stage``, ``attempt``, ``site``, ``outputs``, ...) fill
        what the FJR lacks and override what it says. Raises :class:`~autosplit.fjr.FJRError`.
        """
        values = fjr_fields(path, job_id=job_id, assignment=assignment)
        values["outputs"] = [OutputFile(**output) for output in values["outputs"]]
        values.update(fields)
        try:
            report = cls(**values)
            if assignment is not None:
                report.validate(assignment)
        except JobReportError as exc:
            raise FJRError(f"{Path(path)}: {exc}") from None
        return report


def read_fjr(path: str | os.PathLike[str], **fields: Any) -> JobReport:
    """Read one CMSSW framework job report (XML): :meth:`JobReport.from_fjr_xml`."""
    return JobReport.from_fjr_xml(path, **fields)
