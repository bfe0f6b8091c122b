"""The cost-model protocol the planner consumes, and the simplest model that satisfies it.

A cost model predicts, for each unit (one row of a units table), the mean and standard deviation of the
seconds one job spends on it, plus a fixed per-job overhead. The planner treats unit times as independent
given the model, except for an optional job-wide multiplicative speed factor (a slow node slows every unit
of the job alike) with relative spread ``shared_cv``. A job holding units ``U`` then has

* mean runtime ``overhead_seconds + sum(mean[U])``,
* variance ``sum(std[U] ** 2) + (shared_cv * sum(mean[U])) ** 2``,

and the planner keeps its ``(1 - alpha)`` quantile (the overhead plus the payload's lognormal quantile, at
least the normal one: :mod:`autosplit._quantile`) under the target runtime.
Estimators in :mod:`autosplit.estimators` implement this protocol from measured job reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import polars as pl


@runtime_checkable
class CostModel(Protocol):
    """What the planner needs from a cost model.

    ``predict_unit_seconds(units)`` returns two float arrays (mean, std) in seconds, one entry per row of
    ``units`` (a units table: run, lumi, events, bytes and any extra feature columns such as pileup).
    ``overhead_seconds`` is the fixed cost of one job (setup, stage-in/out) in seconds.
    Models may also define ``shared_cv`` (float, default 0): the relative spread of a speed factor shared
    by all units of one job.
    """

    overhead_seconds: float

    def predict_unit_seconds(self, units: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]: ...


def shared_cv(model: CostModel) -> float:
    """The model's job-wide relative speed spread, 0 when it does not define one."""
    value = float(getattr(model, "shared_cv", 0.0) or 0.0)
    if not math.isfinite(value) or value < 0:
        from autosplit.errors import SplittingError

        raise SplittingError(f"cost model gave shared_cv = {value!r}; it must be a finite number >= 0")
    return value


@dataclass(frozen=True)
class ConstantRateModel:
    """Every event costs ``seconds_per_event`` on average; each unit's time varies independently by ``cv``.

    Parameters
    ----------
    seconds_per_event:
        Mean CPU/wall seconds per event.
    cv:
        Coefficient of variation of one unit's time (std / mean), independent between units.
    overhead_seconds:
        Fixed seconds per job.
    seconds_per_unit:
        Fixed seconds per unit (e.g. opening a lumi), added to the per-event cost.
    shared_cv:
        Relative spread of a speed factor common to all units of a job (node speed).
    """

    seconds_per_event: float
    cv: float = 0.0
    overhead_seconds: float = 0.0
    seconds_per_unit: float = 0.0
    shared_cv: float = 0.0

    def __post_init__(self) -> None:
        for name in ("seconds_per_event", "cv", "overhead_seconds", "seconds_per_unit", "shared_cv"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"ConstantRateModel: {name} must be a finite number >= 0, got {value!r}")

    def predict_unit_seconds(self, units: pl.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        events = units["events"].to_numpy().astype(np.float64)
        mean = self.seconds_per_event * events + self.seconds_per_unit
        return mean, self.cv * mean
