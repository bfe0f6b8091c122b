"""Probe planning: which units the probe jobs process, and when probing has learned enough.

:func:`choose_probes` draws a stratified systematic sample of units: units are ordered by
(events-per-lumi quantile bin, file, run, lumi) and every ``k``-th unit is taken from a random start, so
each size class gets its share of the sample and, within a class, the sample is spread evenly over all
files and runs (not the first files, as CRAB3 and PanDA do). Sampled units are dealt round-robin to the
probe jobs in that order, so every probe sees every size class. Probe work is real work: units a probe
finishes are done.

:func:`enough_probes` is the stopping rule: probing stops once the confidence interval of the predicted
total processing time of the remaining units is narrower than the requested relative precision.

The rules of a probe round that the pipeline (:mod:`autosplit.pipeline.predag`,
:mod:`autosplit.pipeline.dryrun`) and the simulator (:mod:`autosplit.sim.autosplit_policy`) share live here
once: :func:`probe_budget` (how many events a round may take), :func:`probe_round_seed` (each round samples
with its own seed) and :data:`MAX_PROBE_ROUNDS`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import polars as pl

from autosplit.estimators._base import EstimatorError, units_frame

#: probe rounds of a task at most (round 1 before processing, rounds 2.. while the estimate is too wide)
MAX_PROBE_ROUNDS = 3


def probe_budget(
    events: Any, n_probes: int, probe_fraction: float, total_events: float | None = None
) -> float:
    """The event budget of a probe round over units holding ``events`` (one count per unit).

    ``probe_fraction`` of ``total_events`` (default: the sum of ``events``), but never so small that some
    probe could get no unit: at least the events of the ``n_probes`` largest units.
    """
    events = np.sort(np.asarray(events))[::-1]
    total = float(events.sum()) if total_events is None else float(total_events)
    return max(probe_fraction * total, float(events[:n_probes].sum()))


def probes_within_budget(
    events: Any, n_probes: int, probe_fraction: float, total_events: float | None = None
) -> int:
    """How many of ``n_probes`` probes a round over units holding ``events`` can have and stay within
    ``probe_fraction`` of ``total_events`` (default: the sum of ``events``) with a unit of the mean size
    each: the budget over the mean events per unit, at least 1.

    The sample :func:`choose_probes` draws is stratified, so its units are about the mean size; a sample
    that comes out larger is shrunk to the budget, and probes left without a unit are dropped. Counting
    the *largest* units instead (as before) held 30,000 lumis on 500 free slots to 401 probes, and an
    outside world with events ~ Gamma(4) to 200: slots idle while the probes run, and longer probes.
    """
    events = np.asarray(events, dtype=np.float64)
    if events.size == 0:
        return 1
    total = float(events.sum()) if total_events is None else float(total_events)
    mean = max(float(events.mean()), 1e-9)
    fitting = int(math.floor(probe_fraction * total / mean))
    return int(max(1, min(n_probes, fitting, events.size)))


def probe_round_seed(round_number: int) -> int:
    """Seed of probe round ``round_number`` (1, 2, ...): each round its own, so rounds sample different
    units. Round 1 keeps the seed it has always had (5)."""
    return 4 + int(round_number)


def choose_probes(
    dataset: Any,
    n_jobs: int,
    seconds_per_probe: float,
    *,
    model: Any = None,
    seconds_per_event: float | None = None,
    max_event_fraction: float = 0.01,
    max_events: float | None = None,
    exclude: Any = None,
    size_bins: int = 4,
    seed: int = 0,
) -> pl.DataFrame:
    """Units for ``n_jobs`` probe jobs of about ``seconds_per_probe`` seconds each.

    Parameters
    ----------
    dataset:
        A :class:`~autosplit.datasets.Dataset` (or its units table).
    n_jobs:
        Number of probe jobs.
    seconds_per_probe:
        Target processing seconds per probe (its soft deadline).
    model:
        A fitted cost model (e.g. from earlier probes) to size the probes; else ``seconds_per_event`` (a
        guess, seconds per event); with neither, probes are sized by the event budget alone and their soft
        deadline stops them.
    max_event_fraction, max_events:
        Cap on the events sent to probes: ``max_events`` when given, else ``max_event_fraction`` of the
        dataset's events.
    exclude:
        Units not to probe again: a boolean array over the units table, or a LumiMask.
    size_bins:
        Number of events-per-lumi quantile classes to stratify by.
    seed:
        Seed of the random start of the systematic sample.

    Returns
    -------
    The chosen rows of the units table plus ``row`` (UInt32, position in the units table) and ``probe``
    (Int32, 0 .. n_jobs-1), sorted by probe then file order.
    """
    table = units_frame(dataset)
    if n_jobs < 1:
        raise EstimatorError(f"n_jobs must be >= 1, got {n_jobs}")
    if not seconds_per_probe > 0:
        raise EstimatorError(f"seconds_per_probe must be > 0, got {seconds_per_probe}")
    table = table.with_row_index("row")
    total_events = float(table["events"].sum() or 0)
    keep = np.ones(table.height, dtype=bool)
    if exclude is not None:
        if hasattr(exclude, "contains"):
            keep = ~exclude.contains(table["run"].to_numpy(), table["lumi"].to_numpy())
        else:
            exclude = np.asarray(exclude, dtype=bool)
            if exclude.shape != (table.height,):
                raise EstimatorError("exclude must be a LumiMask or one boolean per unit")
            keep = ~exclude
    candidates = table.filter(pl.Series(keep))
    if candidates.height == 0:
        return candidates.with_columns(pl.lit(0, dtype=pl.Int32).alias("probe")).head(0)

    events = candidates["events"].to_numpy().astype(np.float64)
    cap = max_events if max_events is not None else max_event_fraction * total_events
    mean_events = max(float(events.mean()), 1e-9)
    n_by_events = cap / mean_events
    if model is not None:
        cost = np.asarray(model.predict_unit_seconds(candidates)[0], dtype=np.float64)
    elif seconds_per_event is not None:
        cost = events * float(seconds_per_event)
    else:
        cost = None
    if cost is not None and float(cost.mean()) > 0:
        n_by_time = n_jobs * seconds_per_probe / float(cost.mean())
        n_sample = min(n_by_time, n_by_events)
    else:
        n_sample = n_by_events
    n_sample = int(min(max(math.floor(n_sample), n_jobs), candidates.height))

    # Stratify: events-per-lumi quantile class, then file order within the class.
    if size_bins > 1 and candidates.height > size_bins:
        edges = np.quantile(events, np.linspace(0, 1, size_bins + 1)[1:-1])
        size_class = np.searchsorted(edges, events, side="right")
    else:
        size_class = np.zeros(candidates.height, dtype=np.int64)
    order = np.lexsort(
        (
            candidates["lumi"].to_numpy(),
            candidates["run"].to_numpy(),
            candidates["file_id"].to_numpy()
            if "file_id" in candidates.columns
            else np.zeros(candidates.height),
            size_class,
        )
    )
    rng = np.random.default_rng(seed)
    start = rng.random()
    for _ in range(20):  # shrink the sample until its events fit the cap (sizes vary around the mean)
        step = candidates.height / n_sample
        positions = np.floor((start + np.arange(n_sample)) * step).astype(np.int64)
        picked = order[np.minimum(positions, candidates.height - 1)]
        picked_events = float(events[picked].sum())
        if picked_events <= cap or n_sample <= 1:
            break
        n_sample = max(int(n_sample * cap / picked_events), 1) if picked_events > 0 else 1
    if picked_events > cap:
        picked = picked[:0]
        n_sample = 0
    probe = np.arange(n_sample) % n_jobs
    # Deal from a random rotation so probe 0 is not always the smallest-units probe.
    probe = (probe + int(rng.integers(n_jobs))) % n_jobs
    chosen = candidates[picked].with_columns(pl.Series("probe", probe, dtype=pl.Int32))
    sort_by = ["probe", *(c for c in ("file_id", "run", "lumi") if c in chosen.columns)]
    return chosen.sort(sort_by)


def enough_probes(model: Any, units: Any, rel_precision: float = 0.10, confidence: float = 0.95) -> bool:
    """True when the ``confidence`` interval of the total seconds of ``units`` is within ``rel_precision``.

    Uses ``model.total_seconds_interval(units, confidence)``: probing has learned enough once the
    interval's half-width is at most ``rel_precision`` times the estimate.
    """
    if not 0 < rel_precision:
        raise EstimatorError(f"rel_precision must be > 0, got {rel_precision}")
    if not hasattr(model, "total_seconds_interval"):
        raise EstimatorError(f"{type(model).__name__} gives no confidence interval of a total")
    table = units_frame(units)
    if table.height == 0:
        return True
    low, estimate, high = model.total_seconds_interval(table, confidence)
    if not math.isfinite(high) or estimate <= 0:
        return False
    return (high - low) / 2.0 <= rel_precision * estimate
