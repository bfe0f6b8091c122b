"""The job wrapper: runs a job's payload, measures it, enforces the hard limit, and leaves a valid report.

``autosplit wrapper SPEC`` is the executable of every job node. It starts the payload as a child process in
its own process group: a Python callable (``python -m autosplit.worker``) or any executable, which finds
its spec in ``AUTOSPLIT_JOB_SPEC`` and writes its report to ``AUTOSPLIT_JOB_REPORT``. It records the
payload's wall time, CPU time and peak RSS (from ``wait4``), and, where no batch system enforces it,
applies the hard limit: SIGTERM at ``hard_limit_seconds`` (the worker then stops at the next unit
boundary), SIGKILL after a grace period. Whatever happens, the report file holds a valid report afterwards
(built from the worker's progress journal when the payload could not write one, naming the unit the
payload was in the middle of as ``in_progress`` with the seconds it had spent on it), and the exit code
says what happened:

====  ==============================================================================================
code  meaning
====  ==============================================================================================
0     success: every unit processed, or a soft stop (the report lists the unfinished units)
80    the user code failed (an exception, or a non-zero exit of the executable)
81    the payload exited 0 but its report is missing or invalid (the units it journaled count)
82    killed at the hard limit (the report is marked ``hard_killed``; journaled units count)
83    the wrapper could not run the job (bad spec, payload not startable)
====  ==============================================================================================
"""

from __future__ import annotations

import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autosplit.jobreport import JobReport, JobReportError
from autosplit.worker import ENV_REPORT, ENV_SITE, ENV_SPEC, EXIT_USER_ERROR, JobSpec, JobSpecError

EXIT_OK = 0
EXIT_NO_REPORT = 81
EXIT_HARD_KILLED = 82
EXIT_WRAPPER_ERROR = 83
DEFAULT_GRACE_SECONDS = 30.0


@dataclass
class WrapperResult:
    """Outcome of one wrapped payload run."""

    exit_code: int
    report: JobReport | None
    payload_exit_code: int | None
    wall_seconds: float
    cpu_seconds: float
    peak_rss_bytes: int
    hard_killed: bool


def _assigned(spec: JobSpec) -> list[tuple[int, int]]:
    return [(int(u["run"]), int(u["lumi"])) for file in spec.files for u in file.units]


def _payload_argv(spec: JobSpec, spec_path: Path, report_path: Path) -> list[str]:
    code = spec.code
    if "callable" in code:
        return [
            sys.executable,
            "-m",
            "autosplit.worker",
            str(spec_path),
            str(report_path),
            str(code["callable"]),
        ]
    argv = code.get("executable")
    if isinstance(argv, str):
        argv = [argv]
    if not argv or not all(isinstance(a, str) for a in argv):
        raise JobSpecError(f"{spec_path}: code.executable must be a non-empty list of strings (argv)")
    return list(argv)


