"""The automatic planner and tail regrouping.

:func:`plan` packs units (in location-set, file, run, lumi order) into jobs so that each job's predicted
``(1 - alpha)`` runtime quantile stays within the target, and optional output, input, event and file caps
hold. Units that cannot meet the limits even alone are *not* planned: they are returned in
``plan.oversized`` with a warning, so nothing is submitted that cannot finish.

:func:`regroup` plans leftover units for a tail stage. Given the number of slots that will run them, it
hands out decreasing job sizes (factoring: each batch of ``n_slots`` jobs takes half the remaining
predicted work) so the last jobs of the task end close together instead of one long job finishing alone.
"""

from __future__ import annotations

import math
import warnings
from statistics import NormalDist
from typing import Any

import numpy as np
import polars as pl

from autosplit._quantile import payload_quantile
from autosplit.datasets import Dataset
from autosplit.errors import OversizedUnitsWarning, SplittingError
from autosplit.splitting.jobplan import JobPlan
from autosplit.splitting.model import CostModel, shared_cv
from autosplit.splitting.order import PlanningOrder, planning_order
from autosplit.splitting.packing import additive_ends, cumulative, pack_by_quantile, starts_to_jobs


def _check_model_output(name: str, values: Any, n: int) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    if array.shape != (n,):
        raise SplittingError(f"cost model returned {name} of shape {array.shape} for {n} units")
    if n and (not np.isfinite(array).all() or array.min() < 0):
        raise SplittingError(f"cost model returned a negative, NaN or infinite {name}")
    return array


def _unit_output_bytes(units: pl.DataFrame, output: Any) -> np.ndarray | None:
    """Predicted output bytes per unit from a bytes-per-event number or a model with predict_unit_bytes."""
    if output is None:
        return None
    if hasattr(output, "predict_unit_bytes"):
        return _check_model_output("output bytes", output.predict_unit_bytes(units), units.height)
    rate = float(output)
    if not math.isfinite(rate) or rate < 0:
        raise SplittingError(f"output_bytes_per_event must be a finite number >= 0, got {output!r}")
    return units["events"].to_numpy().astype(np.float64) * rate


def _restrict(order: PlanningOrder, keep: np.ndarray) -> PlanningOrder:
    """The order without the dropped units; segment and file starts carry over to the next kept unit."""
    segment_id = np.cumsum(order.segment_start)[keep]
    file_id = order.file_id[keep]

    def changes(values: np.ndarray) -> np.ndarray:
        flags = np.ones(values.size, dtype=bool)
        flags[1:] = values[1:] != values[:-1]
        return flags

    return PlanningOrder(
        rows=order.rows[keep],
        file_id=file_id,
        run=order.run[keep],
        file_start=changes(file_id),
        extra_files=order.extra_files[keep],
        segment_start=changes(segment_id),
    )


class _Factoring:
    """Job-size schedule for factoring: each batch of ``n_slots`` jobs shares half the remaining work.

    Jobs never get less than ``min_job_seconds`` of work. With ``adaptive``, that floor drops, for work too
    small to give every slot a job of the floor's size, to the work per slot (but not below twice the
    per-job overhead), so a short tail still spreads over the free slots.
    """

    def __init__(
        self, n_slots: int, min_job_seconds: float, overhead: float = 0.0, adaptive: bool = False
    ) -> None:
        self.n_slots = n_slots
        self.min_job_seconds = min_job_seconds
        self.overhead = overhead
        self.adaptive = adaptive
        self.chunk = 0.0

    def __call__(self, job_index: int, remaining_seconds: float) -> float:
        if job_index == 0 and self.adaptive:
            per_slot = remaining_seconds / self.n_slots
            self.min_job_seconds = min(self.min_job_seconds, max(per_slot, 2.0 * self.overhead))
        if job_index % self.n_slots == 0:
            self.chunk = max(remaining_seconds / (2 * self.n_slots), self.min_job_seconds)
        return self.chunk


