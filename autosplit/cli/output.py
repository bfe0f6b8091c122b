"""Shared output helpers for the CLI: JSON for scripts, rich tables for people.

Defined in :mod:`autosplit._cmdline` (so that command groups living outside the CLI, such as
:mod:`autosplit.aso`'s, share them without importing :mod:`autosplit.cli`); re-exported here for the CLI.
"""

from __future__ import annotations

from autosplit._cmdline import console, echo_json, human_bytes, human_seconds, key_value_table

__all__ = ["console", "echo_json", "human_bytes", "human_seconds", "key_value_table"]
