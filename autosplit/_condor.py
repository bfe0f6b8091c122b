"""HTCondor's Python bindings (``htcondor2``, ``classad2``), imported on first use.

They come with the ``condor`` extra (``pip install 'autosplit[condor]'``), not with autosplit itself: only
submitting to a pool, writing submit descriptions and reading ClassAd files need them. Every use goes
through :func:`condor_module`, so a missing installation is one clear error naming the extra.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from autosplit.errors import MissingDependencyError

INSTALL_HINT = "pip install 'autosplit[condor]'"


def condor_module(name: str, purpose: str) -> ModuleType:
    """Import ``htcondor2`` or ``classad2``; :class:`MissingDependencyError` (an ImportError) says what
    needs it (``purpose``) and how to install it when it is missing."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingDependencyError(
            f"{purpose} needs HTCondor's Python bindings ({name}), which are not installed; "
            f"install them with: {INSTALL_HINT}"
        ) from None
