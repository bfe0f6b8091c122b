"""How command groups report errors: one line on standard error, never a traceback."""

from __future__ import annotations

from typing import Any

import click

from autosplit.errors import AutosplitError

EXIT_USAGE = 2


class OneLineErrors(click.Group):
    """A click group that turns :class:`AutosplitError` into ``autosplit: error: ...`` and exit status 2.

    Used by the root command and by groups that also run on their own (``python -m autosplit.pipeline.aso``).
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AutosplitError as exc:
            click.echo(f"autosplit: error: {exc}", err=True)
            ctx.exit(EXIT_USAGE)
