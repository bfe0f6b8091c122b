"""``autosplit dryrun``: what a task would do, measured on this machine before anything is submitted.

CRAB3 refuses ``--dryrun`` for automatic splitting (crab3.md §5.4); this is the automatic-mode answer. It
runs real probe jobs — the user's code on the real files, through the same wrapper as the pipeline — on a
stratified sample of units, in rounds, within a time budget, until the model's estimate of the task's
total CPU is within ``rel_precision`` (or the budget is spent). Then it fits the same models the pipeline
fits, plans the task exactly as the pipeline's processing stage would, and predicts the makespan on N
slots with the pool simulator (including the tail stages).

Nothing is written outside a temporary directory; the probe reports can be kept (``keep_dir``).
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from autosplit.datasets import Dataset, load_dataset, load_mask
from autosplit.errors import AutosplitError
from autosplit.jobreport import JobReport
from autosplit.pipeline.config import TaskConfig
from autosplit.pipeline.stages import spec_files
from autosplit.pipeline.wrapper import run_wrapper
from autosplit.worker import JobSpec

MAX_ROUNDS = 4


class DryrunError(AutosplitError):
    """The dry run could not measure anything (every probe failed, or the budget is too small)."""


@dataclass
class DryrunResult:
    """Everything the dry run found; :meth:`to_dict` is the ``--json`` output."""

    config: TaskConfig
    dataset: Dataset
    reports: list[JobReport]
    models: dict[str, Any]
    plan: Any
    probe_rounds: int
    probe_seconds_spent: float
    makespan: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        cost = self.models["cost"]
        units = self.dataset.units
        events = float(units["events"].sum() or 0)
        low, est, high = cost.total_seconds_interval(units)
        jobs = self.plan.jobs
        target = self.config.target_seconds
        out: dict[str, Any] = {
            "task": self.config.task.name,
            "units": self.dataset.n_units,
            "events": int(events),
            "probe_jobs": len(self.reports),
            "probe_rounds": self.probe_rounds,
            "probe_seconds_spent": round(self.probe_seconds_spent, 1),
            "probe_events": int(sum(r.total_events or 0 for r in self.reports)),
            "seconds_per_event": est / events if events else math.nan,
            "seconds_per_event_interval": [low / events, high / events] if events else [math.nan, math.nan],
            "overhead_seconds": cost.overhead_seconds,
            "total_cpu_hours": est / 3600.0,
            "total_cpu_hours_interval": [low / 3600.0, high / 3600.0],
            "target_runtime_seconds": target,
            "alpha": self.config.splitting.alpha,
            "n_jobs": self.plan.n_jobs,
            "oversized_units": int((self.plan.assignment < 0).sum()),
        }
        if jobs.height:
            predicted = jobs["predicted_seconds"].to_numpy()
            sd = jobs["predicted_std"].to_numpy()
            z = (target - predicted) / np.maximum(sd, 1e-12)
            p_soft = np.array([1.0 - NormalDist().cdf(v) for v in z])
            events_per_job = jobs["events"].to_numpy()
            out.update(
                events_per_job={
                    "min": int(events_per_job.min()),
                    "mean": float(events_per_job.mean()),
                    "max": int(events_per_job.max()),
                },
                predicted_runtime_seconds={
                    "p10": float(np.percentile(predicted, 10)),
                    "median": float(np.median(predicted)),
                    "p90": float(np.percentile(predicted, 90)),
                    "max_quantile": float(jobs["predicted_quantile"].max()),
                },
                probability_soft_limit=float(p_soft.mean()),
            )
        output = self.models.get("output")
        if output is not None and math.isfinite(getattr(output, "bytes_per_event_", math.nan)):
            out["output_bytes_per_event"] = float(output.bytes_per_event_)
            out["output_bytes_total"] = float(output.bytes_per_event_ * events)
        memory = self.models.get("memory")
        if memory is not None and hasattr(memory, "slope_"):
            out["memory_bytes_per_event"] = float(memory.slope_)
            out["memory_base_bytes"] = float(memory.intercept_)
            if jobs.height:
                out["memory_peak_bytes_q95"] = float(np.max(memory.quantile(jobs["events"].to_numpy(), 0.95)))
        if self.makespan is not None:
            out["predicted_makespan_seconds"] = self.makespan["median"]
            out["predicted_makespan_interval"] = [self.makespan["low"], self.makespan["high"]]
            out["slots"] = self.makespan.get("n_slots")
            out["makespan"] = {k: v for k, v in self.makespan.items() if not isinstance(v, list | np.ndarray)}
        else:
            out["predicted_makespan_seconds"] = None
        out["notes"] = self.notes
        return out


def load_task_dataset(config: TaskConfig) -> Dataset:
    """The task's dataset after its mask, with per-lumi features, as ``autosplit submit`` would build it."""
    dataset = load_dataset(config.dataset.source, dataset=config.dataset.name, tree=config.dataset.tree)
    if config.dataset.mask:
        dataset = dataset.select(load_mask(config.dataset.mask))
    if config.dataset.features:
        from autosplit.datasets.features import read_features

        dataset = dataset.with_features(read_features(config.dataset.features))
    if dataset.n_units == 0:
        raise DryrunError("the dataset has no (run, lumi) units after the mask; nothing to plan")
    return dataset