def _read_journal(report_path: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """Units the worker journaled as processed, and the last unit start not followed by its end (the unit
    in progress: ``{"run", "lumi", "at", "before"}``), or ``None``. A torn last line (a kill mid-write) and
    lines of unknown shape are ignored (format: :mod:`autosplit.worker`)."""
    journal = report_path.with_name(report_path.name + ".progress")
    units: list[dict[str, Any]] = []
    seen: set[tuple[int, int]] = set()
    started: dict[str, Any] | None = None
    try:
        lines = journal.read_text().splitlines()
    except OSError:
        return units, None
    for line in lines:
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(record, dict):
            continue
        start = record.get("start")
        if isinstance(start, dict):
            at, before = record.get("at"), record.get("before", 0.0)
            if _is_number(at) and _is_number(before) and before >= 0:
                started = {"run": start.get("run"), "lumi": start.get("lumi"), "at": at, "before": before}
            continue
        key = (record.get("run"), record.get("lumi"))
        if key not in seen:
            seen.add(key)
            units.append(record)
    if started is not None and (started["run"], started["lumi"]) in seen:
        started = None
    return units, started


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _fallback_report(
    spec: JobSpec,
    report_path: Path,
    *,
    exit_code: int,
    message: str,
    hard_killed: bool,
    ended: float | None = None,
) -> JobReport:
    """A report from the progress journal, when the payload left none we can trust.

    Its units carry the journal's timings (the cost model learns from them); the postjob does not count
    them as done, since the payload never wrote the outputs that would cover them. The unit the payload
    had started and not finished when it ended (at ``ended``, seconds since the epoch) is ``in_progress``
    with the seconds it had spent on it (and ``meta.in_progress_unit``).
    """
    assigned = _assigned(spec)
    wanted = set(assigned)
    journaled, started = _read_journal(report_path)
    done = [u for u in journaled if (u.get("run"), u.get("lumi")) in wanted]
    in_progress = None
    if started is not None and ended is not None and (started["run"], started["lumi"]) in wanted:
        seconds = started["before"] + max(ended - started["at"], 0.0)
        in_progress = {"run": started["run"], "lumi": started["lumi"], "seconds": round(seconds, 6)}
    common = dict(
        job_id=spec.job_id,
        stage=spec.stage,
        attempt=spec.attempt,
        site=spec.site,
        exit_code=exit_code,
        exit_message=message,
        hard_killed=hard_killed,
    )
    for units, source in ((done, "wrapper-journal"), ([], "wrapper")):
        keys = {(u["run"], u["lumi"]) for u in units}
        meta: dict[str, Any] = {"report_source": source}
        cut = None
        if in_progress is not None and (in_progress["run"], in_progress["lumi"]) not in keys:
            cut = in_progress
            meta["in_progress_unit"] = [cut["run"], cut["lumi"]]
        try:
            return JobReport(
                **common,
                units=units,
                unfinished=[{"run": r, "lumi": lu} for r, lu in assigned if (r, lu) not in keys],
                in_progress=cut,
                meta=meta,
            )
        except JobReportError:  # a journal line that is not a valid unit: count nothing as processed
            continue
    raise AssertionError("unreachable: a report without units is always valid")


class _HardLimit:
    """SIGTERM the payload's process group at the limit, SIGKILL it after the grace period."""

    def __init__(self, pgid: int, limit_seconds: float | None, grace_seconds: float) -> None:
        self.pgid = pgid
        self.grace_seconds = grace_seconds
        self.fired = False
        self.requested = False
        self._exited = threading.Event()
        self._thread = None
        if limit_seconds is not None:
            self._thread = threading.Thread(target=self._run, args=(limit_seconds,), daemon=True)
            self._thread.start()

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.pgid, signum)
        except ProcessLookupError:
            pass

    def _run(self, limit_seconds: float) -> None:
        if self._exited.wait(limit_seconds):
            return
        self._stop()

    def _stop(self) -> None:
        self.fired = True
        self._signal(signal.SIGTERM)
        if not self._exited.wait(self.grace_seconds):
            self._signal(signal.SIGKILL)

    def stop_now(self) -> None:
        """Stop the payload now (the wrapper itself got SIGTERM: a kill or a batch-system removal)."""
        if not self.fired and not self._exited.is_set():
            self.requested = True
            threading.Thread(target=self._stop, daemon=True).start()

    def payload_exited(self) -> None:
        self._exited.set()
        if self._thread is not None:
            self._thread.join()


