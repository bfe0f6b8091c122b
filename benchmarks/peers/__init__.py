"""Peer splitting policies for the simulator, one module each, plus the lower bound.

Each module has a ``make(workload, **params)`` building its policy for a benchmark workload
(:mod:`benchmarks.workloads`); :data:`POLICIES` lists them in table order.

* :mod:`.clairvoyant` — the bound policy: true costs, LPT order, factoring, the true slot count; and, as
  ``informed``, the same with each unit's expected cost (a static plan with a perfect model of the
  features, no foreknowledge of the noise: a reference, not a bound);
* :mod:`.autosplit` — :class:`autosplit.Scheduler` with per-unit timings (noisy) and, as
  ``autosplit-fjr``, with job-level timings only;
* :mod:`.crab3` — CMS CRAB3 Automatic splitting (crab3.md §1);
* :mod:`.panda` — ATLAS PanDA/JEDI scouts and per-site job sizing (peers.md §1.2);
* :mod:`.coffea` — coffea WorkQueue dynamic chunksize (peers.md §1.3);
* :mod:`.manual` — fixed LumiBased from a physicist's local test (crab3.md §5.4);
* :mod:`.bound` — the analytic lower bound (a row, not a policy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.peers import autosplit, clairvoyant, coffea, crab3, manual, panda
from benchmarks.peers.bound import bound_row

POLICIES: dict[str, Callable[..., Any]] = {
    "clairvoyant": clairvoyant.make,
    "informed": clairvoyant.make_informed,
    "autosplit": autosplit.make,
    "autosplit-fjr": autosplit.make_fjr,
    "crab3": crab3.make,
    "panda": panda.make,
    "coffea": coffea.make,
    "manual": manual.make,
}

__all__ = ["POLICIES", "autosplit", "bound_row", "clairvoyant", "coffea", "crab3", "manual", "panda"]
