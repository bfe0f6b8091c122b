"""``autosplit aso ...``: the asynchronous stage-out agent and its database.

The command group lives with the subsystem; :mod:`autosplit.cli` only registers it. Also runnable without
the root command as ``python -m autosplit.aso ...`` (how the local backend starts agents), so nothing here
imports :mod:`autosplit.cli`.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import Any

import click
from rich.table import Table

from autosplit._cmdline import OneLineErrors, console, echo_json, human_bytes, human_seconds, key_value_table
from autosplit.aso.agent import AgentConfig, run_agent
from autosplit.aso.db import TransferDB, using_db
from autosplit.aso.flow import DestinationLimit, FlowLimits, RetryPolicy
from autosplit.aso.outcome import kill_job_transfers
from autosplit.aso.records import State
from autosplit.aso.status import status_summary
from autosplit.aso.transports import PosixTransport

_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


class ByteSize(click.ParamType):
    """``500``, ``64kB``, ``2GB``, ``1.5GiB`` -> bytes (decimal units unless ``iB``)."""

    name = "BYTES"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        unit = match.group(2).lower() if match else None
        if not match or unit not in _UNITS:
            self.fail(f"{value!r} is not a size (examples: 500, 64kB, 2GB, 1.5GiB)", param, ctx)
        return int(float(match.group(1)) * _UNITS[unit])


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
def aso() -> None:
    """Asynchronous stage-out: move job outputs from site temporary areas to their destination.

    Jobs copy their outputs to the site's temporary area and register them in a transfer database (SQLite);
    `aso run` is the agent that copies, verifies (size and checksum) and retries; postjobs wait (defer) until
    their files are final. One database per task by default.
    """


def _dest_limits(values: tuple[str, ...]) -> dict[str, DestinationLimit]:
    limits = {}
    for text in values:
        match = re.fullmatch(r"([^=]+)=(\d+)(?:,(.+))?", text)
        if not match:
            raise click.BadParameter(f"{text!r}: use SITE=N or SITE=N,BYTES", param_hint="--dest-limit")
        max_bytes = (
            ByteSize().convert(match.group(3), None, None) if match.group(3) else FlowLimits().max_bytes
        )
        limits[match.group(1)] = DestinationLimit(int(match.group(2)), max_bytes)
    return limits


@aso.command("run")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option(
    "--once", "mode", flag_value="idle", help="Stop when nothing is eligible now (leave backoffs for later)."
)
@click.option(
    "--drain", "mode", flag_value="final", help="Stop only when every transfer is final (waits for retries)."
)
@click.option("--workers", default=2, show_default=True, help="Concurrent copies.")
@click.option(
    "--prefetch", default=8, show_default=True, help="Rows acquired ahead of the copies (per agent)."
)
@click.option(
    "--lease", default=120.0, show_default=True, help="Lease in seconds; a dead agent's rows wait this long."
)
@click.option("--poll", default=1.0, show_default=True, help="Seconds between looks for new work when idle.")
@click.option("--max-retries", default=3, show_default=True, help="Retries of a recoverable failure.")
@click.option(
    "--backoff", default=30.0, show_default=True, help="Seconds before the first retry (doubles after)."
)
@click.option(
    "--backoff-max", default=600.0, show_default=True, help="Longest wait between retries (seconds)."
)
@click.option("--max-transfers", default=20, show_default=True, help="Per destination: transfers in flight.")
@click.option(
    "--max-bytes", type=ByteSize(), default="4GB", show_default=True, help="Per destination: bytes in flight."
)
@click.option(
    "--dest-limit", multiple=True, metavar="SITE=N[,BYTES]", help="Override the limits for one destination."
)
@click.option(
    "--max-rate", type=ByteSize(), default=None, help="Cap each copy at this many bytes per second."
)
@click.option(
    "--no-fsync",
    is_flag=True,
    help="Do not flush copies to disk before marking them done (faster, less safe).",
)
@click.option(
    "--stop-file", type=click.Path(dir_okay=False), default=None, help="Stop cleanly when this file appears."
)
@click.option("--timeout", type=float, default=None, help="Stop after this many seconds.")
@click.option("-v", "--verbose", count=True, help="Log transfers to standard error (-vv: every file).")
@click.option("--json", "as_json", is_flag=True, help="Print the run's statistics as JSON.")
def run_cmd(
    db: str,
    mode: str | None,
    workers: int,
    prefetch: int,
    lease: float,
    poll: float,
    max_retries: int,
    backoff: float,
    backoff_max: float,
    max_transfers: int,
    max_bytes: int,
    dest_limit: tuple[str, ...],
    max_rate: int | None,
    no_fsync: bool,
    stop_file: str | None,
    timeout: float | None,
    verbose: int,
    as_json: bool,
) -> None:
    """Run the transfer agent on DB (created if missing).

    Without --once/--drain it loops until SIGTERM/SIGINT, the stop file, or the timeout, then releases
    the rows it holds and exits 0. Several agents may share a database: rows are leased, and an agent that
    dies frees its rows when their lease expires.
    """
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2), format="%(asctime)s %(message)s", stream=sys.stderr
    )
    try:
        config = AgentConfig(
            workers=workers,
            prefetch=prefetch,
            lease_seconds=lease,
            poll_seconds=poll,
            housekeeping_seconds=max(poll, 30.0),
            retry=RetryPolicy(max_retries, backoff, backoff_max),
            flow=FlowLimits(max_transfers, max_bytes, _dest_limits(dest_limit)),
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    posix = PosixTransport(fsync=not no_fsync, max_rate=max_rate)
    stats = run_agent(
        db,
        config,
        until=mode or "stopped",
        stop_file=stop_file,
        timeout=timeout,
        handle_signals=True,
        transports={scheme: posix for scheme in PosixTransport.schemes},
    )
    if as_json:
        echo_json(stats.to_dict())
        return
    rate = stats.bytes_done / stats.wall_seconds if stats.wall_seconds else 0.0
    click.echo(
        f"aso: {stats.done:,} done ({human_bytes(stats.bytes_done)}, {human_bytes(rate)}/s), "
        f"{stats.failed:,} failed, {stats.retried:,} to retry, {stats.released:,} released "
        f"in {human_seconds(stats.wall_seconds)}"
        + (f"; stopped by {stats.stopped_by}" if stats.stopped_by else "")
    )


@aso.command("status")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--task", default=None, help="Only this task (the database may be shared).")
@click.option("--window", default=300.0, show_default=True, help="Seconds over which throughput is measured.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status_cmd(db: str, task: str | None, window: float, as_json: bool) -> None:
    """Counts by state, bytes pending and done, throughput, the oldest pending file, failures."""
    summary = status_summary(db, task=task, window_s=window)
    if as_json:
        echo_json(summary.to_dict())
        return
    out = console()
    counts = summary.counts
    rows: list[tuple[str, Any]] = [("files", summary.files)]
    rows += [(state.value, counts[state.value]) for state in State if counts[state.value]]
    rows += [
        ("bytes done", human_bytes(summary.bytes_done)),
        ("bytes pending", human_bytes(summary.bytes_pending)),
        ("bytes failed", human_bytes(summary.bytes_failed)),
        (
            f"throughput (last {human_seconds(window)})",
            f"{summary.throughput_files_per_s:.2f} files/s, {human_bytes(summary.throughput_bytes_per_s)}/s",
        ),
        ("overall rate", f"{human_bytes(summary.overall_bytes_per_s)}/s"),
    ]
    if summary.mean_transfer_s is not None:
        rows.append(("mean transfer time", human_seconds(summary.mean_transfer_s)))
    oldest = summary.oldest_pending
    if oldest:
        rows.append(
            (
                "oldest pending",
                f"{oldest['dest_path']} (job {oldest['job_id']}, {oldest['state']}, {human_seconds(oldest['age_s'])} old)",
            )
        )
    out.print(key_value_table(f"Stage-out {db}" + (f" task {task}" if task else ""), rows))
    if summary.destinations:
        table = Table(title="Destinations", title_justify="left")
        for column in ("destination", "in flight", "bytes in flight", "queued", "bytes queued"):
            table.add_column(column, justify="right" if column != "destination" else "left")
        for d in summary.destinations:
            table.add_row(
                d["dest_site"],
                f"{d['in_flight']:,}",
                human_bytes(d["in_flight_bytes"]),
                f"{d['queued']:,}",
                human_bytes(d["queued_bytes"]),
            )
        out.print(table)
    if summary.failure_kinds:
        table = Table(title="Failures", title_justify="left")
        for column in ("state", "kind", "files", "example"):
            table.add_column(column, justify="right" if column == "files" else "left")
        for f in summary.failure_kinds:
            table.add_row(f["state"], f["kind"], f"{f['count']:,}", f["example"])
        out.print(table)
    if len(summary.tasks) > 1:
        table = Table(title="Tasks", title_justify="left")
        for column in ("task", "files", "done", "in flight", "failed", "killed", "done/total bytes"):
            table.add_column(column, justify="left" if column == "task" else "right")
        for t in summary.tasks:
            table.add_row(
                t.task,
                f"{t.files:,}",
                f"{t.done:,}",
                f"{t.in_flight:,}",
                f"{t.failed:,}",
                f"{t.killed:,}",
                f"{human_bytes(t.bytes_done)}/{human_bytes(t.bytes_total)}",
            )
        out.print(table)


@aso.command("list")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--state", type=click.Choice([s.value for s in State], case_sensitive=False), default=None)
@click.option("--task", default=None)
@click.option("--job", "job_id", default=None, help="Job id (needs --task).")
@click.option("--attempt", type=int, default=None, help="Job attempt (needs --job).")
@click.option("--limit", default=50, show_default=True, help="At most this many rows (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (every column).")
def list_cmd(
    db: str,
    state: str | None,
    task: str | None,
    job_id: str | None,
    attempt: int | None,
    limit: int,
    as_json: bool,
) -> None:
    """List transfers, oldest first."""
    if job_id is not None and task is None:
        raise click.UsageError("--job needs --task")
    with using_db(db, create=False) as handle:
        rows = handle.rows(state=state, task=task, job_id=job_id, attempt=attempt, limit=limit or None)
    if as_json:
        echo_json([r.to_dict() for r in rows])
        return
    tasks = sorted({r.task for r in rows})
    title = f"Transfers ({len(rows):,} shown)" + (f", task {tasks[0]}" if len(tasks) == 1 else "")
    table = Table(title=title, title_justify="left")
    table.add_column("id", no_wrap=True, min_width=12)
    if len(tasks) > 1:
        table.add_column("task", overflow="fold")
    table.add_column("job", overflow="fold")
    table.add_column("try", justify="right")
    table.add_column("state", no_wrap=True)
    table.add_column("size", justify="right", no_wrap=True)
    table.add_column("destination", overflow="fold")
    table.add_column("failure", overflow="fold")
    for r in rows:
        state = r.state + (f" ({r.retry_count})" if r.retry_count else "")
        cells = [r.id[:12], *([r.task] if len(tasks) > 1 else []), r.job_id, str(r.attempt), state]
        table.add_row(*cells, human_bytes(r.size), r.dest_path, r.failure_reason or "")
    console().print(table)


@aso.command("retry")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--task", default=None, help="Only this task's failed transfers.")
@click.option("--job", "job_id", default=None, help="Only this job's (needs --task).")
@click.option("--id", "ids", multiple=True, help="Only these transfer ids (repeatable).")
@click.option("--json", "as_json", is_flag=True)
def retry_cmd(db: str, task: str | None, job_id: str | None, ids: tuple[str, ...], as_json: bool) -> None:
    """Put FAILED transfers back in the queue (retry counter reset)."""
    if job_id is not None and task is None:
        raise click.UsageError("--job needs --task")
    with using_db(db, create=False) as handle:
        n = _retry(handle, task, job_id, ids)
    if as_json:
        echo_json({"retried": n})
    else:
        click.echo(f"aso: {n:,} failed transfer{'s' if n != 1 else ''} queued again")


def _retry(handle: TransferDB, task: str | None, job_id: str | None, ids: tuple[str, ...]) -> int:
    full_ids = None
    if ids:
        # accept the 12-character prefixes `aso list` shows
        known = [r.id for r in handle.rows(state="FAILED", task=task, job_id=job_id)]
        full_ids = [i for i in known if any(i.startswith(prefix) for prefix in ids)]
    return handle.retry_failed(task, job_id, ids=full_ids, now=time.time())


@aso.command("kill")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--task", required=True, help="Task whose transfers to cancel.")
@click.option("--job", "job_id", default=None, help="Only this job.")
@click.option("--attempt", type=int, default=None, help="Only this attempt of the job.")
@click.option("--reason", default="killed by user", show_default=True)
@click.option("--json", "as_json", is_flag=True)
def kill_cmd(db: str, task: str, job_id: str | None, attempt: int | None, reason: str, as_json: bool) -> None:
    """Cancel unfinished transfers (-> KILLED); the agent then removes their temporary copies."""
    n = kill_job_transfers(db, task, job_id, attempt, reason=reason)
    if as_json:
        echo_json({"killed": n})
    else:
        click.echo(f"aso: {n:,} transfer{'s' if n != 1 else ''} killed")
