"""The job side of the condor backend: the entry point of the zipapp every HTCondor job runs.

A job on a pool shares no filesystem with the submit host. HTCondor transfers into its scratch
directory: the job spec (``spec.json``), the user's code as ``sandbox.tar.gz``, the job's local input
files, and the zipapp (``autosplit-job.pyz``, built at submit time by :mod:`autosplit.pipeline.sandbox`)
holding this module, autosplit's job-side modules and the pure-Python chirp client ``htchirp``.

``python3 autosplit-job.pyz boot ...`` (the job's executable) needs only a Python 3 standard library. It

* reads the site the job landed on from the machine ad (``$_CONDOR_MACHINE_AD``, attribute
  ``--site-attribute``, default ``GLIDEIN_CMSSite``) into ``AUTOSPLIT_SITE``, so the report names it;
* unpacks the sandbox into the scratch directory (no absolute paths, no ``..``, no links out);
* runs the wrapper (:mod:`autosplit.pipeline.wrapper`, from the zipapp) under the task's job interpreter
  (``--python``, the ``[backend] job_python`` of the task: a CVMFS, site or container Python with the
  payload's software; autosplit itself need not be installed there);
* every ``--chirp-interval`` seconds publishes the units and events done so far into the job ad with chirp
  (``AutosplitUnitsDone``, ``AutosplitEventsDone``, ``AutosplitProgressTime``) and reads
  ``AutosplitStopRequested``: once true (``autosplit kill --jobs`` sets it through the schedd) the wrapper
  gets SIGTERM, so the payload stops at the next unit boundary and the job ends normally, its report and
  outputs transferred back;
* sends each new checkpoint of the payload (``report.json.checkpoint`` and the closed outputs it lists) to
  the job's directory on the access point with chirp, so that a job killed at its hard limit or removed
  still credits the units of its last checkpoint (:class:`CheckpointUpload`; not under ASO stage-out);
* makes sure ``report.json`` and ``out/`` exist at the end (HTCondor holds a job whose listed output is
  missing), writing a minimal report naming every unit unfinished if the wrapper could not run at all.

``python autosplit-job.pyz wrapper ...`` is the wrapper itself (run by ``boot`` under the job interpreter).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPORT_FORMAT = "autosplit-jobreport/1"
EXIT_WRAPPER_ERROR = 83
PROGRESS_ATTRS = ("AutosplitUnitsDone", "AutosplitEventsDone", "AutosplitProgressTime")
STOP_ATTR = "AutosplitStopRequested"
FINAL_UPLOAD_SECONDS = 30.0  # the last checkpoint upload, after the wrapper ended


def machine_attribute(name: str, path: str | None = None) -> str | None:
    """The value of ``name`` in the machine ad file (``$_CONDOR_MACHINE_AD``), unquoted; None if absent."""
    path = path or os.environ.get("_CONDOR_MACHINE_AD")
    if not path:
        return None
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return None
    wanted = name.lower()
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == wanted:
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            return value or None
    return None


def unpack_sandbox(archive: Path, dest: Path) -> list[str]:
    """Unpack the user's code into ``dest``; members escaping it (absolute, ``..``, links out) are refused."""
    if not archive.exists():
        return []
    names = []
    with tarfile.open(archive, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
            names = tar.getnames()
        else:  # pragma: no cover - Python without PEP 706 filters
            root = dest.resolve()
            members = []
            for member in tar.getmembers():
                target = (dest / member.name).resolve()
                if not str(target).startswith(str(root)) or member.issym() or member.islnk():
                    raise ValueError(f"sandbox member {member.name!r} leaves the job's directory")
                members.append(member)
            tar.extractall(dest, members=members)
            names = [m.name for m in members]
    return names


def progress(report: Path) -> tuple[int, int]:
    """(units, events) the worker journaled as finished so far (``<report>.progress``)."""
    journal = report.with_name(report.name + ".progress")
    units: set[tuple[object, object]] = set()
    events = 0
    try:
        lines = journal.read_text(errors="replace").splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and "run" in record and "lumi" in record:
            key = (record.get("run"), record.get("lumi"))
            if key not in units:
                units.add(key)
                value = record.get("events")
                events += int(value) if isinstance(value, int) and not isinstance(value, bool) else 0
    return len(units), events


class Chirp:
    """Job ad updates through the starter's chirp proxy (``+WantIOProxy = true``); silent when absent."""

    def __init__(self) -> None:
        self.client = None
        self.error = None
        try:
            import htchirp  # pure Python, shipped inside the zipapp

            self._module = htchirp
        except ImportError as exc:  # pragma: no cover - the zipapp always carries it
            self._module = None
            self.error = str(exc)

    def _connect(self):
        if self._module is None:
            return None
        if self.client is None:
            try:
                self.client = self._module.HTChirp()
                self.client.connect()
            except Exception as exc:  # noqa: BLE001 - no chirp on this slot: no live progress, no stop
                self.client = None
                self.error = str(exc)
        return self.client

    def _call(self, method: str, *args) -> tuple[bool, object]:
        """``(succeeded, result)`` of one chirp request; keeps the error of a failure. A refusal by the
        server (``ChirpError``) keeps the connection; any other failure drops it (the next request
        reconnects)."""
        client = self._connect()
        if client is None:
            return False, None
        try:
            return True, getattr(client, method)(*args)
        except Exception as exc:  # noqa: BLE001 - chirp trouble never fails the job
            self.error = str(exc)
            if not isinstance(exc, self._module.HTChirp.ChirpError):  # a refusal leaves the connection fine
                self.close()
            return False, None

    def set(self, attr: str, expr: str) -> bool:
        return self._call("set_job_attr", attr, expr)[0]

    def get(self, attr: str) -> str | None:
        ok, value = self._call("get_job_attr", attr)
        return value if ok else None

    def put(self, local: Path, remote: str) -> bool:
        """Copy ``local`` to ``remote`` (relative to the job's ``initialdir`` on the access point), owner-only."""
        return self._call("put", str(local), remote, "wct", 0o600)[0]

    def rename(self, old: str, new: str) -> bool:
        return self._call("rename", old, new)[0]

    def mkdir(self, remote: str) -> bool:
        return self._call("mkdir", remote, 0o700)[0]

    def remove(self, remote: str) -> bool:
        return self._call("remove", remote)[0]

    def close(self) -> None:
        if self.client is not None:
            try:
                self.client.disconnect()
            except Exception:  # noqa: BLE001
                pass
        self.client = None


def relative_outputs(report: Path, out_dir: Path) -> None:
    """Output names relative to ``out/`` (they come back by output transfer into the job's submit-side
    output directory, so a scratch path would mean nothing there)."""
    try:
        document = json.loads(report.read_text())
    except (OSError, ValueError):
        return
    outputs = document.get("outputs") if isinstance(document, dict) else None
    if not isinstance(outputs, list):
        return
    root = out_dir.resolve()
    changed = False
    for output in outputs:
        if not isinstance(output, dict) or not isinstance(output.get("name"), str):
            continue
        path = Path(output["name"])
        path = (path if path.is_absolute() else out_dir.parent / path).resolve()
        try:
            name = path.relative_to(root).as_posix()
        except ValueError:
            continue  # outside out/: the postjob refuses it with a clear message
        if name != output["name"]:
            output["name"] = name
            changed = True
    if changed:
        tmp = report.with_name(report.name + ".tmp")
        tmp.write_text(json.dumps(document))
        os.replace(tmp, report)


class CheckpointUpload:
    """Sends each new checkpoint of the job to its directory on the access point, through chirp.

    The payload's checkpoint (``report.json.checkpoint``, see :func:`autosplit.worker.checkpoint_path`)
    stays in the scratch directory: output transfer does not bring it back, and a removed job transfers
    nothing. Uploaded, it lets the postjob of a job killed at its hard limit or removed credit the units of
    the last checkpoint and commit their outputs. (A job HTCondor restarts after losing its node starts
    again from its first unit under the same attempt, and replaces the checkpoint.) The closed outputs it
    lists go first (each once), then the report, under a temporary name renamed into place: the postjob
    never sees a checkpoint whose outputs are missing. Without chirp on the slot nothing is sent.
    """

    REMOTE = "report.json.checkpoint"  # where the postjob looks, relative to the job's initialdir

    def __init__(self, chirp: Chirp, report: Path, out_dir: Path) -> None:
        self.chirp = chirp
        self.local = report.with_name(report.name + ".checkpoint")
        self.out_dir = out_dir
        self.sent: dict[str, tuple[int, int]] = {}  # output name -> (size, mtime_ns) sent
        self.made: set[str] = set()  # directories made under out/ on the access point
        self.uploaded: tuple[int, int, int] | None = None  # (inode, mtime_ns, size) of the last upload
        self.uploads = 0
        chirp.remove(self.REMOTE)  # an earlier attempt's (the postjob also checks the attempt number)

    def sync(self, deadline: float = math.inf) -> bool:
        """Upload the checkpoint if it changed since the last upload; returns whether one was uploaded.
        Gives up (until the next call) once ``time.monotonic()`` passes ``deadline``."""
        try:
            info = self.local.stat()
        except OSError:
            return False
        stamp = (info.st_ino, info.st_mtime_ns, info.st_size)  # the worker replaces it atomically
        if stamp == self.uploaded:
            return False
        staged = self.local.with_name(self.local.name + ".upload")
        try:
            staged.write_bytes(self.local.read_bytes())
            relative_outputs(staged, self.out_dir)
            outputs = json.loads(staged.read_text()).get("outputs") or []
        except (OSError, ValueError, AttributeError):
            return False  # being replaced right now: the next round sends it
        for output in outputs:
            name = output.get("name") if isinstance(output, dict) else None
            if not isinstance(name, str) or time.monotonic() > deadline or not self._send_output(name):
                return False
        temporary = f".{self.REMOTE}.tmp"
        if not (self.chirp.put(staged, temporary) and self.chirp.rename(temporary, self.REMOTE)):
            return False
        self.uploaded = stamp
        self.uploads += 1
        return True

    def _send_output(self, name: str) -> bool:
        parts = Path(name).parts
        if not parts or Path(name).is_absolute() or ".." in parts:
            return False  # outside out/: the postjob would refuse this checkpoint anyway
        path = self.out_dir / name
        try:
            info = path.stat()
        except OSError:
            return False
        if self.sent.get(name) == (info.st_size, info.st_mtime_ns):
            return True
        directories = ["/".join(("out", *parts[:depth])) for depth in range(1, len(parts))]
        for directory in directories:
            if directory not in self.made:
                self.chirp.mkdir(directory)  # refused when it exists already: harmless
        if not self.chirp.put(path, f"out/{name}"):
            return False  # a mkdir lost to a chirp outage is made again next round
        self.made.update(directories)
        self.sent[name] = (info.st_size, info.st_mtime_ns)
        return True


def _stage_out(spec: Path) -> bool:
    """Whether the job stages its outputs out itself (ASO): ``stage_out`` set in its spec."""
    try:
        return bool(json.loads(spec.read_text()).get("stage_out"))
    except (OSError, ValueError, AttributeError):
        return False


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().strip('"').lower() in ("true", "1", "yes")


def _fallback_report(spec_path: Path, report: Path, message: str) -> None:
    """A minimal valid report (every unit unfinished) when the wrapper could not run at all."""
    try:
        spec = json.loads(spec_path.read_text())
    except (OSError, ValueError):
        spec = {}
    units = [
        {"run": u["run"], "lumi": u["lumi"]}
        for f in spec.get("files", [])
        for u in f.get("units", [])
        if isinstance(u, dict) and "run" in u and "lumi" in u
    ]
    document = {
        "format": REPORT_FORMAT,
        "job_id": str(spec.get("job_id", "unknown")),
        "stage": str(spec.get("stage", "processing")),
        "attempt": int(spec.get("attempt", 0) or 0),
        "site": os.environ.get("AUTOSPLIT_SITE") or spec.get("site"),
        "exit_code": EXIT_WRAPPER_ERROR,
        "exit_message": message[:2000],
        "unfinished": units,
        "meta": {"report_source": "wrapper"},
    }
    tmp = report.with_name(report.name + ".tmp")
    tmp.write_text(json.dumps(document))
    os.replace(tmp, report)


def boot(args: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="autosplit-job.pyz boot")
    parser.add_argument("--python", required=True)
    parser.add_argument("--spec", default="spec.json")
    parser.add_argument("--report", default="report.json")
    parser.add_argument("--sandbox", default="sandbox.tar.gz")
    parser.add_argument("--site-attribute", default="GLIDEIN_CMSSite")
    parser.add_argument("--chirp-interval", type=float, default=30.0)
    parser.add_argument("--grace", default="30")
    parser.add_argument("--attempt", default="0")
    parser.add_argument("--no-hard-limit", action="store_true")
    opts = parser.parse_args(args)
    here = Path.cwd()
    spec, report = here / opts.spec, here / opts.report
    (here / "out").mkdir(exist_ok=True)
    env = dict(os.environ)
    site = machine_attribute(opts.site_attribute)
    if site:
        env["AUTOSPLIT_SITE"] = site
        os.environ["AUTOSPLIT_SITE"] = site
    print(f"autosplit job: running in {here} at site {site or 'unknown'} with {opts.python}", file=sys.stderr)
    try:
        unpack_sandbox(here / opts.sandbox, here)
    except (OSError, ValueError, tarfile.TarError) as exc:
        _fallback_report(spec, report, f"cannot unpack the sandbox: {exc}")
        print(f"autosplit job: cannot unpack the sandbox: {exc}", file=sys.stderr)
        return EXIT_WRAPPER_ERROR
    pyz = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0].endswith(".pyz") else str(_zip_path())
    # The payload imports autosplit's job-side modules from the zipapp, and the user's code from here.
    env["PYTHONPATH"] = os.pathsep.join([pyz, str(here)])
    env.setdefault("PYTHONUNBUFFERED", "1")
    argv = [opts.python, "-s", pyz, "wrapper", str(spec), "--report", str(report), "--grace", opts.grace]
    argv += ["--attempt", opts.attempt]
    if opts.no_hard_limit:
        argv.append("--no-hard-limit")
    try:
        proc = subprocess.Popen(argv, env=env, cwd=here)
    except OSError as exc:
        _fallback_report(spec, report, f"cannot start the job interpreter {opts.python}: {exc}")
        print(f"autosplit job: cannot start {opts.python}: {exc}", file=sys.stderr)
        return EXIT_WRAPPER_ERROR

    def forward(signum, frame):  # HTCondor's remove/vacate signal: the wrapper stops the payload cleanly
        try:
            proc.send_signal(signum)
        except OSError:
            pass

    signal.signal(signal.SIGTERM, forward)
    chirp = Chirp()
    chirp.set("AutosplitSite", json.dumps(site or ""))
    # Under ASO a checkpoint's outputs are not registered for transfer: uploading them would help nothing.
    checkpoints = None if _stage_out(spec) else CheckpointUpload(chirp, report, here / "out")
    stop_sent = False
    last = (-1, -1)
    while True:
        try:
            code = proc.wait(timeout=opts.chirp_interval)
            break
        except subprocess.TimeoutExpired:
            pass
        if checkpoints is not None:
            checkpoints.sync()
        units, events = progress(report)
        if (units, events) != last:
            last = (units, events)
            chirp.set("AutosplitUnitsDone", str(units))
            chirp.set("AutosplitEventsDone", str(events))
            chirp.set("AutosplitProgressTime", str(int(time.time())))
        if not stop_sent and _truthy(chirp.get(STOP_ATTR)):
            stop_sent = True
            print(
                "autosplit job: stop requested through the schedd; stopping at a unit boundary",
                file=sys.stderr,
            )
            forward(signal.SIGTERM, None)
    if checkpoints is not None and code != 0:
        # One written since the last round (a job killed at its hard limit ends here); no new output is
        # started after 30 s: the schedd removes a job 60 s past its hard limit, and its report with it.
        checkpoints.sync(deadline=time.monotonic() + FINAL_UPLOAD_SECONDS)
    if not report.exists():
        _fallback_report(spec, report, f"the wrapper exited with {code} and left no report")
    else:
        relative_outputs(report, here / "out")
        try:
            done = json.loads(report.read_text()).get("units") or []
            chirp.set("AutosplitUnitsDone", str(len(done)))
            chirp.set("AutosplitEventsDone", str(sum(int(u.get("events") or 0) for u in done)))
        except (OSError, ValueError, AttributeError, TypeError):
            pass
    chirp.close()
    return code if code >= 0 else 128 - code


