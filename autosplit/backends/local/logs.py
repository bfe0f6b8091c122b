"""Writers for the text logs DAGMan keeps: job event logs, the JOBSTATE_LOG and ``<dag>.dagman.out``.

Job event logs use HTCondor's user-log text format (``condor_event.cpp``) with ISO dates, or its XML
format for ``log_xml = true``; ``htcondor2.JobEventLog`` reads both offline. Every writer buffers; :meth:`flush` is called once per
scheduler cycle.
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from pathlib import Path

_HOST = "<127.0.0.1:0>"
_MAX_OPEN_LOGS = 64


def _usage(seconds: float) -> str:
    total = int(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days} {hours:02d}:{minutes:02d}:{secs:02d}"


def _usage_line(user: float, system: float, what: str) -> str:
    return f"\t\tUsr {_usage(user)}, Sys {_usage(system)}  -  {what}\n"


def _xml_value(value: object) -> str:
    if isinstance(value, bool):
        return f'<b v="{"t" if value else "f"}"/>'
    if isinstance(value, int):
        return f"<i>{value}</i>"
    if isinstance(value, float):
        return f"<r>{value!r}</r>"
    text = str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return f"<s>{text}</s>"


class EventLogWriter:
    """Appends job events to HTCondor user logs (text format, or XML for ``log_xml = true``).

    Each event is one ``write`` on an ``O_APPEND`` descriptor, so several executors (a DAG and its
    sub-DAGs) can share a log file without interleaving events. The most recently used files stay open.
    """

    def __init__(self) -> None:
        self._files: OrderedDict[Path, int] = OrderedDict()
        self.xml: set[Path] = set()  # logs to write in HTCondor's XML (ClassAd) format
        self._clock = _Clock("%Y-%m-%d %H:%M:%S")

    def _fd(self, path: Path) -> int:
        fd = self._files.get(path)
        if fd is None:
            if len(self._files) >= _MAX_OPEN_LOGS:
                _, old = self._files.popitem(last=False)
                os.close(old)
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._files[path] = fd
        else:
            self._files.move_to_end(path)
        return fd

    def _write(
        self, paths: list[Path], code: int, cluster: int, proc: int, when: float, body: str, attrs: dict
    ) -> None:
        stamp = self._clock(when)
        text = f"{code:03d} ({cluster:03d}.{proc:03d}.000) {stamp} {body}...\n"
        xml = None
        for path in paths:
            if path in self.xml:
                if xml is None:
                    head = {
                        "EventTypeNumber": code,
                        "EventTime": stamp.replace(" ", "T"),
                        "Cluster": cluster,
                        "Proc": proc,
                        "Subproc": 0,
                    }
                    items = list(attrs.items())[:1] + list(head.items()) + list(attrs.items())[1:]
                    xml = (
                        "<c>\n"
                        + "".join(f'    <a n="{k}">{_xml_value(v)}</a>\n' for k, v in items)
                        + "</c>\n"
                    )
                os.write(self._fd(path), xml.encode())
            else:
                os.write(self._fd(path), text.encode())

    def submit(self, paths: list[Path], cluster: int, proc: int, when: float, node: str) -> None:
        body = f"Job submitted from host: {_HOST}\n    DAG Node: {node}\n"
        attrs = {"MyType": "SubmitEvent", "SubmitHost": _HOST, "LogNotes": f"DAG Node: {node}"}
        self._write(paths, 0, cluster, proc, when, body, attrs)

    def execute(self, paths: list[Path], cluster: int, proc: int, when: float) -> None:
        attrs = {"MyType": "ExecuteEvent", "ExecuteHost": _HOST}
        self._write(paths, 1, cluster, proc, when, f"Job executing on host: {_HOST}\n", attrs)

    def terminated(
        self,
        paths: list[Path],
        cluster: int,
        proc: int,
        when: float,
        exit_code: int,
        user: float = 0.0,
        system: float = 0.0,
    ) -> None:
        """Job terminated; ``exit_code`` < 0 means killed by signal ``-exit_code``. CPU times in seconds."""
        attrs: dict[str, object] = {"MyType": "JobTerminatedEvent", "TerminatedNormally": exit_code >= 0}
        if exit_code >= 0:
            head = f"\t(1) Normal termination (return value {exit_code})\n"
            attrs["ReturnValue"] = exit_code
        else:
            head = f"\t(0) Abnormal termination (signal {-exit_code})\n\t(0) No core file\n"
            attrs["TerminatedBySignal"] = -exit_code
        remote = f"Usr {_usage(user)}, Sys {_usage(system)}"
        none = f"Usr {_usage(0)}, Sys {_usage(0)}"
        attrs.update(
            {
                "RunRemoteUsage": remote,
                "RunLocalUsage": none,
                "TotalRemoteUsage": remote,
                "TotalLocalUsage": none,
                "SentBytes": 0.0,
                "ReceivedBytes": 0.0,
                "TotalSentBytes": 0.0,
                "TotalReceivedBytes": 0.0,
            }
        )
        body = (
            "Job terminated.\n"
            + head
            + _usage_line(user, system, "Run Remote Usage")
            + _usage_line(0, 0, "Run Local Usage")
            + _usage_line(user, system, "Total Remote Usage")
            + _usage_line(0, 0, "Total Local Usage")
            + "\t0  -  Run Bytes Sent By Job\n\t0  -  Run Bytes Received By Job\n"
            + "\t0  -  Total Bytes Sent By Job\n\t0  -  Total Bytes Received By Job\n"
        )
        self._write(paths, 5, cluster, proc, when, body, attrs)

    def evicted(self, paths: list[Path], cluster: int, proc: int, when: float) -> None:
        body = (
            "Job was evicted.\n\t(0) Job was not checkpointed.\n"
            + _usage_line(0, 0, "Run Remote Usage")
            + _usage_line(0, 0, "Run Local Usage")
            + "\t0  -  Run Bytes Sent By Job\n\t0  -  Run Bytes Received By Job\n"
        )
        attrs = {"MyType": "JobEvictedEvent", "Checkpointed": False, "TerminatedAndRequeued": False}
        self._write(paths, 4, cluster, proc, when, body, attrs)

    def aborted(self, paths: list[Path], cluster: int, proc: int, when: float, reason: str) -> None:
        attrs = {"MyType": "JobAbortedEvent", "Reason": reason}
        self._write(paths, 9, cluster, proc, when, f"Job was aborted.\n\t{reason}\n", attrs)

    def post_script(self, paths: list[Path], cluster: int, when: float, node: str, exit_code: int) -> None:
        attrs: dict[str, object] = {
            "MyType": "PostScriptTerminatedEvent",
            "TerminatedNormally": exit_code >= 0,
        }
        if exit_code >= 0:
            head = f"\t(1) Normal termination (return value {exit_code})\n"
            attrs["ReturnValue"] = exit_code
        else:
            head = f"\t(0) Abnormal termination (signal {-exit_code})\n"
            attrs["SignalNumber"] = -exit_code
        attrs["DAGNodeName"] = node
        body = f"POST Script terminated.\n{head}    DAG Node: {node}\n"
        self._write(paths, 16, cluster, 0, when, body, attrs)

    def flush(self) -> None:
        """Nothing to do: every event is written at once."""

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()


class JobstateLog:
    """DAGMan's JOBSTATE_LOG: ``<time> <node> <event> <condor id|value|-> <tag> - <sequence>``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.next_seq = self._max_seq(path) + 1
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "a")  # noqa: SIM115 - closed in close()

    @staticmethod
    def _max_seq(path: Path) -> int:
        """Largest sequence number already in the file (a rescue run continues from it)."""
        best = 0
        try:
            with open(path) as fh:
                for line in fh:
                    parts = line.split()
                    if len(parts) == 7 and parts[1] != "INTERNAL" and parts[6].isdigit():
                        best = max(best, int(parts[6]))
        except OSError:
            pass
        return best

    def take_seq(self) -> int:
        seq = self.next_seq
        self.next_seq += 1
        return seq

    def write(
        self, node: str, event: str, condor_id: str, tag: str, seq: int, when: float | None = None
    ) -> None:
        self._fh.write(
            f"{int(when if when is not None else time.time())} {node} {event} {condor_id} {tag} - {seq}\n"
        )

    def internal(self, text: str) -> None:
        self._fh.write(f"{int(time.time())} INTERNAL *** {text} ***\n")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class _Clock:
    """strftime cached per second (log lines are written far more often than the second changes)."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self._second = -1
        self._text = ""

    def __call__(self, when: float) -> str:
        second = int(when)
        if second != self._second:
            self._second = second
            self._text = time.strftime(self.fmt, time.localtime(second))
        return self._text


class DagmanOut:
    """``<dag>.dagman.out``: DAGMan's debug log (appended across runs), the key lines drivers look for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = open(path, "a")  # noqa: SIM115 - closed in close()
        self._pid = os.getpid()
        self._clock = _Clock("%m/%d/%y %H:%M:%S")

    def __call__(self, message: str) -> None:
        stamp = self._clock(time.time())
        for line in message.splitlines() or [""]:
            self._fh.write(f"{stamp} {line}\n")

    def exiting(self, status: int) -> None:
        self(f"**** condor_dagman (condor_DAGMAN) pid {self._pid} EXITING WITH STATUS {status}")

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()
