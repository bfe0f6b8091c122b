"""The job side: what user code sees inside a job.

A job is described by a **job spec** (JSON, format ``autosplit-jobspec/1``) written by the pipeline:

=====================  ==============  =========================================================
field                  type            meaning
=====================  ==============  =========================================================
format                 str             ``"autosplit-jobspec/1"``
task                   str             task name
job_id                 str             node name, e.g. ``"job-17"``
stage                  str             ``probe``, ``processing`` or ``tail-K``
attempt                int             retry number (0 first)
site                   str | null      where the job runs (the wrapper may fill it from the environment)
soft_deadline          float | null    absolute time (seconds since the epoch) after which the job stops at
                                       the next unit boundary
soft_limit_seconds     float | null    the same, counted from the job's start; the earlier of the two wins
hard_limit_seconds     float | null    the wrapper kills the payload this long after its start
output_dir             str             where outputs go (created if missing)
files                  list            ``{"lfn": str, "units": [unit, ...]}``: the job's units grouped by the
                                       file that holds them (a lumi spanning files is listed under its first
                                       file and names all of them in ``files``)
code                   object          ``{"callable": "module:function"}`` or ``{"executable": [argv...]}``
stage_out              object | null   asynchronous stage-out: ``db``, ``temp_root``, ``destination``,
                                       ``site``, ``budget_bytes`` (the wrapper stages outputs there)
=====================  ==============  =========================================================

A unit is ``{"run": int, "lumi": int, "events": int, "files": [lfn, ...], <features>}``.

User code receives a :class:`Job`::

    def analyze(job):                       # the callable named in the spec
        for unit in job.iter_units():       # stops at a unit boundary after the soft deadline or SIGTERM
            process(unit.run, unit.lumi, unit.files)
        job.add_output(job.output_path("histogram.npy"))

or, columnar, one file read per file and one event selection per lumi (uproot)::

    for unit, arrays in job.iter_lumis(["Muon_pt", "Muon_eta"]):
        fill(arrays["Muon_pt"])

A unit counts as processed when the loop asks for the next one (or ends); a unit the loop abandons (an
exception, a ``break``) is reported unfinished, never processed. Each processed unit's seconds are measured.
A unit the loop abandons without an exception (a ``break`` on :meth:`Job.should_stop`, say) is also the
report's ``in_progress`` unit, with the seconds spent on it: it costs at least that much, which the cost
model needs to know (a unit that raised is named in ``meta.failed_unit`` instead).

The report is written atomically (temporary file + rename) on success, soft stop and exception. While the
job runs, a progress journal (``<report>.progress``, one JSON object per line, appended and flushed) lets
the wrapper rebuild a report when the payload is killed or dies without writing one:

* a finished unit is its report entry: ``{"run", "lumi", "events", "seconds", <features>}``;
* a unit (or, for :meth:`Job.iter_lumis`, one file's part of it) starting is
  ``{"start": {"run": int, "lumi": int}, "at": float, "before": float}``: ``at`` the time it started
  (seconds since the epoch), ``before`` the seconds already spent on the unit's earlier parts. The last
  start whose unit has not finished is the unit in progress; the wrapper reports it as ``in_progress`` with
  ``before`` plus the time from ``at`` to the payload's end.

Start records have no top-level ``run``/``lumi``, so a reader that only knows finished-unit lines (an
older wrapper) skips them; a journal without start records (an older worker, or an executable that writes
only finished units) still gives the finished units.

This module imports only the standard library, msgspec and the job report at import time (it runs on worker
nodes); numpy and uproot are imported by :meth:`Job.iter_lumis` only.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from autosplit._checksums import adler32_file
from autosplit._io import atomic_write_text
from autosplit.errors import AutosplitError
from autosplit.jobreport import JobReport, OutputFile

SPEC_FORMAT = "autosplit-jobspec/1"
ENV_SPEC = "AUTOSPLIT_JOB_SPEC"
ENV_REPORT = "AUTOSPLIT_JOB_REPORT"
ENV_SITE = "AUTOSPLIT_SITE"
ENV_SOFT_LIMIT = "AUTOSPLIT_SOFT_LIMIT_SECONDS"  # set by the submit description; seconds from job start
ENV_SOFT_DEADLINE = "AUTOSPLIT_SOFT_DEADLINE"  # absolute, seconds since the epoch

# Exit codes of a job payload and of the wrapper (documented in autosplit.pipeline.wrapper).
EXIT_OK = 0
EXIT_USER_ERROR = 80


class JobSpecError(AutosplitError, ValueError):
    """A job spec is missing, malformed, or inconsistent."""


class FileUnits(msgspec.Struct, kw_only=True):
    """One input file of a job and the job's units whose first file it is."""

    lfn: str
    units: list[dict[str, Any]] = []


class JobSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The job spec; see the module docstring for the fields."""

    format: str = SPEC_FORMAT
    task: str
    job_id: str
    stage: str = "processing"
    attempt: int = 0
    site: str | None = None
    soft_deadline: float | None = None
    soft_limit_seconds: float | None = None
    hard_limit_seconds: float | None = None
    output_dir: str = "."
    files: list[FileUnits] = []
    code: dict[str, Any] = {}
    stage_out: dict[str, Any] | None = None
    checkpoint_seconds: float | None = None

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> JobSpec:
        """Read and check a spec file; :class:`JobSpecError` names the file and the problem."""
        path = Path(path)
        try:
            raw = msgspec.json.decode(path.read_bytes())
        except FileNotFoundError:
            raise JobSpecError(f"{path}: no such job spec") from None
        except msgspec.DecodeError as exc:
            raise JobSpecError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(raw, dict) or raw.get("format") != SPEC_FORMAT:
            found = raw.get("format") if isinstance(raw, dict) else type(raw).__name__
            raise JobSpecError(f"{path}: not an {SPEC_FORMAT} job spec (format: {found!r})")
        try:
            spec = msgspec.convert(raw, type=cls)
        except msgspec.ValidationError as exc:
            raise JobSpecError(f"{path}: {exc}") from None
        spec.check(str(path))
        return spec

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the spec as JSON (atomically)."""
        return atomic_write_text(path, msgspec.json.encode(self).decode())

    def check(self, origin: str = "job spec") -> None:
        for name in ("soft_deadline", "soft_limit_seconds", "hard_limit_seconds"):
            value = getattr(self, name)
            if value is not None and not (value == value and value >= 0):
                raise JobSpecError(f"{origin}: {name} must be a number >= 0, got {value!r}")
        seen: set[tuple[int, int]] = set()
        for file in self.files:
            for unit in file.units:
                run, lumi = unit.get("run"), unit.get("lumi")
                if not (isinstance(run, int) and isinstance(lumi, int)):
                    raise JobSpecError(f"{origin}: file {file.lfn}: unit {unit!r} needs integer run and lumi")
                if (run, lumi) in seen:
                    raise JobSpecError(f"{origin}: unit run {run} lumi {lumi} is listed twice")
                seen.add((run, lumi))
        if self.code and not (("callable" in self.code) ^ ("executable" in self.code)):
            raise JobSpecError(f"{origin}: code must hold exactly one of 'callable' or 'executable'")


@dataclass
class Unit:
    """One (run, lumi) unit of the job: expected ``events``, every file holding it, extra ``features``."""

    run: int
    lumi: int
    events: int
    files: list[str]
    features: dict[str, Any] = field(default_factory=dict)
    events_processed: int | None = None

    @property
    def key(self) -> tuple[int, int]:
        return (self.run, self.lumi)


def _unit_from_dict(data: dict[str, Any], lfn: str) -> Unit:
    features = {k: v for k, v in data.items() if k not in ("run", "lumi", "events", "files")}
    return Unit(
        run=int(data["run"]),
        lumi=int(data["lumi"]),
        events=int(data.get("events") or 0),
        files=list(data.get("files") or [lfn]),
        features=features,
    )