def _zip_path() -> Path:
    return Path(__file__).resolve().parents[2]


def wrapper(args: list[str]) -> int:
    """The wrapper proper (under the job interpreter): ``wrapper SPEC --report R --grace G --attempt N``."""
    import argparse

    parser = argparse.ArgumentParser(prog="autosplit-job.pyz wrapper")
    parser.add_argument("spec")
    parser.add_argument("--report", required=True)
    parser.add_argument("--grace", type=float, default=30.0)
    parser.add_argument("--attempt", type=int, default=None)
    parser.add_argument("--no-hard-limit", action="store_true")
    opts = parser.parse_args(args)
    from autosplit.pipeline.wrapper import run_wrapper

    try:
        result = run_wrapper(
            opts.spec,
            report_path=opts.report,
            attempt=opts.attempt,
            grace_seconds=opts.grace,
            enforce_hard_limit=not opts.no_hard_limit,
        )
    except Exception as exc:  # noqa: BLE001 - a bad spec, a payload that cannot start
        print(f"autosplit wrapper: {type(exc).__name__}: {exc}", file=sys.stderr)
        _fallback_report(Path(opts.spec), Path(opts.report), f"the wrapper could not run the job: {exc}")
        return EXIT_WRAPPER_ERROR
    report = result.report
    done = len(report.units) if report else 0
    print(f"autosplit wrapper: exit {result.exit_code}: {done} unit(s) processed", file=sys.stderr)
    return result.exit_code


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("boot", "wrapper"):
        print("usage: autosplit-job.pyz boot|wrapper ...", file=sys.stderr)
        return 2
    return boot(args[1:]) if args[0] == "boot" else wrapper(args[1:])


if __name__ == "__main__":
    sys.exit(main())
