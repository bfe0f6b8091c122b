"""Flow control and retry policy: pure rules, no I/O.

* :class:`FlowLimits`: per destination site, at most ``max_transfers`` rows acquired by agents (queued in
  an agent or copying) and at most ``max_bytes`` of them in flight. Admission is first-in first-out and
  stops at the first file that does not fit, so a large file is never starved by a stream of small ones;
  a single file larger than ``max_bytes`` goes through alone when nothing else is in flight.
* :class:`RetryPolicy`: recoverable failures are retried ``max_retries`` times with exponential backoff.
* :func:`temp_space_allows`: the per-site temporary-space budget used when jobs register outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class DestinationLimit:
    """Limits for one destination: concurrent transfers and bytes in flight."""

    max_transfers: int
    max_bytes: int

    def __post_init__(self) -> None:
        if self.max_transfers < 1:
            raise ValueError(f"max_transfers must be >= 1, got {self.max_transfers}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {self.max_bytes}")


@dataclass(frozen=True)
class FlowLimits:
    """Per-destination limits: defaults for every destination plus overrides by destination site name."""

    max_transfers: int = 20
    max_bytes: int = 4_000_000_000
    per_destination: Mapping[str, DestinationLimit] = field(default_factory=dict)

    def __post_init__(self) -> None:
        DestinationLimit(self.max_transfers, self.max_bytes)  # validates

    def for_destination(self, destination: str) -> DestinationLimit:
        return self.per_destination.get(destination) or DestinationLimit(self.max_transfers, self.max_bytes)


def admit(
    sizes: Sequence[int], in_flight: int, in_flight_bytes: int, limit: DestinationLimit, want: int
) -> int:
    """How many of the queued files (``sizes``, bytes, in queue order) may start now.

    ``in_flight``/``in_flight_bytes`` describe what is already acquired for this destination; at most
    ``want`` files are taken. FIFO: stops at the first file that would break a limit.
    """
    taken = 0
    count, volume = in_flight, in_flight_bytes
    for size in sizes:
        if taken >= want or count >= limit.max_transfers:
            break
        if count > 0 and volume + size > limit.max_bytes:
            break
        taken += 1
        count += 1
        volume += size
    return taken


@dataclass(frozen=True)
class RetryPolicy:
    """Recoverable failures: retried ``max_retries`` times, waiting ``backoff_base * 2**(n-1)`` seconds
    (capped at ``backoff_max``) before retry ``n``."""

    max_retries: int = 3
    backoff_base: float = 30.0
    backoff_max: float = 600.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt (1-based)."""
        if failures < 1 or self.backoff_base <= 0:
            return 0.0
        return float(min(self.backoff_max, self.backoff_base * 2 ** (failures - 1)))


def temp_space_allows(used_bytes: int, new_bytes: int, budget_bytes: int | None) -> bool:
    """May ``new_bytes`` more be registered on a site whose temporary area already holds ``used_bytes``?

    No budget means yes. An empty area always accepts (even a job larger than the budget), so one large
    job can never deadlock the site.
    """
    if budget_bytes is None or new_bytes <= 0 or used_bytes <= 0:
        return True
    return used_bytes + new_bytes <= budget_bytes
