"""Errors of the stage-out subsystem.

All derive from :class:`autosplit.errors.AutosplitError`, so the CLI prints them as one line.
:class:`TransferError` is what a transport raises for one failed copy; the agent turns it into a row state
(RETRY or FAILED) using its ``permanent`` flag and ``kind``.
"""

from __future__ import annotations

from autosplit.errors import AutosplitError


class AsoError(AutosplitError):
    """Base class of every stage-out error."""


class UnsafePathError(AsoError, ValueError):
    """A path from a job report would leave its root (``..``, absolute path, symlink) or is malformed."""


class RegistrationError(AsoError, ValueError):
    """Output files cannot be registered (bad size/checksum, or a conflicting earlier registration)."""


class TransferDBError(AsoError):
    """The transfer database is missing, unreadable, or from a newer autosplit."""


#: Failure kinds that are retried (the fault may be transient) but become permanent once retries run out.
PERMANENT_AFTER_RETRIES = frozenset({"checksum-mismatch", "size-mismatch"})


class TransferError(AsoError):
    """One copy failed.

    ``kind`` is a short machine-readable class (``missing-source``, ``permission``, ``quota``,
    ``unsafe-path``, ``checksum-mismatch``, ``size-mismatch``, ``io``, ``timeout``, ...); ``permanent``
    means retrying cannot help, so the row fails at once.
    """

    def __init__(self, reason: str, *, kind: str = "io", permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.permanent = permanent


class TransferCancelled(AsoError):
    """The agent is stopping; the copy was abandoned and its row goes back to the queue."""
