"""The scheduler's own error class and its record of a job it handed out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from autosplit.errors import AutosplitError


class SchedulerError(AutosplitError, ValueError):
    """A scheduler was given an invalid parameter or an inconsistent call (unknown job, foreign unit)."""


@dataclass
class SchedJob:
    """A job the scheduler handed out: its units (rows), limits (seconds), times and outcome."""

    index: int
    job_id: str
    stage: str
    kind: str  # "probe" | "bulk" | "alone"
    rows: np.ndarray
    requested_at: float
    soft: float | None
    hard: float
    predicted: float | None
    started_at: float | None = None
    ended_at: float | None = None
    outcome: str = "running"  # running | ok | soft-stopped | killed | failed | lost | cancelled
    probe_round: int = 0


def in_progress_pair(report: Any) -> tuple[int, int] | None:
    """(run, lumi) of the unit a report says was in progress when its job stopped, if any."""
    unit = getattr(report, "in_progress", None)
    if isinstance(unit, dict) and isinstance(unit.get("run"), int) and isinstance(unit.get("lumi"), int):
        return int(unit["run"]), int(unit["lumi"])
    legacy = report.meta.get("in_progress_unit") if isinstance(report.meta, dict) else None
    if isinstance(legacy, list | tuple) and len(legacy) == 2 and all(isinstance(v, int) for v in legacy):
        return int(legacy[0]), int(legacy[1])
    return None


def failed_unit_pair(report: Any) -> tuple[int, int] | None:
    """(run, lumi) a failure report blames (``meta.failed_unit``), if any."""
    value = report.meta.get("failed_unit") if isinstance(report.meta, dict) else None
    if isinstance(value, list | tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return int(value[0]), int(value[1])
    if isinstance(value, dict) and isinstance(value.get("run"), int) and isinstance(value.get("lumi"), int):
        return int(value["run"]), int(value["lumi"])
    return None


def site_name(site: Any) -> str | None:
    """``site`` when it is a site name (a non-empty string) or ``None``; else :class:`SchedulerError`."""
    if site is not None and not (isinstance(site, str) and site):
        raise SchedulerError(f"site must be a site name (a non-empty string) or None, got {site!r}")
    return site
