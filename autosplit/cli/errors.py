"""How command groups report errors: one line on standard error, never a traceback.

Defined in :mod:`autosplit._cmdline` (so that command groups living outside the CLI, such as
:mod:`autosplit.aso`'s, share it without importing :mod:`autosplit.cli`); re-exported here for the CLI.
"""

from __future__ import annotations

from autosplit._cmdline import EXIT_USAGE, OneLineErrors

__all__ = ["EXIT_USAGE", "OneLineErrors"]