def _run_probe_round(
    config: TaskConfig,
    dataset: Dataset,
    chosen_rows: list[np.ndarray],
    soft_seconds: float,
    workdir: Path,
    round_index: int,
    parallel: int,
) -> list[JobReport]:
    """Run one round of probe jobs through the wrapper, ``parallel`` at a time; returns usable reports."""
    code = (
        {"callable": config.code.callable} if config.code.callable else {"executable": config.code.executable}
    )
    specs = []
    for index, rows in enumerate(chosen_rows):
        node = f"probe-r{round_index}-{index + 1}"
        job_dir = workdir / node
        job_dir.mkdir(parents=True, exist_ok=True)
        spec = JobSpec(
            task=config.task.name,
            job_id=node,
            stage="probe",
            site=config.backend.site,
            soft_limit_seconds=soft_seconds,
            hard_limit_seconds=max(4.0 * soft_seconds, soft_seconds + 30.0),
            output_dir=str(job_dir / "out"),
            files=spec_files(dataset, rows),
            code=code,
        )
        specs.append((spec.write(job_dir / "spec.json"), job_dir / "report.json"))

    def one(item: tuple[Path, Path]) -> JobReport | None:
        spec_path, report_path = item
        try:
            result = run_wrapper(spec_path, report_path=report_path, cwd=config.code.path, grace_seconds=5.0)
        except AutosplitError:
            return None
        return result.report

    with ThreadPoolExecutor(max_workers=max(parallel, 1)) as pool:
        reports = list(pool.map(one, specs))
    return [r for r in reports if r is not None]


def dryrun(
    config: TaskConfig,
    *,
    budget_seconds: float = 60.0,
    slots: int | None = None,
    parallel: int | None = None,
    keep_dir: str | os.PathLike[str] | None = None,
    progress: Callable[[str], None] | None = None,
    predict: bool = True,
) -> DryrunResult:
    """Probe, fit, plan and predict; see the module docstring. ``budget_seconds`` bounds the probing."""
    from autosplit.estimators import choose_probes, enough_probes
    from autosplit.estimators.probes import probe_budget

    say = progress or (lambda text: None)
    started = time.monotonic()
    dataset = load_task_dataset(config)
    say(f"dataset: {dataset.n_units:,} units, {dataset.n_events:,} events in {dataset.n_files:,} files")
    parallel = parallel or min(os.cpu_count() or 1, config.n_probes)
    soft = min(config.probe_seconds, max(budget_seconds / 3.0, 1.0))
    units = dataset.units
    probed = np.zeros(dataset.n_units, dtype=bool)
    reports: list[JobReport] = []
    failures: list[str] = []
    models: dict[str, Any] | None = None
    rounds = 0
    with tempfile.TemporaryDirectory(prefix="autosplit-dryrun-") as tmp:
        workdir = Path(keep_dir) if keep_dir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        while rounds < MAX_ROUNDS:
            elapsed = time.monotonic() - started
            if rounds and elapsed + soft * 1.5 > budget_seconds:
                break
            candidates = np.flatnonzero(~probed)
            if candidates.size == 0:
                break
            budget = probe_budget(
                units["events"].to_numpy()[candidates],
                config.n_probes,
                config.splitting.probe_fraction,
                total_events=float(units["events"].sum()),
            )
            chosen = choose_probes(
                units[candidates],
                config.n_probes,
                soft,
                model=models["cost"] if models else None,
                max_events=budget,
                seed=rounds,
            )
            groups = [
                candidates[chosen.filter(chosen["probe"] == p)["row"].to_numpy().astype(np.int64)]
                for p in sorted(set(chosen["probe"].to_list()))
            ]
            rounds += 1
            say(f"probe round {rounds}: {len(groups)} job(s) of up to {soft:.0f} s on {parallel} core(s)")
            new = _run_probe_round(config, dataset, groups, soft, workdir, rounds, parallel)
            for rows in groups:
                probed[rows] = True
            usable = [r for r in new if r.units or (r.exit_code == 0 and r.total_events)]
            failed = [r for r in new if r.exit_code != 0]
            failures += [_last_line(r) for r in failed]
            if failed:
                say(f"  {len(failed)} probe(s) failed: {_last_line(failed[0])}")
            reports += usable
            if not reports:
                continue
            try:
                models = fit_models(config, dataset, reports)
            except AutosplitError as exc:
                say(f"  cannot fit yet: {exc}")
                continue
            spe = _seconds_per_event(models["cost"], units)
            say(
                f"  {sum(len(r.units) for r in reports)} unit(s) measured: {spe[1]:.4g} s/event "
                f"(95% interval {spe[0]:.4g} - {spe[2]:.4g})"
            )
            if enough_probes(models["cost"], units, config.splitting.rel_precision):
                say(f"  estimate within {config.splitting.rel_precision:.0%}: probing stops")
                break
        spent = time.monotonic() - started
    if not reports or models is None:
        messages = sorted(set(failures))
        raise DryrunError(
            "no probe job produced a measurement, so the cost per event cannot be estimated"
            + (f"; errors: {'; '.join(messages)[:500]}" if messages else "")
            + " (check the code with 'autosplit wrapper' on one job, or raise --budget)"
        )
    plan = full_size_plan(config, dataset, models)
    result = DryrunResult(config, dataset, reports, models, plan, rounds, spent)
    if int((plan.assignment < 0).sum()):
        result.notes.append(
            f"{int((plan.assignment < 0).sum())} unit(s) cannot fit the target alone; they would be quarantined "
            "before submission (raise target_runtime to process them)"
        )
    if predict:
        slots = slots or config.max_jobs
        say(f"simulating the task on {slots} slot(s)")
        result.makespan = predict_makespan(result, slots)
    return result