def _plan(
    dataset: Dataset,
    model: CostModel,
    target_runtime: float,
    alpha: float,
    *,
    algorithm: str,
    params: dict[str, Any],
    max_output_bytes: float | None,
    output_bytes_per_event: Any,
    max_files_per_job: int | None,
    max_events_per_job: int | None,
    max_input_bytes: float | None,
    split_on_run: bool,
    respect_locations: bool,
    schedule: _Factoring | None,
) -> JobPlan:
    if not isinstance(dataset, Dataset):
        raise SplittingError(f"expected a Dataset, got {type(dataset).__name__}")
    if not (isinstance(target_runtime, int | float) and math.isfinite(target_runtime) and target_runtime > 0):
        raise SplittingError(f"target_runtime must be a positive number of seconds, got {target_runtime!r}")
    if not 0 < alpha < 0.5:
        raise SplittingError(f"alpha must be in (0, 0.5), got {alpha!r}")
    if not hasattr(model, "predict_unit_seconds"):
        raise SplittingError(f"{type(model).__name__} is not a cost model (it has no predict_unit_seconds)")
    if max_output_bytes is not None and output_bytes_per_event is None:
        raise SplittingError("max_output_bytes needs output_bytes_per_event (a number or an output model)")
    for name, value in (("max_files_per_job", max_files_per_job), ("max_events_per_job", max_events_per_job)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise SplittingError(f"{name} must be a positive integer, got {value!r}")

    units = dataset.units
    n_all = units.height
    overhead = float(getattr(model, "overhead_seconds", 0.0) or 0.0)
    cv = shared_cv(model)
    z = NormalDist().inv_cdf(1.0 - alpha)
    mean, std = model.predict_unit_seconds(units)
    mean = _check_model_output("mean seconds", mean, n_all)
    std = _check_model_output("std seconds", std, n_all)
    output = _unit_output_bytes(units, output_bytes_per_event)
    events = units["events"].to_numpy()
    input_bytes = units["bytes"].to_numpy()
    n_files = units["file_ids"].list.len().to_numpy()

    alone = overhead + payload_quantile(mean, std**2 + (cv * mean) ** 2, z)
    oversized = alone > target_runtime
    if max_output_bytes is not None:
        oversized |= output > max_output_bytes
    if max_events_per_job is not None:
        oversized |= events > max_events_per_job
    if max_input_bytes is not None:
        oversized |= input_bytes > max_input_bytes
    if max_files_per_job is not None:
        oversized |= n_files > max_files_per_job
    if oversized.any():
        worst = units.filter(pl.Series(oversized)).with_columns(pl.Series("seconds", alone[oversized]))
        worst = worst.sort("seconds", descending=True).row(0, named=True)
        warnings.warn(
            f"{int(oversized.sum())} unit(s) cannot fit one job under the limits and are left out "
            f"(see plan.oversized); the worst, run {worst['run']} lumi {worst['lumi']} with {worst['events']} "
            f"events, is predicted at {worst['seconds']:.0f} s against a target of {target_runtime:.0f} s",
            OversizedUnitsWarning,
            stacklevel=3,
        )

    order = planning_order(dataset, split_on_run=split_on_run, respect_locations=respect_locations)
    if oversized.any():
        order = _restrict(order, ~oversized[order.rows])
    cum_mean = cumulative(order.take(mean))
    cum_var = cumulative(order.take(std) ** 2)
    cap_ends = None
    if order.n:
        caps = ((output, max_output_bytes), (events, max_events_per_job), (input_bytes, max_input_bytes))
        for values, limit in caps:
            if limit is not None:
                ends = additive_ends(cumulative(order.take(values)), limit)
                cap_ends = ends if cap_ends is None else np.minimum(cap_ends, ends, out=cap_ends)
        if max_files_per_job is not None:
            # Files in units i..j-1: file starts among them, plus unit i's file when i starts mid-file,
            # plus the extra files of lumis spanning files (counted conservatively).
            file_count = cumulative(order.file_start.astype(np.int64) + order.extra_files)
            ends = additive_ends(file_count, max_files_per_job - (~order.file_start).astype(np.int64))
            cap_ends = ends if cap_ends is None else np.minimum(cap_ends, ends, out=cap_ends)
    starts = pack_by_quantile(
        cum_mean,
        cum_var,
        target=target_runtime,
        overhead=overhead,
        z=z,
        shared_cv=cv,
        segment_start=order.segment_start,
        cap_ends=cap_ends,
        mean_budget=schedule,
    )
    assignment = order.scatter(starts_to_jobs(starts, order.n), n_all)
    prediction = {"unit_mean": mean, "unit_std": std, "overhead": overhead, "shared_cv": cv, "z": z}
    return JobPlan(dataset, assignment, algorithm=algorithm, params=params, prediction=prediction)


def plan(
    dataset: Dataset,
    model: CostModel,
    target_runtime: float,
    alpha: float = 0.05,
    *,
    max_output_bytes: float | None = None,
    output_bytes_per_event: Any = None,
    max_files_per_job: int | None = None,
    max_events_per_job: int | None = None,
    max_input_bytes: float | None = None,
    split_on_run: bool = False,
    respect_locations: bool = True,
) -> JobPlan:
    """Pack ``dataset`` into jobs whose predicted runtime meets ``target_runtime`` with probability 1 - alpha.

    Parameters
    ----------
    model:
        A cost model (see :mod:`autosplit.splitting.model`): unit mean/std seconds and per-job overhead.
    target_runtime:
        Seconds; each job's ``(1 - alpha)`` runtime quantile (:mod:`autosplit._quantile`) stays at or below it.
    max_output_bytes, output_bytes_per_event:
        Cap on a job's predicted output; the prediction is events x bytes-per-event, or an object with
        ``predict_unit_bytes(units)`` (e.g. an upper-quantile output model).
    max_files_per_job, max_events_per_job, max_input_bytes:
        Further caps per job.
    split_on_run:
        Never put two runs in one job.
    respect_locations:
        Never mix files of different location sets in one job (when locations are known).

    Units that cannot meet the limits alone end in ``plan.oversized`` (with an
    :class:`~autosplit.errors.OversizedUnitsWarning`) and in no job.
    """
    params = {
        "target_runtime": target_runtime,
        "alpha": alpha,
        "max_output_bytes": max_output_bytes,
        "max_files_per_job": max_files_per_job,
        "max_events_per_job": max_events_per_job,
        "max_input_bytes": max_input_bytes,
        "split_on_run": split_on_run,
    }
    return _plan(
        dataset,
        model,
        target_runtime,
        alpha,
        algorithm="Automatic",
        params=params,
        max_output_bytes=max_output_bytes,
        output_bytes_per_event=output_bytes_per_event,
        max_files_per_job=max_files_per_job,
        max_events_per_job=max_events_per_job,
        max_input_bytes=max_input_bytes,
        split_on_run=split_on_run,
        respect_locations=respect_locations,
        schedule=None,
    )


def regroup(
    units: Dataset,
    model: CostModel,
    target_runtime: float,
    n_slots: int | None = None,
    alpha: float = 0.05,
    *,
    min_job_seconds: float | None = None,
    **caps: Any,
) -> JobPlan:
    """Plan leftover (pending) units into tail jobs.

    Without ``n_slots`` this is :func:`plan` with the given target. With ``n_slots`` (the slots expected to
    run the tail), job sizes decrease: each batch of ``n_slots`` jobs shares half of the remaining
    predicted work (factoring, Hummel et al. 1992), never less than ``min_job_seconds`` of work per job
    and never more than the target allows. The default floor is ten times the model's per-job overhead, at
    least 1/20 of the target, lowered (not below twice the overhead) when the work is too small to give
    every slot a job that long. Other keyword arguments are the caps of :func:`plan`.
    """
    if n_slots is not None and (isinstance(n_slots, bool) or not isinstance(n_slots, int) or n_slots <= 0):
        raise SplittingError(f"n_slots must be a positive integer, got {n_slots!r}")
    unknown = set(caps) - {
        "max_output_bytes",
        "output_bytes_per_event",
        "max_files_per_job",
        "max_events_per_job",
        "max_input_bytes",
        "split_on_run",
        "respect_locations",
    }
    if unknown:
        raise SplittingError(f"regroup() does not take {', '.join(sorted(unknown))}")
    overhead = float(getattr(model, "overhead_seconds", 0.0) or 0.0)
    adaptive = min_job_seconds is None
    if min_job_seconds is None:
        min_job_seconds = max(10.0 * overhead, target_runtime / 20.0)
    schedule = _Factoring(n_slots, float(min_job_seconds), overhead, adaptive) if n_slots else None
    params = {
        "target_runtime": target_runtime,
        "alpha": alpha,
        "n_slots": n_slots,
        "min_job_seconds": min_job_seconds,
    }
    params.update({k: v for k, v in caps.items() if k != "output_bytes_per_event"})
    return _plan(
        units,
        model,
        target_runtime,
        alpha,
        algorithm="Regroup",
        params=params,
        max_output_bytes=caps.get("max_output_bytes"),
        output_bytes_per_event=caps.get("output_bytes_per_event"),
        max_files_per_job=caps.get("max_files_per_job"),
        max_events_per_job=caps.get("max_events_per_job"),
        max_input_bytes=caps.get("max_input_bytes"),
        split_on_run=caps.get("split_on_run", False),
        respect_locations=caps.get("respect_locations", True),
        schedule=schedule,
    )
