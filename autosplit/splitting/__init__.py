"""Splitting: WMCore-compatible classic algorithms, the automatic planner and tail regrouping.

This package is pure: no I/O, no DAGs, no ledger, so other workload managers can embed it.

* :func:`split` — classic algorithms (FileBased, LumiBased, EventAwareLumiBased, EventBased);
* :func:`plan` — automatic: jobs sized from a cost model to meet a runtime target with probability 1 - alpha;
* :func:`regroup` — tail stages: leftover units in smaller, decreasing jobs;
* :class:`JobPlan` — the result; :class:`CostModel` — what a model must provide; :class:`ConstantRateModel`.
"""

from __future__ import annotations

from autosplit._lazy import lazy_getattr

# Imported on first use (PEP 562): the scheduler's numpy-only modules (limits, order, packing) are imported
# by every job script, which should not pay for polars through this package's ``__init__``.
_LAZY = {
    "ALGORITHMS": "autosplit.splitting.classic",
    "split": "autosplit.splitting.classic",
    "plan": "autosplit.splitting.automatic",
    "regroup": "autosplit.splitting.automatic",
    "PLAN_FORMAT": "autosplit.splitting.jobplan",
    "JobPlan": "autosplit.splitting.jobplan",
    "ConstantRateModel": "autosplit.splitting.model",
    "CostModel": "autosplit.splitting.model",
}

__all__ = sorted(_LAZY)


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


def __dir__() -> list[str]:
    return __all__
