"""True per-unit costs of a simulated task: what the jobs really spend, unknown to the policies.

:class:`Truth` holds, for every unit of a dataset, its seconds on a reference slot (noise already drawn, so
processing the same lumi twice costs the same), optional *poison* units that crash any job reaching them
(deterministic user-code failures), and an optional :class:`Drift` of the cost with simulated time. Build
one from a :class:`~autosplit.sim.synthetic.SyntheticWorkload` (:func:`truth_from_workload`) or from
a fitted cost model's own predictive distribution (:func:`truth_from_model`, what dry runs use).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from autosplit.datasets import Dataset
from autosplit.sim.synthetic import SyntheticWorkload


@dataclass(frozen=True)
class Drift:
    """Cost multiplier rising linearly with simulated time: ``1 + amplitude * min(t / ramp_seconds, 1)``.

    A job's units all take the factor at the moment its payload starts. ``amplitude`` may be negative
    (down to -0.9) for a task that gets cheaper.
    """

    amplitude: float
    ramp_seconds: float

    def __post_init__(self) -> None:
        if not (self.amplitude > -0.9 and self.ramp_seconds > 0):
            raise ValueError("Drift: amplitude must be > -0.9 and ramp_seconds > 0")

    def factor(self, t: float) -> float:
        """Cost multiplier at simulated time ``t`` (seconds)."""
        return 1.0 + self.amplitude * min(max(t, 0.0) / self.ramp_seconds, 1.0)


@dataclass(frozen=True)
class Truth:
    """True cost of every unit (rows of ``dataset.units``).

    Attributes
    ----------
    seconds:
        float64 array: seconds each unit takes on a reference slot (time factor 1, no drift).
    poison:
        bool array or ``None``: units on which the user code always fails (the job crashes half-way
        through the unit and reports it as the culprit).
    drift:
        Optional time-dependent cost multiplier.
    """

    seconds: np.ndarray
    poison: np.ndarray | None = None
    drift: Drift | None = None

    def __post_init__(self) -> None:
        seconds = np.asarray(self.seconds, dtype=np.float64)
        if seconds.ndim != 1 or (seconds.size and (not np.isfinite(seconds).all() or seconds.min() < 0)):
            raise ValueError("Truth.seconds must be a 1-d array of finite seconds >= 0")
        object.__setattr__(self, "seconds", seconds)
        if self.poison is not None:
            poison = np.asarray(self.poison, dtype=bool)
            if poison.shape != seconds.shape:
                raise ValueError("Truth.poison must have one entry per unit")
            object.__setattr__(self, "poison", poison if poison.any() else None)

    @property
    def n_units(self) -> int:
        return int(self.seconds.size)

    def workable(self) -> np.ndarray:
        """Bool per unit: can be completed (not poison)."""
        return np.ones(self.n_units, dtype=bool) if self.poison is None else ~self.poison

    def total_seconds(self) -> float:
        """Reference seconds of all completable units (the work any policy must do)."""
        return float(self.seconds[self.workable()].sum())


def truth_from_workload(
    workload: SyntheticWorkload,
    dataset: Dataset,
    rng: np.random.Generator,
    *,
    poison: np.ndarray | None = None,
    drift: Drift | None = None,
) -> Truth:
    """Draw true unit costs from a synthetic workload: its noise-free cost times its unit noise.

    The workload's sites, node jitter and overhead are *not* used here: the :class:`~autosplit.sim.Pool`
    supplies them (build it with :meth:`Pool.from_sites` to reuse ``workload.sites``).
    """
    base = workload.base_seconds(dataset.units)
    return Truth(base * workload.unit_noise(base.size, rng), poison=poison, drift=drift)


def gamma_draw(mean: np.ndarray, std: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gamma-distributed draws with the given mean and standard deviation (exact mean where std is 0)."""
    mean = np.asarray(mean, dtype=np.float64)
    std = np.asarray(std, dtype=np.float64)
    out = mean.copy()
    noisy = (std > 0) & (mean > 0)
    if noisy.any():
        shape = (mean[noisy] / std[noisy]) ** 2
        out[noisy] = rng.gamma(shape, mean[noisy] / shape)
    return out


def truth_from_model(model: Any, dataset: Dataset, rng: np.random.Generator) -> Truth:
    """True unit costs drawn from a cost model's predictive distribution (per-unit mean and std).

    Each unit is gamma distributed with the model's mean and standard deviation (the independent part);
    the job-wide part (``shared_cv``) is the pool's node jitter, see :func:`autosplit.sim.predict_makespan`.
    """
    mean, std = model.predict_unit_seconds(dataset.units)
    return Truth(gamma_draw(mean, std, rng))


def lognormal_sigma(cv: float) -> float:
    """Log-sd of a lognormal variable with coefficient of variation ``cv``."""
    return math.sqrt(math.log1p(cv * cv))
