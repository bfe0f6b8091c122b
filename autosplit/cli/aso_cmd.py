"""``autosplit aso ...``: the asynchronous stage-out commands.

The group is defined with the subsystem (``autosplit.aso``, which also runs it as ``python -m autosplit.aso``);
the root command only registers it.
"""

from __future__ import annotations

from autosplit.aso import command_group as aso

__all__ = ["aso"]
