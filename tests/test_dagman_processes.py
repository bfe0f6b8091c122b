"""Process watcher (pidfd and thread fallback) and the job event log writer's atomic appends."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import htcondor2
import pytest

from autosplit.backends.local.logs import EventLogWriter
from autosplit.backends.local.processes import ProcessWatcher


@pytest.mark.parametrize("use_pidfd", [True, False])
def test_watcher_reports_exit_codes_and_signals(tmp_path: Path, use_pidfd: bool) -> None:
    watcher = ProcessWatcher()
    watcher._use_pidfd = use_pidfd and watcher._use_pidfd
    try:
        watcher.spawn("ok", ["/bin/sh", "-c", "exit 3"], cwd=tmp_path, env={})
        sleeper = watcher.spawn("slow", ["/bin/sleep", "30"], cwd=tmp_path, env={})
        exits = {}
        deadline = time.monotonic() + 10
        while "ok" not in exits:
            assert time.monotonic() < deadline
            exits.update({e.token: e for e in watcher.wait(0.5)})
        watcher.signal(sleeper.pid, signal.SIGTERM)
        while "slow" not in exits:
            assert time.monotonic() < deadline
            exits.update({e.token: e for e in watcher.wait(0.5)})
        assert exits["ok"].code == 3 and exits["slow"].code == -signal.SIGTERM and len(watcher) == 0
    finally:
        watcher.close()


def test_two_writers_share_a_log_without_interleaving(tmp_path: Path) -> None:
    log = tmp_path / "shared.log"
    writers = [EventLogWriter(), EventLogWriter()]
    for i in range(50):
        for n, writer in enumerate(writers):
            writer.submit([log], 100 + n, i, time.time(), f"N{n}")
            writer.terminated([log], 100 + n, i, time.time(), i % 3, 0.5, 0.25)
    for writer in writers:
        writer.close()
    events = list(htcondor2.JobEventLog(str(log)).events(stop_after=0))
    assert len(events) == 200
    ended = [e for e in events if e.type == htcondor2.JobEventType.JOB_TERMINATED]
    assert sorted(e["ReturnValue"] for e in ended) == sorted([i % 3 for i in range(50)] * 2)
