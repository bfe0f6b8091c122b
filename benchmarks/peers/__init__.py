"""Peer splitting policies for the simulator, one module each, plus the lower bound.

Each module has a ``make(workload, **params)`` building its policy for a benchmark workload
(:mod:`benchmarks.workloads`); :data:`POLICIES` lists them in table order.

* :mod:`.autosplit` — autosplit's pipeline (library calls in predag's order);
* :mod:`.crab3` — CMS CRAB3 Automatic splitting (crab3.md §1);
* :mod:`.panda` — ATLAS PanDA/JEDI scouts and per-site job sizing (peers.md §1.2);
* :mod:`.coffea` — coffea WorkQueue dynamic chunksize (peers.md §1.3);
* :mod:`.manual` — fixed LumiBased from a physicist's local test (crab3.md §5.4);
* :mod:`.oracle` — true costs, jobs of exactly the target runtime;
* :mod:`.bound` — the lower bound (a row, not a policy).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks.peers import autosplit, coffea, crab3, manual, oracle, panda
from benchmarks.peers.bound import bound_row

POLICIES: dict[str, Callable[..., Any]] = {
    "autosplit": autosplit.make,
    "crab3": crab3.make,
    "panda": panda.make,
    "coffea": coffea.make,
    "manual": manual.make,
    "oracle": oracle.make,
}

__all__ = ["POLICIES", "autosplit", "bound_row", "coffea", "crab3", "manual", "oracle", "panda"]
