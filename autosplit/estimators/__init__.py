"""Estimators: job reports in, calibrated cost, memory and output models out, plus probe planning.

* :class:`~autosplit.jobreport.JobReport` and :func:`~autosplit.jobreport.read_fjr` (CMSSW FJR XML, parsed
  by :mod:`autosplit.fjr`), re-exported from the report format;
* cost models implementing the planner's protocol (:mod:`autosplit.splitting.model`):
  :class:`UnitCostModel` (the default), :class:`RatioEstimator`, :class:`MeanRateEstimator` (CRAB3);
* :class:`MemoryModel` and :class:`OutputModel` (per job, with upper quantiles);
* :func:`choose_probes` and :func:`enough_probes` (stratified probes, stopping rule);
* :func:`job_runtime_distribution` / :func:`job_runtime_quantile` (the planner's per-job arithmetic).

The synthetic workloads used to test calibration live in :mod:`autosplit.sim.synthetic`.
The estimators are scikit-learn estimators (:class:`sklearn.base.BaseEstimator`): the constructor only
stores its parameters, ``fit(reports)`` sets the learned attributes (ending in ``_``) and returns ``self``,
and ``get_params``, ``set_params``, ``sklearn.base.clone`` and ``repr`` work. Importing a model imports
``sklearn.base``; the probe helpers and reading reports (:mod:`autosplit.jobreport`) do not.
"""

from __future__ import annotations

from autosplit._lazy import lazy_getattr

# Names are imported on first use (PEP 562): the probe helpers and the error class do not pull in
# scikit-learn, so DAG scripts that only bind work stay quick to start.
_LAZY = {
    "EstimatorError": "autosplit.estimators._base",
    "job_runtime_distribution": "autosplit.estimators.jobs",
    "job_runtime_quantile": "autosplit.estimators.jobs",
    "choose_probes": "autosplit.estimators.probes",
    "enough_probes": "autosplit.estimators.probes",
    "MeanRateEstimator": "autosplit.estimators.rates",
    "RatioEstimator": "autosplit.estimators.rates",
    "MemoryModel": "autosplit.estimators.resources",
    "OutputModel": "autosplit.estimators.resources",
    "UnitCostModel": "autosplit.estimators.unitcost",
    "FJRError": "autosplit.jobreport",
    "JobReport": "autosplit.jobreport",
    "JobReportError": "autosplit.jobreport",
    "OutputFile": "autosplit.jobreport",
    "read_fjr": "autosplit.jobreport",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [
    "EstimatorError",
    "FJRError",
    "JobReport",
    "JobReportError",
    "MeanRateEstimator",
    "MemoryModel",
    "OutputFile",
    "OutputModel",
    "RatioEstimator",
    "UnitCostModel",
    "choose_probes",
    "enough_probes",
    "job_runtime_distribution",
    "job_runtime_quantile",
    "read_fjr",
]
