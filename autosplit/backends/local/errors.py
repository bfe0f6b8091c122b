"""Errors of the local DAGMan-compatible executor.

Every error derives from :class:`autosplit.errors.AutosplitError`, so the CLI prints it as one line.
"""

from __future__ import annotations

from autosplit.errors import AutosplitError


class DagError(AutosplitError):
    """A DAG cannot be run (bad file, already running, bad option)."""


class DagParseError(DagError, ValueError):
    """A DAG (or DAGMan config) file is malformed or uses something this executor does not support.

    The message always names the file, the line and the keyword, e.g.
    ``task.dag:12: SPLICE: ...``.
    """

    def __init__(self, file: str, line: int, keyword: str, message: str) -> None:
        self.file = file
        self.line = line
        self.keyword = keyword
        self.reason = message
        super().__init__(f"{file}:{line}: {keyword}: {message}")


class SubmitError(DagError, ValueError):
    """A node's submit description is invalid or asks for something that cannot run on this machine.

    Raised when the node is submitted (the description may be written by the node's PRE script); the
    executor turns it into a submit failure (``$RETURN`` = -1001 for the POST script).
    """


class DagLockedError(DagError):
    """Another live executor is already running this DAG (its lock file names a live process)."""
