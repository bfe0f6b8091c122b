"""autosplit: measure-then-pack job splitting for HEP analysis tasks.

Public API (stable names)::

    import autosplit as asp
    mask = asp.LumiMask.from_json("Cert.json")
    ds = asp.Dataset.from_dbs_json("listing.json", dataset="/A/B/RECO").select(mask)
    jobs = asp.split(ds, "EventAwareLumiBased", events_per_job=50_000)
    jobs = asp.plan(ds, model, target_runtime=8 * 3600, alpha=0.05)
"""

from autosplit._version import __version__
from autosplit.datasets import Dataset, LumiMask, load_dataset, load_mask
from autosplit.errors import AutosplitError, DatasetError, LumiMaskError, SplittingError
from autosplit.splitting import ConstantRateModel, CostModel, JobPlan, plan, regroup, split

__all__ = [
    "AutosplitError",
    "ConstantRateModel",
    "CostModel",
    "Dataset",
    "DatasetError",
    "JobPlan",
    "LumiMask",
    "LumiMaskError",
    "SplittingError",
    "__version__",
    "load_dataset",
    "load_mask",
    "plan",
    "regroup",
    "split",
]
