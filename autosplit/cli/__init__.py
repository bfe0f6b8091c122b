"""The ``autosplit`` command line.

One module per command group; this module builds the root group and turns every :class:`AutosplitError`
into one line on standard error (exit status 2) instead of a traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from autosplit import __version__
from autosplit.cli.errors import EXIT_USAGE as EXIT_USAGE
from autosplit.cli.errors import OneLineErrors


class _Root(OneLineErrors):
    """The root group: library errors as one line, interrupts and internal errors without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("autosplit: interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:
            if os.environ.get("AUTOSPLIT_DEBUG"):
                raise
            click.echo(
                f"autosplit: internal error: {type(exc).__name__}: {exc} "
                "(set AUTOSPLIT_DEBUG=1 to see the traceback, and please report it)",
                err=True,
            )
            ctx.exit(1)


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="autosplit")
def cli() -> None:
    """Split HEP analysis tasks into well-sized, time-limited jobs by measuring instead of guessing."""


def _register() -> None:
    from autosplit.cli import (
        aso_cmd,
        dagman_cmd,
        dataset_cmd,
        dryrun_cmd,
        serve_cmd,
        split_cmd,
        task_cmd,
        wrapper_cmd,
    )

    cli.add_command(dataset_cmd.dataset)
    cli.add_command(split_cmd.split_command)
    cli.add_command(dryrun_cmd.dryrun_command)
    for command in task_cmd.COMMANDS:
        cli.add_command(command)
    cli.add_command(wrapper_cmd.wrapper)
    cli.add_command(aso_cmd.aso)
    cli.add_command(dagman_cmd.dagman)
    cli.add_command(serve_cmd.serve_command)


_register()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="autosplit")
