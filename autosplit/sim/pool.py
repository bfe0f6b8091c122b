"""The simulated pool: slots grouped in sites with speed factors, per-job overhead, failures, limits.

All times are seconds of wall time. A site's ``time_factor`` multiplies the reference seconds of every unit a
job runs there (1.3 = 30 % slower than the reference slot); each job also draws a lognormal node jitter
(mean 1, log-sd ``node_sigma``). Before its payload starts a job pays an overhead (queue share, dispatch,
setup, stage-in and stage-out folded together; lognormal with mean ``overhead_seconds`` and log-sd
``overhead_sigma``) during which its slot does no useful work. Failures arrive as a Poisson process of rate
``failure_rate`` per wall-second of a running attempt (node crash, preemption): the attempt ends at once and
leaves no report.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from autosplit.sim.synthetic import Site


@dataclass(frozen=True)
class SiteSlots:
    """``slots`` job slots at one site whose jobs take ``time_factor`` times the reference seconds."""

    name: str
    slots: int
    time_factor: float = 1.0

    def __post_init__(self) -> None:
        if self.slots < 0 or not (self.time_factor > 0 and math.isfinite(self.time_factor)):
            raise ValueError(f"site {self.name!r}: slots must be >= 0 and time_factor a positive number")


@dataclass(frozen=True)
class Pool:
    """Slots, speeds, overheads, failures and batch limits of a simulated pool.

    Parameters
    ----------
    sites:
        The site slot groups (at least one slot in total).
    overhead_seconds, overhead_sigma:
        Mean (seconds) and log-sd of the lognormal per-attempt overhead.
    node_sigma:
        Log-sd of the per-attempt node speed jitter (mean 1).
    failure_rate:
        Hazard of an attempt failing, per wall-second (e.g. ``1 / (24 * 3600)`` for a 24 h MTBF).
    max_wall_seconds:
        The batch system's own wall-time removal (seconds of payload), applied to every job on top of the
        policy's hard limit; ``None`` for none.
    stage_delay_seconds:
        Latency between the last job of a stage ending and the next stage's jobs being queued (POST and
        PRE scripts, sub-DAG submission, negotiation cycle).
    grace_seconds:
        After SIGTERM at a job's hard limit, seconds the unit in progress gets to finish before SIGKILL.
    """

    sites: tuple[SiteSlots, ...]
    overhead_seconds: float = 300.0
    overhead_sigma: float = 0.5
    node_sigma: float = 0.1
    failure_rate: float = 0.0
    max_wall_seconds: float | None = None
    stage_delay_seconds: float = 60.0
    grace_seconds: float = 60.0
    slot_site: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.sites or sum(s.slots for s in self.sites) < 1:
            raise ValueError("a pool needs at least one slot")
        for name in (
            "overhead_seconds",
            "overhead_sigma",
            "node_sigma",
            "failure_rate",
            "stage_delay_seconds",
            "grace_seconds",
        ):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Pool.{name} must be a finite number >= 0, got {value!r}")
        object.__setattr__(
            self, "slot_site", np.repeat(np.arange(len(self.sites)), [s.slots for s in self.sites])
        )

    @classmethod
    def uniform(cls, n_slots: int, **kwargs: float | None) -> Pool:
        """``n_slots`` identical reference-speed slots at one site."""
        return cls(sites=(SiteSlots("T2_SIM", int(n_slots), 1.0),), **kwargs)

    @classmethod
    def from_sites(cls, sites: Sequence[Site], n_slots: int, **kwargs: float | None) -> Pool:
        """Slots split over :class:`~autosplit.sim.synthetic.Site` objects by their ``share``."""
        shares = np.array([s.share for s in sites], dtype=np.float64)
        counts = np.floor(n_slots * shares / shares.sum()).astype(int)
        counts[np.argmax(shares)] += n_slots - counts.sum()
        groups = tuple(SiteSlots(s.name, int(c), s.time_factor) for s, c in zip(sites, counts, strict=True))
        return cls(sites=groups, **kwargs)

    @property
    def n_slots(self) -> int:
        return int(self.slot_site.size)

    @property
    def site_names(self) -> list[str]:
        return [s.name for s in self.sites]

    @property
    def time_factors(self) -> np.ndarray:
        """Time factor of each site (float array aligned with :attr:`sites`)."""
        return np.array([s.time_factor for s in self.sites], dtype=np.float64)

    @property
    def speed_sum(self) -> float:
        """Reference-seconds of work the whole pool does per wall-second (sum of 1 / time_factor)."""
        return float(sum(s.slots / s.time_factor for s in self.sites))

    @property
    def mean_time_factor(self) -> float:
        """Slot-weighted mean time factor (what a job landing on a random slot expects)."""
        return float(sum(s.slots * s.time_factor for s in self.sites) / self.n_slots)

    def draw_overhead(self, rng: np.random.Generator) -> float:
        """One attempt's overhead (seconds)."""
        if self.overhead_sigma == 0:
            return self.overhead_seconds
        s = self.overhead_sigma
        return float(self.overhead_seconds * rng.lognormal(-0.5 * s * s, s))

    def draw_node(self, rng: np.random.Generator) -> float:
        """One attempt's node speed jitter (time multiplier, mean 1)."""
        if self.node_sigma == 0:
            return 1.0
        s = self.node_sigma
        return float(rng.lognormal(-0.5 * s * s, s))
