"""autosplit itself: the library's real path, as the pipeline runs it (:class:`autosplit.sim.AutosplitPolicy`).

Stratified probes (:func:`~autosplit.estimators.choose_probes`), sequential probe rounds until
:func:`~autosplit.estimators.enough_probes`, :class:`~autosplit.estimators.UnitCostModel` fits,
processing and tails with :func:`autosplit.regroup` ``(n_slots=...)`` (decreasing sizes), soft limits, a
unit cut off by a hard kill re-run at once alone, blamed units alone, in :mod:`autosplit.pipeline.predag`'s
order (see :mod:`autosplit.sim.autosplit_policy`).

Every parameter is the pipeline's configuration default (20 probes of 15 min, 2 % event budget per round,
alpha 0.05, 3 tails, 1 retry) except ``slots``, which a user sets to the pool size they expect; here the
pool's slots.
"""

from __future__ import annotations

from typing import Any

from autosplit.sim import AutosplitPolicy


def make(workload: Any, **params: Any) -> AutosplitPolicy:
    """autosplit for a benchmark workload: its target runtime, job sizes aimed at the pool's slots."""
    return AutosplitPolicy(
        target_runtime=workload.target_runtime, slots=params.pop("slots", workload.pool.n_slots), **params
    )
