"""Estimators: job reports in, calibrated cost, memory and output models out, plus probe planning.

* :class:`~autosplit.jobreport.JobReport` (re-exported) and :func:`read_fjr` (CMSSW FJR XML);
* cost models implementing the planner's protocol (:mod:`autosplit.splitting.model`):
  :class:`UnitCostModel` (the default), :class:`RatioEstimator`, :class:`MeanRateEstimator` (CRAB3);
* :class:`MemoryModel` and :class:`OutputModel` (per job, with upper quantiles);
* :func:`choose_probes` and :func:`enough_probes` (stratified probes, stopping rule);
* :func:`job_runtime_distribution` / :func:`job_runtime_quantile` (the planner's per-job arithmetic).

The synthetic workloads used to test calibration live in :mod:`autosplit.estimators.synthetic`.
The estimators follow scikit-learn's API (parameters in ``__init__``, ``fit(reports)`` returns ``self``,
learned attributes end in ``_``). scipy is imported only when a model is fitted, so reading reports stays
light.
"""

from autosplit.estimators._base import EstimatorError
from autosplit.estimators.fjr import FJRError, read_fjr
from autosplit.estimators.jobs import job_runtime_distribution, job_runtime_quantile
from autosplit.estimators.probes import choose_probes, enough_probes
from autosplit.estimators.rates import MeanRateEstimator, RatioEstimator
from autosplit.estimators.resources import MemoryModel, OutputModel
from autosplit.estimators.unitcost import UnitCostModel
from autosplit.jobreport import JobReport, JobReportError, OutputFile

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