def run_wrapper(
    spec_path: str | os.PathLike[str],
    *,
    report_path: str | os.PathLike[str] | None = None,
    site: str | None = None,
    attempt: int | None = None,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    enforce_hard_limit: bool = True,
    cwd: str | os.PathLike[str] | None = None,
) -> WrapperResult:
    """Run the job described by ``spec_path``; see the module docstring for what happens and exit codes."""
    spec_path = Path(spec_path).resolve()
    spec = JobSpec.read(spec_path)
    if attempt is not None:
        spec.attempt = int(attempt)
    if site:
        spec.site = site
    elif not spec.site and os.environ.get(ENV_SITE):
        spec.site = os.environ[ENV_SITE]
    report = Path(report_path) if report_path else Path(spec.output_dir) / "report.json"
    report = report.resolve()
    report.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)  # a report left by an earlier attempt must not be mistaken for ours
    report.with_name(report.name + ".progress").unlink(missing_ok=True)
    argv = _payload_argv(spec, spec_path, report)
    env = dict(os.environ)
    env.update({ENV_SPEC: str(spec_path), ENV_REPORT: str(report)})
    if spec.site:
        env[ENV_SITE] = spec.site

    import subprocess

    start = time.monotonic()
    try:
        proc = subprocess.Popen(
            argv, env=env, cwd=cwd, start_new_session=True, preexec_fn=_die_with_parent(os.getpid())
        )
    except OSError as exc:
        raise JobSpecError(f"cannot start the payload {argv[0]!r}: {exc.strerror or exc}") from None
    reaper = _start_reaper(proc.pid)
    limit = spec.hard_limit_seconds if enforce_hard_limit else None
    guard = _HardLimit(proc.pid, limit, grace_seconds)
    pid_file = report.with_name("wrapper.pid")
    pid_file.write_text(str(os.getpid()))
    previous = _forward_sigterm(guard)
    try:
        _wait_exit(proc.pid)  # exited, not reaped yet: its group id cannot be reused by another process
        _stop_reaper(reaper)  # whatever the payload left running in its group goes with it
        _, status, usage = _wait(proc.pid)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        pid_file.unlink(missing_ok=True)
    ended = time.time()  # the journal's unit starts are epoch times
    proc.returncode = os.waitstatus_to_exitcode(status)
    guard.payload_exited()
    wall = time.monotonic() - start
    cpu = usage.ru_utime + usage.ru_stime
    rss = int(usage.ru_maxrss) * 1024  # Linux reports kilobytes
    payload_code = proc.returncode

    if guard.fired:
        exit_code = EXIT_HARD_KILLED
        if guard.requested:
            message = f"stopped on request (SIGTERM to the wrapper; payload exit {payload_code})"
        else:
            message = f"killed at the hard limit of {limit:.0f} s (payload exit {payload_code})"
        final = _fallback_report(
            spec, report, exit_code=exit_code, message=message, hard_killed=True, ended=ended
        )
        try:  # a worker that stopped cleanly on SIGTERM wrote a full report: keep its units
            written = JobReport.from_json(report).validate(_assigned(spec))
            final = _fallback_from(written, exit_code, message)
        except JobReportError:
            if "in_progress_unit" not in final.meta:
                # Killed mid-unit without a journaled start (an executable that journals only finished
                # units): the first unit it had not finished is the one it was processing.
                done = {(u["run"], u["lumi"]) for u in final.units}
                cut = next((pair for pair in _assigned(spec) if pair not in done), None)
                if cut is not None:
                    final.meta = {**final.meta, "in_progress_unit": list(cut)}
    else:
        final, exit_code = _judge_report(spec, report, payload_code, ended)

    if "stage_out" in final.meta:  # only the wrapper says what it staged; a payload's claim is dropped
        final.meta = {k: v for k, v in final.meta.items() if k != "stage_out"}
    if exit_code in (EXIT_OK, EXIT_HARD_KILLED) and spec.stage_out and final.outputs and _from_payload(final):
        try:
            final.meta = {**final.meta, "stage_out": stage_out(spec, final, report.parent)}
        except Exception as exc:  # the outputs are not safe in the temporary area: the units cannot count
            exit_code = EXIT_NO_REPORT
            final.exit_code = EXIT_NO_REPORT
            final.exit_message = (
                f"stage-out to the site's temporary area failed: {' '.join(str(exc).split())}"
            )
    final.wall_seconds = round(wall, 6)
    final.cpu_seconds = round(cpu, 6)
    final.peak_rss_bytes = rss
    if spec.site and not final.site:
        final.site = spec.site
    final = _with_unaccounted(final, spec)
    final.to_json(report)
    report.with_name(report.name + ".progress").unlink(missing_ok=True)
    return WrapperResult(exit_code, final, payload_code, wall, cpu, rss, guard.fired)


def _from_payload(report: JobReport) -> bool:
    return report.meta.get("report_source") is None


# ---------------------------------------------------------------------------- no orphan payloads
# The payload runs in its own session (so a kill of the wrapper's process group does not reach it before the
# wrapper has decided what to do). If the wrapper itself is SIGKILLed (an executor or batch system removing
# the job, the OOM killer), nothing would stop the payload: it would run on outside the job's limits. Two
# guards, both set up before the payload can do any work:
#   * the payload process gets PR_SET_PDEATHSIG = SIGKILL (Linux): the kernel kills it when the wrapper dies;
#   * a reaper process (forked, in a session of its own, holding the read end of a pipe whose write end only
#     the wrapper has) kills the payload's whole process group, grandchildren included, when the pipe
#     closes: when the wrapper exits, however it exits.
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int):
    """``preexec_fn`` of the payload: SIGKILL it when the wrapper dies (Linux; a no-op elsewhere)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the wrapper died before the guard was armed
            os._exit(137)

    return arm


@dataclass
class _Reaper:
    pid: int
    pipe: int


def _start_reaper(pgid: int) -> _Reaper | None:
    """Fork the process that kills the payload's group ``pgid`` once the wrapper is gone (see above)."""
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return None
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the reaper: nothing but the pipe and the payload's group
        try:
            os.setsid()
            devnull = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.closerange(3, read_end)
            os.closerange(read_end + 1, 65536)
            while True:
                try:
                    if not os.read(read_end, 1):
                        break
                except InterruptedError:
                    continue
            try:
                os.killpg(pgid, signal.SIGKILL)
            except OSError:
                pass
        finally:
            os._exit(0)
    os.close(read_end)
    return _Reaper(pid, write_end)


