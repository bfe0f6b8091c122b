"""autosplit: measure-then-pack job splitting for HEP analysis tasks.

Public API (stable names)::

    import autosplit as asp
    mask = asp.LumiMask.from_json("Cert.json")
    ds = asp.Dataset.from_dbs_json("listing.json", dataset="/A/B/RECO").select(mask)
    jobs = asp.split(ds, "EventAwareLumiBased", events_per_job=50_000)
    model = asp.UnitCostModel().fit(probe_reports, units=ds)
    jobs = asp.plan(ds, model, target_runtime=8 * 3600, alpha=0.05)

Names are imported on first use (PEP 562), so the job wrapper and DAG scripts start quickly.
"""

from __future__ import annotations

from autosplit._lazy import lazy_getattr
from autosplit._version import __version__ as __version__
from autosplit.errors import AutosplitError as AutosplitError
from autosplit.errors import DatasetError as DatasetError
from autosplit.errors import LumiMaskError as LumiMaskError
from autosplit.errors import SplittingError as SplittingError

_LAZY = {
    "Dataset": "autosplit.datasets",
    "LumiMask": "autosplit.datasets",
    "load_dataset": "autosplit.datasets",
    "load_mask": "autosplit.datasets",
    "ConstantRateModel": "autosplit.splitting",
    "CostModel": "autosplit.splitting",
    "JobPlan": "autosplit.splitting",
    "plan": "autosplit.splitting",
    "regroup": "autosplit.splitting",
    "split": "autosplit.splitting",
    "JobReport": "autosplit.jobreport",
    "JobReportError": "autosplit.jobreport",
    "OutputFile": "autosplit.jobreport",
    "UnitCostModel": "autosplit.estimators",
    "RatioEstimator": "autosplit.estimators",
    "MeanRateEstimator": "autosplit.estimators",
    "MemoryModel": "autosplit.estimators",
    "OutputModel": "autosplit.estimators",
    "choose_probes": "autosplit.estimators",
    "enough_probes": "autosplit.estimators",
    "read_fjr": "autosplit.jobreport",
    "EstimatorError": "autosplit.estimators",
    "FJRError": "autosplit.jobreport",
    "Scheduler": "autosplit.scheduler",
    "JobRequest": "autosplit.scheduler",
    "SchedulerError": "autosplit.scheduler",
}

__all__ = sorted(["AutosplitError", "DatasetError", "LumiMaskError", "SplittingError", "__version__", *_LAZY])


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return __all__
