"""The policy protocol: how a splitting strategy drives a :class:`~autosplit.sim.Simulation`.

A policy has a ``name`` and a ``run(sim)`` method returning a generator, run as a SimPy process. It
submits jobs (:meth:`Simulation.submit`, :meth:`Simulation.submit_many`), ``yield``\\ s events to wait
(:meth:`Simulation.wait_all`, :meth:`Simulation.wait_count`, :meth:`Simulation.delay`), reads outcomes
from the events' values (:class:`~autosplit.sim.Attempt`) and the ledger (:meth:`Simulation.pending_rows`),
and gives up on units with :meth:`Simulation.quarantine` or :meth:`Simulation.lose`. A dynamic policy may
install a feeder (:meth:`Simulation.set_feeder`) and wait for its own completion event.

By the end, every unit must be done, quarantined or lost; the metrics count the rest as unfinished.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, Protocol, runtime_checkable

import numpy as np

from autosplit.sim.jobs import SimJob


@runtime_checkable
class Policy(Protocol):
    """A splitting strategy run inside the simulator (see the module docstring)."""

    name: str

    def run(self, sim: Any) -> Generator[Any, Any, None]: ...


class PolicyError(RuntimeError):
    """A policy cannot go on (e.g. its probes measured nothing)."""


def jobs_from_assignment(
    assignment: np.ndarray, rows: np.ndarray | None = None, **job_fields: Any
) -> list[SimJob]:
    """One :class:`SimJob` per job of a plan's ``assignment`` (job id per unit, -1 for none).

    ``rows`` maps the plan's unit positions to simulation rows (default: the identity); units keep the
    plan's row order within a job. ``job_fields`` are passed to every job; priorities decrease with the job
    index so jobs start in plan order.
    """
    assignment = np.asarray(assignment, dtype=np.int64)
    rows = np.arange(assignment.size) if rows is None else np.asarray(rows, dtype=np.int64)
    keep = np.flatnonzero(assignment >= 0)
    order = keep[np.argsort(assignment[keep], kind="stable")]
    jobs_of = assignment[order]
    n_jobs = int(jobs_of.max()) + 1 if jobs_of.size else 0
    bounds = np.searchsorted(jobs_of, np.arange(n_jobs + 1))
    out = []
    for j in range(n_jobs):
        members = rows[order[bounds[j] : bounds[j + 1]]]
        if members.size:
            out.append(SimJob(members, priority=float(n_jobs - j), **job_fields))
    return out
