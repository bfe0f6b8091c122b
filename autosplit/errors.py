"""Exception types of autosplit.

Every error a user can cause derives from :class:`AutosplitError`, so the CLI can print it as one clear line
(never a traceback) and library users can catch the whole family at once.
"""

from __future__ import annotations


class AutosplitError(Exception):
    """Base class of every error autosplit raises for bad input or an impossible request."""


class LumiMaskError(AutosplitError, ValueError):
    """A lumi mask (CMS golden JSON or CMSSW range string) is malformed."""


class DatasetError(AutosplitError, ValueError):
    """A dataset source (DBS listing, ROOT file, parquet, units table) cannot be read or is inconsistent."""


class JobReportError(AutosplitError, ValueError):
    """A job report is malformed, inconsistent, or claims units outside its job's assignment."""


class SplittingError(AutosplitError, ValueError):
    """A splitting or planning request is invalid (unknown algorithm, bad parameter, unusable model)."""


class MissingDependencyError(AutosplitError, ImportError):
    """An optional dependency (an extra such as ``autosplit[condor]``) is needed but not installed."""


class OversizedUnitsWarning(UserWarning):
    """Some units cannot fit any job under the requested limits; they are reported, not planned."""
