"""``autosplit wrapper``: the executable of every job node (see :mod:`autosplit.pipeline.wrapper`)."""

from __future__ import annotations

import sys

import click

from autosplit.pipeline.wrapper import DEFAULT_GRACE_SECONDS, EXIT_WRAPPER_ERROR, run_wrapper
from autosplit.worker import JobSpecError


@click.command("wrapper")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "--report", type=click.Path(dir_okay=False), help="Report path (default: OUTPUT_DIR/report.json)."
)
@click.option("--site", help="Site name to record (default: the spec's, or $AUTOSPLIT_SITE).")
@click.option(
    "--attempt", type=int, help="Retry number of this run (DAGMan's $(RETRY); default: the spec's)."
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=DEFAULT_GRACE_SECONDS,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL at the hard limit.",
)
@click.option(
    "--no-hard-limit", is_flag=True, help="Do not enforce hard_limit_seconds (the batch system does it)."
)
def wrapper(
    spec: str, report: str | None, site: str | None, attempt: int | None, grace: float, no_hard_limit: bool
) -> None:
    """Run one job: its payload under the soft and hard limits, then leave a valid job report.

    Exit codes: 0 success or soft stop; 80 user code failed; 81 report missing or invalid;
    82 killed at the hard limit; 83 the job could not be run.
    """
    try:
        result = run_wrapper(
            spec,
            report_path=report,
            site=site,
            attempt=attempt,
            grace_seconds=grace,
            enforce_hard_limit=not no_hard_limit,
        )
    except JobSpecError as exc:
        click.echo(f"autosplit wrapper: {exc}", err=True)
        sys.exit(EXIT_WRAPPER_ERROR)
    report_obj = result.report
    done = len(report_obj.units) if report_obj else 0
    left = len(report_obj.unfinished) if report_obj else 0
    click.echo(
        f"autosplit wrapper: exit {result.exit_code}: {done} unit(s) processed, {left} unfinished, "
        f"{result.wall_seconds:.1f} s wall, {result.cpu_seconds:.1f} s CPU, "
        f"{result.peak_rss_bytes / 1e6:.0f} MB peak RSS",
        err=True,
    )
    sys.exit(result.exit_code)