def fit_models(config: TaskConfig, dataset: Dataset, reports: list[JobReport]) -> dict[str, Any]:
    """The cost model (required) and the output and memory models (when the reports measured them), fitted
    as the task's scheduler fits its cost model."""
    from autosplit.estimators import MemoryModel, OutputModel, UnitCostModel

    alpha = config.splitting.alpha
    models: dict[str, Any] = {"cost": UnitCostModel(match_quantile=1.0 - alpha).fit(reports, units=dataset)}
    for name, cls in (("output", OutputModel), ("memory", MemoryModel)):
        try:
            models[name] = cls().fit(reports, units=dataset)
        except AutosplitError:
            pass
    return models


def full_size_plan(config: TaskConfig, dataset: Dataset, models: dict[str, Any]) -> Any:
    """The dataset packed into full-size jobs (the scheduler's jobs while much work is left: ``(1 - alpha)``
    runtime quantile within the target, the configured caps); the last jobs of a real task are smaller."""
    import warnings

    import autosplit as asp
    from autosplit.errors import OversizedUnitsWarning

    caps: dict[str, Any] = {"max_files_per_job": config.splitting.max_files_per_job}
    if config.splitting.max_output_bytes and "output" in models:
        caps.update(
            max_output_bytes=config.splitting.max_output_bytes, output_bytes_per_event=models["output"]
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OversizedUnitsWarning)
        return asp.plan(dataset, models["cost"], config.target_seconds, config.splitting.alpha, **caps)


def _last_line(report: JobReport) -> str:
    lines = (report.exit_message or f"exit code {report.exit_code}").strip().splitlines()
    return lines[-1][:200] if lines else f"exit code {report.exit_code}"


def _seconds_per_event(model: Any, units: Any) -> tuple[float, float, float]:
    events = float(units["events"].sum() or 1)
    low, est, high = model.total_seconds_interval(units)
    return low / events, est / events, high / events


def predict_makespan(result: DryrunResult, slots: int) -> dict[str, Any] | None:
    """Makespan on ``slots`` slots with an interval, from the pool simulator (None if unavailable)."""
    try:
        from autosplit.sim import predict_makespan as simulate
    except ImportError:
        result.notes.append("the pool simulator is not installed (pip install 'autosplit[sim]'); no makespan")
        return None
    config = result.config
    return simulate(
        result.dataset,
        result.models["cost"],
        target_runtime=config.target_seconds,
        alpha=config.splitting.alpha,
        n_slots=slots,
        max_tails=config.splitting.max_tails,
        slots=config.splitting.slots or slots,
        seed=0,
    )