class Job:
    """The running job: its units, its deadline, its outputs, and the report it writes.

    Use :meth:`from_env` inside a payload started by ``autosplit wrapper`` (it reads ``AUTOSPLIT_JOB_SPEC``
    and ``AUTOSPLIT_JOB_REPORT``), or :meth:`from_spec` directly. As a context manager it writes the report
    on exit, recording an exception as a failure.
    """

    def __init__(
        self,
        spec: JobSpec,
        report_path: str | os.PathLike[str],
        *,
        clock: Callable[[], float] = time.time,
        handle_sigterm: bool = True,
    ) -> None:
        self.spec = spec
        self.report_path = Path(report_path)
        self._clock = clock
        self.started = clock()
        self.units: list[Unit] = []
        for file in spec.files:
            self.units.extend(_unit_from_dict(u, file.lfn) for u in file.units)
        self._done: dict[tuple[int, int], dict[str, Any]] = {}
        self._parts_left: dict[tuple[int, int], set[str]] = {}
        self._part_totals: dict[tuple[int, int], list[float]] = {}
        self._outputs: list[Path] = []
        self._stop_signal = False
        self.soft_stopped = False
        self._finished = False
        self._first_unit_started: float | None = None
        self._current: Unit | None = None  # the unit being processed, blamed if the code raises
        self._current_started: float | None = None  # when the current unit (or its current part) started
        self._current_before = 0.0  # seconds spent on the current unit's earlier parts (iter_lumis)
        self._journal = self.report_path.with_name(self.report_path.name + ".progress")
        self._journal.unlink(missing_ok=True)
        self._checkpoint_path = checkpoint_path(self.report_path)
        self._checkpoint_path.unlink(missing_ok=True)  # an earlier attempt's: its units were accounted for
        self._checkpoint_callback: Callable[[], Any] | None = None
        self._last_checkpoint = self.started
        Path(spec.output_dir).mkdir(parents=True, exist_ok=True)
        if handle_sigterm:
            self._install_sigterm()

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_spec(
        cls,
        spec_path: str | os.PathLike[str],
        report_path: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Job:
        spec = JobSpec.read(spec_path)
        if report_path is None:
            report_path = Path(spec.output_dir) / "report.json"
        return cls(spec, report_path, **kwargs)

    @classmethod
    def from_env(cls, **kwargs: Any) -> Job:
        """The job described by ``AUTOSPLIT_JOB_SPEC``, reporting to ``AUTOSPLIT_JOB_REPORT``."""
        spec_path = os.environ.get(ENV_SPEC)
        if not spec_path:
            raise JobSpecError(f"{ENV_SPEC} is not set; run this code through 'autosplit wrapper <spec>'")
        return cls.from_spec(spec_path, os.environ.get(ENV_REPORT), **kwargs)

    def _install_sigterm(self) -> None:
        try:
            signal.signal(signal.SIGTERM, self._on_sigterm)
        except ValueError:  # not the main thread: the caller must poll should_stop() itself
            pass

    def _on_sigterm(self, signum: int, frame: Any) -> None:
        self._stop_signal = True

    # ------------------------------------------------------------------ deadline
    @property
    def soft_deadline(self) -> float | None:
        """Absolute time (epoch seconds) after which the job stops at the next unit boundary, or None."""
        candidates = []
        if self.spec.soft_deadline is not None:
            candidates.append(self.spec.soft_deadline)
        if self.spec.soft_limit_seconds is not None:
            candidates.append(self.started + self.spec.soft_limit_seconds)
        for name, relative in ((ENV_SOFT_DEADLINE, False), (ENV_SOFT_LIMIT, True)):
            value = os.environ.get(name)
            if value:
                try:
                    candidates.append(self.started + float(value) if relative else float(value))
                except ValueError:
                    pass
        return min(candidates) if candidates else None

    def should_stop(self) -> bool:
        """True once the soft deadline has passed or SIGTERM arrived."""
        if self._stop_signal:
            return True
        deadline = self.soft_deadline
        return deadline is not None and self._clock() >= deadline

    def _may_start_next(self) -> bool:
        # At least one unit per job, so a job that starts late still makes progress (its hard limit protects).
        if self._done or self._first_unit_started is not None:
            if self.should_stop():
                self.soft_stopped = True
                return False
        elif self._stop_signal:
            self.soft_stopped = True
            return False
        return True

    # ------------------------------------------------------------------ unit loops
    def iter_units(self) -> Iterator[Unit]:
        """Yield the job's units; each counts as processed when the next is requested or the loop ends."""
        for unit in self.units:
            if unit.key in self._done:
                continue
            if not self._may_start_next():
                return
            start = self._clock()
            self._first_unit_started = self._first_unit_started or start
            self._start_unit(unit, start)
            yield unit
            self._current = None
            self._mark_done(unit, self._clock() - start)
            self._maybe_checkpoint()

    def iter_lumis(
        self,
        branches: list[str] | None = None,
        *,
        tree: str = "Events",
        library: str = "np",
        files: list[str] | None = None,
    ) -> Iterator[tuple[Unit, Any]]:
        """Columnar helper: for each input file, read ``branches`` once with uproot and yield, per unit of
        the job in that file, ``(unit, arrays)`` holding only that lumi's events.

        ``library`` is uproot's (``"np"`` for a dict of numpy arrays, ``"ak"`` for awkward). A lumi spanning
        several files is yielded once per file; it counts as processed when all its parts are.
        The file's read time is shared among its units in proportion to their events.

        A soft stop (deadline or SIGTERM) never leaves a lumi half done: once one file's part of a lumi has
        been yielded, the loop goes on to the lumi's other parts (and only those) before it stops. Stopping
        in between would leave that part's events in the job's outputs while the lumi goes back to be
        processed again by another job: counted twice.
        """
        import numpy as np
        import uproot

        wanted = files or sorted({lfn for unit in self.units for lfn in unit.files})
        stopping = False
        for lfn in wanted:
            units = [u for u in self.units if lfn in u.files and u.key not in self._done]
            if stopping or (units and not self._may_start_next()):
                # Stopping: only the remaining parts of lumis already begun, then stop.
                stopping = True
                if not any(self._partly_done(u) for u in self.units):
                    return
                units = [u for u in units if self._partly_done(u)]
            if not units:
                continue
            read_start = self._clock()
            self._first_unit_started = self._first_unit_started or read_start
            with uproot.open(lfn) as handle:
                events = handle[tree]
                names = list(dict.fromkeys([*(branches or []), "run", "luminosityBlock"]))
                missing = [name for name in names if name not in events.keys()]
                if missing:
                    raise JobSpecError(f"{lfn}: tree {tree!r} has no branch {', '.join(map(repr, missing))}")
                arrays = events.arrays(names, library=library)
            runs = np.asarray(arrays["run"], dtype=np.int64)
            lumis = np.asarray(arrays["luminosityBlock"], dtype=np.int64)
            keys = runs * 2**32 + lumis
            order = np.argsort(keys, kind="stable")
            sorted_keys = keys[order]
            read_seconds = self._clock() - read_start
            unit_keys = np.array([u.run * 2**32 + u.lumi for u in units], dtype=np.int64)
            lows = sorted_keys.searchsorted(unit_keys, "left")
            highs = sorted_keys.searchsorted(unit_keys, "right")
            total = int((highs - lows).sum()) or 1
            for unit, lo, hi in zip(units, lows.tolist(), highs.tolist(), strict=True):
                if not self._partly_done(unit) and (
                    stopping or (unit is not units[0] and not self._may_start_next())
                ):
                    stopping = True  # a lumi not begun yet: skipped; begun ones still get their parts
                    continue
                count = hi - lo
                index = order[lo:hi]
                if library == "np":
                    selection = {name: arrays[name][index] for name in arrays}
                else:
                    selection = arrays[index]
                start = self._clock()
                self._start_unit(unit, start, before=self._part_totals.get(unit.key, [0.0])[0])
                yield unit, selection
                self._current = None
                seconds = self._clock() - start + read_seconds * count / total
                self._mark_part_done(unit, lfn, seconds, count)
                self._maybe_checkpoint()

    def _partly_done(self, unit: Unit) -> bool:
        """True for a lumi some of whose files' parts were processed, not all (:meth:`iter_lumis`)."""
        return unit.key in self._parts_left and unit.key not in self._done

    def _start_unit(self, unit: Unit, start: float, before: float = 0.0) -> None:
        """Record that ``unit`` (or one file's part of it) starts now, in memory and in the journal."""
        self._current = unit
        self._current_started = start
        self._current_before = before
        record = {"start": {"run": unit.run, "lumi": unit.lumi}, "at": start, "before": round(before, 6)}
        with open(self._journal, "a") as journal:
            journal.write(json.dumps(record) + "\n")
            journal.flush()

    def _in_progress(self, now: float) -> dict[str, Any] | None:
        """The unit abandoned in the middle (started, not finished), with the seconds spent on it."""
        unit = self._current
        if unit is None or unit.key in self._done or self._current_started is None:
            return None
        seconds = self._current_before + max(now - self._current_started, 0.0)
        return {"run": unit.run, "lumi": unit.lumi, "seconds": round(seconds, 6), "events": None}

    def _mark_part_done(self, unit: Unit, lfn: str, seconds: float, events: int) -> None:
        """Record one file's part of a unit; the unit is processed once every file holding it is."""
        left = self._parts_left.setdefault(unit.key, set(unit.files))
        left.discard(lfn)
        spent = self._part_totals.setdefault(unit.key, [0.0, 0])
        spent[0] += seconds
        spent[1] += events
        if not left:
            if unit.events_processed is None:
                unit.events_processed = int(spent[1])
            self._mark_done(unit, spent[0])

    def mark_done(self, unit: Unit, events: int | None = None, seconds: float | None = None) -> None:
        """Declare a unit processed when not using the iterators (events and seconds optional)."""
        if events is not None:
            unit.events_processed = events
        self._mark_done(unit, seconds)

    def _mark_done(self, unit: Unit, seconds: float | None) -> None:
        if unit.key in self._done:
            return
        record: dict[str, Any] = {
            "run": unit.run,
            "lumi": unit.lumi,
            "events": unit.events if unit.events_processed is None else int(unit.events_processed),
            "seconds": None if seconds is None else round(float(seconds), 6),
            **{k: v for k, v in unit.features.items() if isinstance(v, int | float | str | bool)},
        }
        self._done[unit.key] = record
        with open(self._journal, "a") as journal:
            journal.write(json.dumps(record) + "\n")
            journal.flush()

    # ------------------------------------------------------------------ checkpoints
    def on_checkpoint(self, callback: Callable[[], Any]) -> None:
        """Ask for automatic checkpoints: every ``spec.checkpoint_seconds`` (set by the task's
        ``[limits] checkpoint_interval``) the unit loops call ``callback()`` between two units — it must
        close the current output file(s), :meth:`add_output` them and start new ones — then
        :meth:`checkpoint`."""
        self._checkpoint_callback = callback

    def checkpoint(self) -> Path:
        """Declare a commit point: the units processed so far are covered by the outputs added so far
        (closed files that will not change). Writes ``<report>.checkpoint`` atomically, a report of those
        units and outputs. If the job is then lost or killed, the pipeline commits these outputs and
        credits these units (once), so only the work since the last checkpoint is done again."""
        if any(self._partly_done(u) for u in self.units):
            raise JobSpecError(
                "checkpoint() inside a lumi that spans files: finish the lumi's other parts first"
            )
        self._build_report(EXIT_OK, "", None, checkpoint=True).to_json(self._checkpoint_path)
        self._last_checkpoint = self._clock()
        return self._checkpoint_path

    def _maybe_checkpoint(self) -> None:
        interval = self.spec.checkpoint_seconds
        if self._checkpoint_callback is None or interval is None or not self._done:
            return
        if self._clock() - self._last_checkpoint < interval or any(self._partly_done(u) for u in self.units):
            return
        self._checkpoint_callback()
        self.checkpoint()

    # ------------------------------------------------------------------ outputs
    def output_path(self, name: str) -> Path:
        """A path for an output file inside the job's output directory (no ``..`` or absolute names)."""
        candidate = Path(name)
        if candidate.is_absolute() or ".." in candidate.parts or not name.strip():
            raise JobSpecError(f"output name {name!r} must be a relative path inside the output directory")
        return Path(self.spec.output_dir) / candidate

    def add_output(self, path: str | os.PathLike[str]) -> None:
        """Record an output file; its size and adler32 checksum go into the report."""
        self._outputs.append(Path(path))

    # ------------------------------------------------------------------ report
    def finish(
        self, exit_code: int = EXIT_OK, exit_message: str = "", *, failed_unit: Unit | None = None
    ) -> JobReport:
        """Write the report (atomically) and return it. Called once; later calls return the same report.

        ``failed_unit`` names the unit the code was processing when it failed (``meta.failed_unit``), so the
        pipeline can isolate it instead of retrying the whole job.
        """
        if self._finished:
            return JobReport.from_json(self.report_path)
        report = self._build_report(exit_code, exit_message, failed_unit)
        self.report_path.parent.mkdir(parents=True, exist_ok=True)
        report.to_json(self.report_path)
        self._journal.unlink(missing_ok=True)
        self._finished = True
        return report

    def _build_report(
        self, exit_code: int, exit_message: str, failed_unit: Unit | None, *, checkpoint: bool = False
    ) -> JobReport:
        now = self._clock()
        done = list(self._done.values())
        unfinished = [{"run": u.run, "lumi": u.lumi} for u in self.units if u.key not in self._done]
        outputs = []
        for path in self._outputs:
            if path.is_file():
                outputs.append(
                    OutputFile(name=str(path), bytes=path.stat().st_size, checksum=adler32_file(path))
                )
            else:
                outputs.append(OutputFile(name=str(path)))
        first = self._first_unit_started or now
        loop_seconds = sum(d["seconds"] or 0.0 for d in done)
        report = JobReport(
            job_id=self.spec.job_id,
            stage=self.spec.stage,
            attempt=self.spec.attempt,
            site=self.spec.site or os.environ.get(ENV_SITE),
            exit_code=exit_code,
            exit_message=exit_message,
            wall_seconds=max(now - self.started, 0.0),
            init_seconds=max(first - self.started, 0.0),
            loop_seconds=loop_seconds,
            units=done,
            unfinished=unfinished,
            in_progress=(
                self._in_progress(now)
                if failed_unit is None and exit_code == EXIT_OK and not checkpoint
                else None
            ),
            outputs=outputs,
            soft_stopped=self.soft_stopped and not checkpoint,
            meta={
                "spec_digest": _digest(self.spec),
                **({"checkpoint": True} if checkpoint else {}),
                **({"failed_unit": [failed_unit.run, failed_unit.lumi]} if failed_unit is not None else {}),
            },
        )
        return report

    def __enter__(self) -> Job:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        if exc is None:
            self.finish()
        else:
            message = "".join(traceback.format_exception_only(exc_type, exc)).strip()
            self.finish(EXIT_USER_ERROR, message[-2000:], failed_unit=self._current)
        return False


def checkpoint_path(report_path: str | os.PathLike[str]) -> Path:
    """Where a job writes its checkpoint report, next to its report."""
    path = Path(report_path)
    return path.with_name(path.name + ".checkpoint")


def _digest(spec: JobSpec) -> str:
    return hashlib.sha256(msgspec.json.encode(spec)).hexdigest()[:16]


def load_callable(target: str) -> Callable[[Job], Any]:
    """Import ``module:function`` (the current directory is importable, as for ``python -m``)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise JobSpecError(f"callable {target!r} must look like 'module:function'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise JobSpecError(f"cannot import {module_name!r} for {target!r}: {exc}") from None
    func = getattr(module, attr, None)
    if not callable(func):
        raise JobSpecError(f"{target!r}: {module_name} has no callable {attr!r}")
    return func


def run_callable(spec_path: str, report_path: str, target: str | None = None) -> int:
    """Run the spec's Python callable in this process; returns the payload exit code (0 or 80)."""
    job = Job.from_spec(spec_path, report_path)
    func = load_callable(target or job.spec.code.get("callable", ""))
    with job:
        func(job)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """``python -m autosplit.worker SPEC REPORT [module:function]`` — the payload process of a callable."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (2, 3):
        print("usage: python -m autosplit.worker SPEC REPORT [module:function]", file=sys.stderr)
        return 2
    try:
        return run_callable(*args)
    except JobSpecError as exc:
        print(f"autosplit worker: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception:
        traceback.print_exc()
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
