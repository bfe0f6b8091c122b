"""``autosplit dataset ...``: inspect a dataset before splitting it."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from autosplit.cli.output import console, echo_json, human_bytes, key_value_table

DATASET_HELP = "DBS-like listing (.json), dataset parquet, or ROOT files (path or quoted glob)."


def dataset_options(func):
    """Options shared by every command that opens a dataset."""
    func = click.option("--tree", default="Events", show_default=True, help="Event tree name in ROOT files.")(
        func
    )
    func = click.option(
        "--mask",
        "mask",
        default=None,
        metavar="M",
        help="Lumi mask: golden-JSON file, JSON text, or CMSSW ranges like '1:1-1:33,1:35'.",
    )(func)
    func = click.option(
        "--dataset",
        "dataset_name",
        default=None,
        metavar="NAME",
        help="Which dataset of a multi-dataset DBS listing.",
    )(func)
    return func


def open_dataset(sources: tuple[str, ...], dataset_name: str | None, mask: str | None, tree: str):
    """Load the dataset named on the command line and apply the mask, if any."""
    from autosplit.datasets import load_dataset, load_mask

    source = list(sources) if len(sources) > 1 else sources[0]
    ds = load_dataset(source, dataset=dataset_name, tree=tree)
    lumi_mask = load_mask(mask)
    return (ds.select(lumi_mask) if lumi_mask is not None else ds), lumi_mask


@click.group()
def dataset() -> None:
    """Inspect datasets (files, lumis, events) before splitting."""


@dataset.command("info")
@click.argument("source", nargs=-1, required=True)
@dataset_options
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(
    source: tuple[str, ...], dataset_name: str | None, mask: str | None, tree: str, as_json: bool
) -> None:
    """Summarise a dataset: files, units (run, lumi), events, runs, events per lumi.

    SOURCE is a DBS-like listing (.json), a dataset parquet, or one or more ROOT files.
    """
    ds, lumi_mask = open_dataset(source, dataset_name, mask, tree)
    summary = ds.summary()
    if lumi_mask is not None:
        summary["mask"] = {"runs": len(lumi_mask.runs), "lumis": lumi_mask.n_lumis}
    if as_json:
        echo_json(summary)
        return
    out = console()
    rows = [
        ("files", summary["files"]),
        ("files holding selected units", summary["files_with_units"]),
        ("units (run, lumi)", summary["units"]),
        ("events", summary["events"]),
        ("input bytes", human_bytes(summary["bytes"])),
        ("runs", summary["runs"]),
        ("units with estimated events", summary["units_estimated"]),
        ("lumis spanning several files", summary["units_multifile"]),
        ("units with 0 events", summary["zero_event_units"]),
    ]
    rows += [(k.removeprefix("n_").replace("_", " "), v) for k, v in summary.items() if k.startswith("n_")]
    if lumi_mask is not None:
        rows.append(("mask", f"{len(lumi_mask.runs):,} runs, {lumi_mask.n_lumis:,} lumis"))
    out.print(key_value_table(f"Dataset {summary['name']}", rows))
    dist = summary["events_per_lumi"]
    table = Table(title="Events per lumi", title_justify="left")
    for column in ("min", "p10", "median", "p90", "max", "mean"):
        table.add_column(column, justify="right")
    table.add_row(*(f"{dist[k]:,.0f}" for k in ("min", "p10", "p50", "p90", "max")), f"{dist['mean']:,.1f}")
    out.print(table)
    if ds.n_units:
        out.print(_histogram(ds.units["events"].to_numpy()))


def _histogram(events: Any, width: int = 40) -> Table:
    """A text histogram of events per lumi on decade bins (0, 1-9, 10-99, ...)."""
    import numpy as np

    top = int(np.ceil(np.log10(max(int(events.max()), 1) + 1)))
    edges = [0, 1] + [10**k for k in range(1, top + 1)]
    counts = [int((events == 0).sum())] + [
        int(((events >= lo) & (events < hi)).sum()) for lo, hi in zip(edges[1:-1], edges[2:], strict=True)
    ]
    labels = ["0"] + [f"{lo:,}-{hi - 1:,}" for lo, hi in zip(edges[1:-1], edges[2:], strict=True)]
    table = Table(title="Units by events per lumi", title_justify="left", show_header=False)
    table.add_column("events", justify="right")
    table.add_column("units", justify="right")
    table.add_column("bar")
    peak = max(counts) or 1
    for label, count in zip(labels, counts, strict=True):
        table.add_row(label, f"{count:,}", "█" * max(int(round(width * count / peak)), 1 if count else 0))
    return table
