"""Command-line building blocks shared by :mod:`autosplit.cli` and self-contained command groups.

Lives below both so that a subsystem with its own commands (``autosplit.aso.cli``, also run as
``python -m autosplit.aso``) need not import :mod:`autosplit.cli`. Here: how command groups report errors
(one line on standard error, never a traceback) and the output helpers (JSON for scripts, rich tables for
people).
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from autosplit.errors import AutosplitError

EXIT_USAGE = 2


class OneLineErrors(click.Group):
    """A click group that turns :class:`AutosplitError` into ``autosplit: error: ...`` and exit status 2.

    Used by the root command and by groups that also run on their own (``python -m autosplit.aso``).
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AutosplitError as exc:
            click.echo(f"autosplit: error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)


def console() -> Console:
    """A console writing to the current standard output (click's test runner swaps it)."""
    return Console(file=sys.stdout, soft_wrap=True)


def echo_json(payload: Any) -> None:
    click.echo(json.dumps(payload, indent=2, sort_keys=False, default=str))


def human_bytes(value: float) -> str:
    """``1234567`` -> ``'1.2 MB'`` (decimal units, as storage systems count)."""
    value = float(value)
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(value) < 1000 or unit == "PB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} PB"


def human_seconds(value: float) -> str:
    """``5400`` -> ``'1h30m'``; seconds under a minute keep one decimal."""
    value = float(value)
    if value != value:  # NaN
        return "n/a"
    if value < 60:
        return f"{value:.1f}s"
    minutes, seconds = divmod(int(round(value)), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s"


def key_value_table(title: str, rows: list[tuple[str, Any]]) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    for key, value in rows:
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    return table
