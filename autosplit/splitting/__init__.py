"""Splitting: WMCore-compatible classic algorithms, the automatic planner and tail regrouping.

This package is pure: no I/O, no DAGs, no ledger, so other workload managers can embed it.

* :func:`split` — classic algorithms (FileBased, LumiBased, EventAwareLumiBased, EventBased);
* :func:`plan` — automatic: jobs sized from a cost model to meet a runtime target with probability 1 - alpha;
* :func:`regroup` — tail stages: leftover units in smaller, decreasing jobs;
* :class:`JobPlan` — the result; :class:`CostModel` — what a model must provide; :class:`ConstantRateModel`.
"""

from autosplit.splitting.automatic import plan, regroup
from autosplit.splitting.classic import ALGORITHMS, split
from autosplit.splitting.jobplan import PLAN_FORMAT, JobPlan
from autosplit.splitting.model import ConstantRateModel, CostModel

__all__ = [
    "ALGORITHMS",
    "PLAN_FORMAT",
    "ConstantRateModel",
    "CostModel",
    "JobPlan",
    "plan",
    "regroup",
    "split",
]
