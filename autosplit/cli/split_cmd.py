"""``autosplit split``: classic WMCore-style splitting of a dataset, with a summary of the jobs."""

from __future__ import annotations

import click
from rich.table import Table

from autosplit.cli.dataset_cmd import dataset_options, open_dataset
from autosplit.cli.output import console, echo_json
from autosplit.errors import SplittingError

# Which size option each algorithm takes.
SIZE_OPTION = {
    "FileBased": "files_per_job",
    "LumiBased": "lumis_per_job",
    "EventAwareLumiBased": "events_per_job",
    "EventBased": "events_per_job",
}


@click.command("split")
@click.argument("source", nargs=-1, required=True)
@dataset_options
@click.option(
    "--algorithm",
    "-a",
    required=True,
    type=click.Choice(list(SIZE_OPTION)),
    help="WMCore splitting algorithm.",
)
@click.option(
    "--events-per-job", type=click.IntRange(min=1), help="EventAwareLumiBased / EventBased job size."
)
@click.option("--lumis-per-job", type=click.IntRange(min=1), help="LumiBased job size.")
@click.option("--files-per-job", type=click.IntRange(min=1), help="FileBased job size.")
@click.option(
    "--split-on-run", is_flag=True, help="Never put two runs in one job (Lumi/EventAwareLumiBased)."
)
@click.option(
    "--halt-on-file-boundaries", is_flag=True, help="Never let a job cross a file boundary (Lumi/EventAware)."
)
@click.option(
    "--out", "out", type=click.Path(dir_okay=False, writable=True), help="Write the plan as JSON here."
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def split_command(
    source: tuple[str, ...],
    dataset_name: str | None,
    mask: str | None,
    tree: str,
    algorithm: str,
    events_per_job: int | None,
    lumis_per_job: int | None,
    files_per_job: int | None,
    split_on_run: bool,
    halt_on_file_boundaries: bool,
    out: str | None,
    as_json: bool,
) -> None:
    """Split a dataset into jobs with a classic algorithm and summarise them.

    Each algorithm takes one size option: FileBased --files-per-job, LumiBased --lumis-per-job,
    EventAwareLumiBased and EventBased --events-per-job. Lumis are never split between jobs (except by
    EventBased, which cuts files into event ranges).
    """
    sizes = {"events_per_job": events_per_job, "lumis_per_job": lumis_per_job, "files_per_job": files_per_job}
    wanted = SIZE_OPTION[algorithm]
    given = {k for k, v in sizes.items() if v is not None}
    if wanted not in given:
        raise SplittingError(f"{algorithm} needs --{wanted.replace('_', '-')}")
    extra = given - {wanted}
    if extra:
        raise SplittingError(
            f"{algorithm} does not use {', '.join('--' + e.replace('_', '-') for e in sorted(extra))}"
        )
    params: dict[str, object] = {wanted: sizes[wanted]}
    if algorithm in ("LumiBased", "EventAwareLumiBased"):
        params.update(split_on_run=split_on_run, halt_on_file_boundaries=halt_on_file_boundaries)
    elif split_on_run or halt_on_file_boundaries:
        raise SplittingError(f"{algorithm} does not take --split-on-run or --halt-on-file-boundaries")
    from autosplit.splitting import split

    ds, _ = open_dataset(source, dataset_name, mask, tree)
    plan = split(ds, algorithm, **params)
    if out:
        plan.to_json(out)
    summary = plan.summary()
    if out:
        summary["plan_file"] = out
    if as_json:
        echo_json(summary)
        return
    out_console = console()
    header = Table(
        title=f"{algorithm} splitting of {ds.name or 'dataset'}", title_justify="left", show_header=False
    )
    header.add_column("what", style="bold")
    header.add_column("value", justify="right")
    header.add_row("parameters", ", ".join(f"{k}={v}" for k, v in params.items()))
    header.add_row("jobs", f"{summary['total_jobs']:,}")
    header.add_row("units (run, lumi)", f"{summary['total_lumis']:,}")
    header.add_row("events", f"{summary['total_events']:,}")
    out_console.print(header)
    table = Table(title="Per job", title_justify="left")
    for column in ("", "min", "avg", "max"):
        table.add_column(column, justify="right")
    for label in ("lumis", "events", "files"):
        table.add_row(
            label,
            f"{summary[f'min_{label}']:,}",
            f"{summary[f'avg_{label}']:,.1f}",
            f"{summary[f'max_{label}']:,}",
        )
    out_console.print(table)
    if out:
        out_console.print(f"plan written to {out}")
