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
and ``get_params``, ``set_params``, ``sklearn.base.clone`` and ``repr`` work. Importing this package imports
``sklearn.base``; reading reports (:mod:`autosplit.jobreport`) does not.
"""

from autosplit.estimators._base import EstimatorError
from autosplit.estimators.jobs import job_runtime_distribution, job_runtime_quantile
from autosplit.estimators.probes import choose_probes, enough_probes
from autosplit.estimators.rates import MeanRateEstimator, RatioEstimator
from autosplit.estimators.resources import MemoryModel, OutputModel
from autosplit.estimators.unitcost import UnitCostModel
from autosplit.jobreport import FJRError, JobReport, JobReportError, OutputFile, read_fjr

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
