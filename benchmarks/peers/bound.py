"""The lower-bound row: no schedule of the task on the pool can end earlier (:func:`autosplit.sim.lower_bound`).

``max(work term, longest-unit term)``: the completable work over the pool's summed slot speed, with a
drift's cost factor taken as its running minimum (a job fixes its factor when its payload starts, so a
rising cost cannot be used against the bound), and the longest unit alone on the fastest site. Poison
units are left out (no policy can finish them). The derivation is in ``lower_bound``'s docstring. It is
not a policy: no jobs, no waste.
"""

from __future__ import annotations

from typing import Any

from autosplit.sim import Pool, Truth, lower_bound


def bound_row(truth: Truth, pool: Pool) -> dict[str, Any]:
    """The bound as a benchmark row (``policy = "bound"``)."""
    work = truth.total_seconds() / pool.speed_sum
    return {
        "policy": "bound",
        "makespan_s": lower_bound(truth, pool),
        "work_over_speed_s": work,
        "longest_unit_s": float(truth.seconds[truth.workable()].max() * pool.time_factors.min())
        if truth.workable().any()
        else 0.0,
        "cpu_waste_fraction": 0.0,
        "n_jobs": 0,
        "frac_soft_limit": 0.0,
        "n_tail_jobs": 0,
        "n_stages": 0,
    }