def _stop_reaper(reaper: _Reaper | None) -> None:
    if reaper is None:
        return
    os.close(reaper.pipe)
    try:
        os.waitpid(reaper.pid, 0)
    except ChildProcessError:
        pass


def stage_out(spec: JobSpec, report: JobReport, job_dir: Path) -> dict[str, Any]:
    """Copy the report's outputs to the site's temporary area and register them for transfer.

    Destination names are ``<job>/<name relative to the job's output directory>``. Returns what the
    postjob needs (the staged records, and whether the site's temporary-space budget admitted them).
    """
    from autosplit.aso import register_outputs, stage_to_temp

    info = spec.stage_out or {}
    out_dir = Path(spec.output_dir).resolve()
    outputs = {}
    for output in report.outputs:
        local = Path(output.name)
        local = local if local.is_absolute() else out_dir / local
        relative = local.resolve().relative_to(out_dir)  # ValueError for a path outside the directory
        outputs[str(local)] = f"{spec.job_id}/{relative.as_posix()}"
    staged = stage_to_temp(
        outputs, info["temp_root"], task=spec.task, job_id=spec.job_id, attempt=spec.attempt
    )
    registration = register_outputs(
        info["db"],
        spec.task,
        spec.job_id,
        spec.attempt,
        staged,
        temp_root=info["temp_root"],
        destination_root=info["destination"],
        source_site=info.get("site") or "local",
        dest_site="destination",
        temp_budget_bytes=info.get("budget_bytes"),
    )
    return {"staged": [s.to_dict() for s in staged], "admitted": registration.admitted}


def _forward_sigterm(guard: _HardLimit):
    """While the payload runs, a SIGTERM to the wrapper stops the payload gracefully (then SIGKILL)."""
    try:
        return signal.signal(signal.SIGTERM, lambda signum, frame: guard.stop_now())
    except ValueError:  # not the main thread
        return None


def _wait_exit(pid: int) -> None:
    """Block until ``pid`` has exited, leaving it to be reaped (and its resource usage read) by :func:`_wait`."""
    try:
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
    except (ChildProcessError, AttributeError):
        pass


def _wait(pid: int):
    while True:
        try:
            return os.wait4(pid, 0)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for clarity
            continue


def _fallback_from(written: JobReport, exit_code: int, message: str) -> JobReport:
    written.exit_code = exit_code
    written.exit_message = message
    written.hard_killed = True
    return written


def _judge_report(
    spec: JobSpec, report: Path, payload_code: int, ended: float | None = None
) -> tuple[JobReport, int]:
    """Decide the wrapper's exit code from the payload's exit code and the report it left (``ended``: when
    the payload ended, seconds since the epoch, for a unit it died in)."""
    try:
        written = JobReport.from_json(report).validate(_assigned(spec))
    except JobReportError as exc:
        if payload_code == 0:
            message = f"payload exited 0 but left no valid report: {exc}"
            return _fallback_report(
                spec, report, exit_code=EXIT_NO_REPORT, message=message, hard_killed=False, ended=ended
            ), (EXIT_NO_REPORT)
        message = f"payload exited with {payload_code} and left no valid report ({exc})"
        return _fallback_report(
            spec, report, exit_code=EXIT_USER_ERROR, message=message, hard_killed=False, ended=ended
        ), (EXIT_USER_ERROR)
    if payload_code != 0 or written.exit_code != 0:
        if written.exit_code == 0:
            written.exit_code = EXIT_USER_ERROR
            written.exit_message = f"payload exited with {payload_code}"
        return written, EXIT_USER_ERROR
    return written, EXIT_OK


def _with_unaccounted(report: JobReport, spec: JobSpec) -> JobReport:
    """Assigned units the report does not mention are unfinished (never silently lost)."""
    missing = report.unaccounted(_assigned(spec))
    if missing:
        report.unfinished = [*report.unfinished, *({"run": r, "lumi": lu} for r, lu in missing)]
    return report.validate()
