"""The lower bound row: all the work on every slot at once, no overhead, no failure, perfect packing.

``makespan = total true CPU / summed slot speed`` (:func:`autosplit.sim.lower_bound`; with a drift the
pool's rate follows the drift). Poison units are left out (no policy can finish them). It is not a policy:
no jobs, no waste.
"""

from __future__ import annotations

from typing import Any

from autosplit.sim import Pool, Truth, lower_bound


def bound_row(truth: Truth, pool: Pool) -> dict[str, Any]:
    """The bound as a benchmark row (``policy = "bound"``)."""
    return {
        "policy": "bound",
        "makespan_s": lower_bound(truth, pool),
        "cpu_waste_fraction": 0.0,
        "n_jobs": 0,
        "frac_soft_limit": 0.0,
        "n_tail_jobs": 0,
        "n_stages": 0,
        # The longest unit on the fastest site: no schedule ends before it (up to node jitter).
        "longest_unit_s": float(truth.seconds[truth.workable()].max() * pool.time_factors.min())
        if truth.n_units
        else 0.0,
    }
