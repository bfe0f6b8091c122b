"""autosplit: measure-then-pack job splitting for HEP analysis tasks.

Public API (stable names)::

    import autosplit as asp
    mask = asp.LumiMask.from_json("Cert.json")
    ds = asp.Dataset.from_dbs_json("listing.json", dataset="/A/B/RECO").select(mask)
"""

from autosplit._version import __version__
from autosplit.datasets import Dataset, LumiMask, load_dataset, load_mask
from autosplit.errors import AutosplitError, DatasetError, LumiMaskError

__all__ = [
    "AutosplitError",
    "Dataset",
    "DatasetError",
    "LumiMask",
    "LumiMaskError",
    "__version__",
    "load_dataset",
    "load_mask",
]
