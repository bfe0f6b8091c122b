"""Task commands: ``submit``, ``run``, ``status``, ``report``, ``resubmit``, ``kill``."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.table import Table

from autosplit.cli.output import console, echo_json, human_seconds, key_value_table
from autosplit.pipeline.config import parse_duration

TASK_HELP = "A task directory, or the task TOML file that created it."


def _task(argument: str, workdir: str | None = None):
    from autosplit.pipeline.runner import resolve_task

    return resolve_task(argument, workdir)


@click.command("submit")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--workdir", type=click.Path(file_okay=False), help="Where to create the task directory.")
@click.option("--backend", type=click.Choice(["local", "condor"]), help="Override [backend] kind.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def submit(config: str, workdir: str | None, backend: str | None, as_json: bool) -> None:
    """Create the task directory (dataset, ledger, probes, DAG) and submit it.

    The local backend runs the DAG in the background on this machine; follow it with
    'autosplit status TASK' or use 'autosplit run' instead.
    """
    from autosplit.pipeline.control import start
    from autosplit.pipeline.runner import submit_or_resume

    task, created = submit_or_resume(config, workdir=workdir, backend=backend)
    pid = start(task)
    info = {
        "task": task.name,
        "directory": str(task.root),
        "created": created,
        "backend": task.config.backend.kind,
        "executor_pid": pid,
    }
    if as_json:
        echo_json(info)
    else:
        verb = "created and submitted" if created else "resumed"
        click.echo(f"task {task.name} {verb}: {task.root}")
        click.echo(f"follow it with: autosplit status {task.root}")


@click.command("run")
@click.argument("config", type=click.Path(exists=True, dir_okay=False))
@click.option("--workdir", type=click.Path(file_okay=False), help="Where to create the task directory.")
@click.option(
    "--poll", type=click.FloatRange(min=0.1), default=1.0, show_default=True, help="Seconds between updates."
)
@click.option("--timeout", type=str, help="Stop following after this long (e.g. '30m'); the task goes on.")
@click.option("--json", "as_json", is_flag=True, help="Print the final status as JSON.")
def run_command(config: str, workdir: str | None, poll: float, timeout: str | None, as_json: bool) -> None:
    """Submit a task on the local backend (or resume it) and follow it to the end.

    Exit status 0 when every unit is done, 1 when some were quarantined or the task failed.
    Interrupting it loses nothing: run it again to resume.
    """
    from autosplit.pipeline.runner import run

    limit = parse_duration(timeout, "--timeout") if timeout else None
    out = console()
    if as_json or not out.is_terminal:
        last: dict[str, Any] = {}

        def update(status: dict[str, Any]) -> None:
            line = _progress_line(status)
            if not as_json and line != last.get("line"):
                click.echo(line, err=True)
            last["line"] = line

        status = run(config, workdir=workdir, poll=poll, timeout=limit, on_update=update)
    else:
        from rich.live import Live

        with Live(console=out, refresh_per_second=4, transient=False) as live:
            status = run(
                config,
                workdir=workdir,
                poll=poll,
                timeout=limit,
                on_update=lambda s: live.update(_status_table(s, long=False)),
            )
    if as_json:
        echo_json(status)
    else:
        _print_status(status, long=False)
    units = status["units"]
    sys.exit(0 if units["done"] == units["total"] else 1)


def _progress_line(status: dict[str, Any]) -> str:
    units = status["units"]
    running = sum(s["states"].get("running", 0) for s in status["stages"].values())
    stage = next(reversed(status["stages"]), "-") if status["stages"] else "-"
    eta = status.get("remaining_seconds")
    eta_text = f", about {human_seconds(eta)} left" if eta else ""
    return (
        f"[{status['state']}] stage {stage}: {units['done']}/{units['total']} units done, "
        f"{units['quarantined']} quarantined, {running} job(s) running{eta_text}"
    )


def _status_table(status: dict[str, Any], long: bool) -> Table:
    units = status["units"]
    title = f"Task {status['task']} — {status['state']}"
    table = Table(title=title, title_justify="left")
    table.add_column("stage")
    table.add_column("jobs", justify="right")
    table.add_column("states")
    for name, stage in status["stages"].items():
        total = max(stage["jobs"], 1)
        parts = ", ".join(f"{k} {v} ({100 * v / total:.0f}%)" for k, v in stage["states"].items())
        table.add_row(name, str(stage["jobs"]), parts)
    table.caption = (
        f"units: {units['done']:,} done / {units['total']:,} total, {units['pending']:,} pending "
        f"({units['in_jobs']:,} in jobs), {units['quarantined']:,} quarantined"
    )
    return table


def _print_status(status: dict[str, Any], long: bool) -> None:
    out = console()
    out.print(_status_table(status, long))
    if status.get("error"):
        out.print(f"[bold red]error:[/] {status['error']}")
    est = status.get("estimates")
    if est:
        spe = est["seconds_per_event"]
        rows = [
            (
                "seconds per event",
                f"{spe['estimate']:.4g} (95% interval {spe['low']:.4g} – {spe['high']:.4g})",
            ),
            ("per-job overhead", human_seconds(est["overhead_seconds"] or 0)),
            ("measured from", f"{est.get('jobs_measured')} job report(s)"),
        ]
        if est.get("concurrency"):
            rows.append(("jobs at once", f"{est['concurrency']} (observed)"))
        if est.get("failure_rate_per_hour"):
            rows.append(("jobs lost", f"{est['failure_rate_per_hour']:.3g} per slot-hour"))
        out.print(key_value_table("Estimates", rows))
    if status.get("remaining_seconds"):
        out.print(f"predicted remaining time: about {human_seconds(status['remaining_seconds'])}")
    if long and status.get("sites"):
        table = Table(title="Sites", title_justify="left")
        for column in ("site", "runtime", "waste", "running", "successful", "failed"):
            table.add_column(column, justify="right" if column != "site" else "left")
        for site in status["sites"]:
            table.add_row(
                site["site"],
                human_seconds(site["runtime_seconds"]),
                human_seconds(site["waste_seconds"]),
                str(site["running"]),
                str(site["successful"]),
                str(site["failed"]),
            )
        out.print(table)
    if status.get("errors"):
        table = Table(title="Top errors", title_justify="left")
        table.add_column("exit code", justify="right")
        table.add_column("jobs", justify="right")
        table.add_column("messages")
        for error in status["errors"][:5]:
            table.add_row(str(error["exit_code"]), str(error["count"]), " | ".join(error["messages"])[:200])
        out.print(table)
    if status.get("quarantine_reasons"):
        for item in status["quarantine_reasons"]:
            out.print(f"quarantined {item['units']} unit(s): {item['reason']}")
    if status.get("transfers"):
        out.print(status["transfers"]["line"])


@click.command("status")
@click.argument("task")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--long", "long_", is_flag=True, help="Also show the site table.")
def status_command(task: str, as_json: bool, long_: bool) -> None:
    """Show a task's state: stages and jobs, units done/pending/quarantined, estimates, sites, errors.

    TASK is a task directory, or the task TOML file that created it.
    """
    from autosplit.pipeline.status import task_status

    status = task_status(_task(task))
    if as_json:
        echo_json(status)
    else:
        _print_status(status, long=long_)


@click.command("report")
@click.argument("task")
@click.option("--outdir", type=click.Path(file_okay=False), help="Where to write (default TASK/results).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def report_command(task: str, outdir: str | None, as_json: bool) -> None:
    """Write processedLumis.json, notFinishedLumis.json, quarantinedLumis.json and summary.json."""
    from autosplit.pipeline.report import write_report

    summary = write_report(_task(task), outdir)
    if as_json:
        echo_json(summary)
        return
    units = summary["units"]
    click.echo(f"wrote {', '.join(summary['files'])} to {summary['directory']}")
    click.echo(
        f"{units['done']:,} of {units['total']:,} units processed ({summary['events']['read']:,} events), "
        f"{units['not_finished']:,} not finished, {units['quarantined']:,} quarantined; "
        f"{len(summary['output_files'])} output file(s)"
    )


@click.command("resubmit")
@click.argument("task")
@click.option(
    "--units",
    type=click.Choice(["quarantined", "failed"]),
    default="quarantined",
    show_default=True,
    help="Which units to try again.",
)
@click.option("--memory", type=click.IntRange(min=1), help="New memory request (MB).")
@click.option("--max-runtime", type=str, help="New target runtime for the resubmitted jobs, e.g. '12h'.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def resubmit_command(
    task: str, units: str, memory: int | None, max_runtime: str | None, as_json: bool
) -> None:
    """Run quarantined (or failed) units again, in a new stage, with optional new limits."""
    from autosplit.pipeline.control import resubmit

    seconds = parse_duration(max_runtime, "--max-runtime") if max_runtime else None
    result = resubmit(_task(task), units=units, memory_mb=memory, max_runtime=seconds)
    if as_json:
        echo_json(result)
    elif result["released"]:
        click.echo(f"{result['released']} unit(s) resubmitted as stage {result['stage']}")
    else:
        click.echo(f"no {units} units to resubmit")


@click.command("kill")
@click.argument("task")
@click.option("--jobs", "jobs", help="Comma-separated job nodes to stop (default: the whole task).")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def kill_command(task: str, jobs: str | None, as_json: bool) -> None:
    """Kill a task (its unfinished units are quarantined as 'killed'; resubmit brings them back), or stop
    some running jobs at their next unit boundary (their unfinished units go to the next stage)."""
    from autosplit.pipeline.control import kill

    nodes = [j.strip() for j in jobs.split(",") if j.strip()] if jobs else None
    result = kill(_task(task), nodes)
    if as_json:
        echo_json(result)
    else:
        click.echo(
            f"kill requested for {len(result['marked'])} job(s)"
            + (f"; signalled {', '.join(result['signalled'])}" if result["signalled"] else "")
        )


COMMANDS = [submit, run_command, status_command, report_command, resubmit_command, kill_command]
