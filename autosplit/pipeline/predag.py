"""``autosplit predag TASK STAGE`` — the PRE script of each sub-DAG node: plans the next stage.

``STAGE`` is ``processing`` (or ``processing-rK`` after an extra probe round) or ``tail-K``. The script:

1. fits the cost model (:class:`~autosplit.estimators.UnitCostModel`) on every usable report so far;
2. takes the pending units from the ledger (units finished by probes or earlier stages stay done);
3. processing: while the model's total-CPU interval is wider than ``rel_precision`` and probe rounds
   remain, plans another round of probes instead (stage ``probe-rK``); otherwise packs the pending units
   with :func:`autosplit.plan` so each job's ``(1 - alpha)`` runtime quantile fits the target. Units that
   cannot fit alone are quarantined with the reason, before anything is submitted.
4. tails: quarantines units that failed ``max_unit_failures`` times, runs units named as the cause of a
   failure alone, and regroups the rest with decreasing sizes (:func:`autosplit.regroup`); the last tail
   has no soft limit.
5. records the stage's jobs in the ledger (one transaction) and writes their specs, submit descriptions
   and the stage DAG (with the next stage's sub-DAG node).

Exit codes: 0 the DAG is written; ``99`` (the node's PRE_SKIP) nothing is pending; 1 planning failed
(the reason is stored in the ledger and shown by ``autosplit status``). Re-running it after a crash
rewrites the same DAG from the ledger.
"""

from __future__ import annotations

import re
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from autosplit.errors import AutosplitError, OversizedUnitsWarning
from autosplit.estimators.probes import MAX_PROBE_ROUNDS, choose_probes, probe_budget, probe_round_seed
from autosplit.jobreport import JobReport, JobReportError
from autosplit.ledger import Ledger
from autosplit.pipeline.stages import PlannedJob, node_prefix, stage_dag, write_dag_config
from autosplit.pipeline.taskdir import PRE_SKIP_CODE, TaskDir
from autosplit.splitting.limits import job_hard_limit, probe_hard_limit

_KEY = re.compile(r"^(processing)(?:-r(\d+))?$|^tail-(\d+)$|^resubmit-(\d+)$")


class PredagError(AutosplitError):
    """The next stage cannot be planned (no usable probe result, bad stage name)."""


@dataclass
class PredagResult:
    exit_code: int
    stage: str | None
    message: str


def parse_key(key: str) -> tuple[str, int]:
    """``processing`` -> (processing, 1); ``processing-r2`` -> (processing, 2); ``tail-3`` -> (tail, 3);
    ``resubmit-1`` -> (resubmit, 1)."""
    match = _KEY.match(key)
    if not match:
        raise PredagError(f"unknown stage {key!r}; expected processing, processing-rK, tail-K or resubmit-K")
    if match.group(1):
        return "processing", int(match.group(2) or 1)
    if match.group(3):
        return "tail", int(match.group(3))
    return "resubmit", int(match.group(4))


def usable_reports(task: TaskDir, ledger: Ledger) -> list[JobReport]:
    """Reports the cost model may learn from (job accounted for, report readable)."""
    attempts = ledger.attempts()
    if attempts.height == 0:
        return []
    reports = []
    for path in attempts.filter(attempts["usable_report"] == 1)["report_path"].to_list():
        try:
            reports.append(JobReport.from_json(path))
        except JobReportError:
            continue
    return reports


def fit_models(config: Any, dataset: Any, reports: list[JobReport]) -> dict[str, Any]:
    """Cost model (required) and output/memory models (when the reports measured them).

    ``dataset`` supplies unit features for reports that carry only run and lumi.
    """
    from autosplit.estimators import MemoryModel, OutputModel, UnitCostModel

    alpha = config.splitting.alpha
    models: dict[str, Any] = {"cost": UnitCostModel(match_quantile=1.0 - alpha).fit(reports, units=dataset)}
    for name, cls in (("output", OutputModel), ("memory", MemoryModel)):
        try:
            models[name] = cls().fit(reports, units=dataset)
        except AutosplitError:
            pass
    return models


def model_info(models: dict[str, Any], units: Any) -> dict[str, Any]:
    """What status shows about the estimate: seconds per event with its interval, memory, output."""
    cost = models["cost"]
    info: dict[str, Any] = {"model": cost.summary()}
    events = float(units["events"].sum() or 0)
    if events > 0:
        low, est, high = cost.total_seconds_interval(units)
        info["seconds_per_event"] = {"estimate": est / events, "low": low / events, "high": high / events}
        info["remaining_cpu_seconds"] = {"estimate": est, "low": low, "high": high}
    output = models.get("output")
    if output is not None and np.isfinite(getattr(output, "bytes_per_event_", np.nan)):
        info["output_bytes_per_event"] = float(output.bytes_per_event_)
    memory = models.get("memory")
    if memory is not None:
        info["memory_bytes_per_event"] = float(getattr(memory, "slope_", np.nan))
        info["memory_base_bytes"] = float(getattr(memory, "intercept_", np.nan))
    return info


def probe_jobs(
    task: TaskDir, stage: str, units: Any, unit_ids: np.ndarray, model: Any = None
) -> list[PlannedJob]:
    """Probe jobs for ``stage`` (``probe`` or ``probe-rK``) over a stratified sample of ``units`` (rows map
    to ledger ``unit_ids``)."""
    config = task.config
    n_probes = config.n_probes
    budget = probe_budget(units["events"].to_numpy(), n_probes, config.splitting.probe_fraction)
    round_number = int(stage.rsplit("-r", 1)[1]) if stage.startswith("probe-r") else 1
    seed = probe_round_seed(round_number)
    chosen = choose_probes(units, n_probes, config.probe_seconds, model=model, max_events=budget, seed=seed)
    soft = config.probe_seconds
    hard = probe_hard_limit(soft, config.grace_seconds)
    prefix = node_prefix(stage)
    jobs = []
    for index, probe in enumerate(sorted(set(chosen["probe"].to_list()))):
        rows = chosen.filter(chosen["probe"] == probe)["row"].to_numpy().astype(np.int64)
        jobs.append(
            PlannedJob(f"{prefix}-{index + 1}", unit_ids[rows], None, soft, hard, config.limits.memory_mb)
        )
    return jobs


def _planned_from_plan(
    task: TaskDir,
    stage: str,
    plan: Any,
    unit_ids: np.ndarray,
    models: dict[str, Any],
    soft: float | None,
    start: int = 0,
) -> list[PlannedJob]:
    """PlannedJobs from a JobPlan made on a subset dataset whose rows map to ``unit_ids``."""
    cost = models["cost"]
    q99 = cost.predict_quantile(plan.dataset.units, 0.99)
    target, grace = task.config.target_seconds, task.config.grace_seconds
    jobs = []
    prefix = node_prefix(stage)
    predicted = plan.jobs["predicted_seconds"].to_list()
    for job in range(plan.n_jobs):
        rows = plan.job_rows(job)
        hard = job_hard_limit(soft, float(q99[rows].max()), target, grace)
        jobs.append(
            PlannedJob(
                f"{prefix}-{start + job + 1}",
                unit_ids[rows],
                float(predicted[job]),
                soft,
                hard,
                task.config.limits.memory_mb,
            )
        )
    return jobs


def _quarantine_oversized(ledger: Ledger, plan: Any, unit_ids: np.ndarray, target: float) -> int:
    rows = np.flatnonzero(plan.assignment < 0)
    if rows.size == 0:
        return 0
    reason = (
        f"alone predicted above the target runtime of {target:.0f} s at the requested confidence; "
        "resubmit with a larger --max-runtime"
    )
    return ledger.quarantine(unit_ids[rows].tolist(), reason)


def run_predag(task: TaskDir, key: str) -> PredagResult:
    """Plan the stage named ``key``; see the module docstring."""
    kind, number = parse_key(key)
    task.require()
    config = task.config
    with task.ledger() as ledger:
        already = ledger.get_meta(f"predag:{key}")
        if already == "skip":
            return PredagResult(PRE_SKIP_CODE, None, "nothing pending")
        if already:
            _write_stage_files(task, ledger, already, key)
            return PredagResult(0, already, "stage already planned; DAG rewritten")

        if kind in ("tail", "resubmit"):
            limit = config.limits.max_unit_failures
            failing = ledger.units("pending")
            if failing.height:
                failing = failing.filter(failing["failures"] >= limit)
                if failing.height:
                    ledger.quarantine(
                        failing["unit_id"].to_list(),
                        f"failed {limit} time(s); last error: " + (failing["reason"][0] or "unknown"),
                    )
        pending_units = ledger.units("pending")
        if pending_units.height == 0:
            ledger.set_meta(**{f"predag:{key}": "skip"})
            return PredagResult(PRE_SKIP_CODE, None, "nothing pending")

        reports = usable_reports(task, ledger)
        if not reports:
            message = _no_estimate_message(ledger)
            ledger.set_meta(error=message)
            raise PredagError(message)
        models = fit_models(config, task.dataset, reports)
        unit_ids = pending_units["unit_id"].to_numpy().astype(np.int64)
        pending = task.dataset.take(unit_ids)
        info = model_info(models, pending.units)

        if kind == "processing" and number < MAX_PROBE_ROUNDS and _needs_more_probes(task, models, pending):
            stage = f"probe-r{number + 1}"
            jobs = probe_jobs(task, stage, pending.units, unit_ids, models["cost"])
            next_key = f"processing-r{number + 1}"
        else:
            stage = key if kind != "processing" else "processing"
            jobs = _plan_jobs(task, ledger, kind, number, pending, unit_ids, pending_units, models)
            next_key = None
            following = 1 if kind == "processing" else number + 1
            if kind != "resubmit" and following <= config.splitting.max_tails:
                next_key = f"tail-{following}"
        if not jobs:
            ledger.set_meta(**{f"predag:{key}": "skip"})
            return PredagResult(PRE_SKIP_CODE, None, "every pending unit was quarantined")
        position = len(ledger.stages())
        info.update(next=next_key, planned_at=time.time(), dag_key=key)
        ledger.plan_stage(
            stage, position, [j.ledger_entry() for j in jobs], info=info, meta={f"predag:{key}": stage}
        )
        _write_stage_files(task, ledger, stage, key, jobs=jobs, next_key=next_key)
        return PredagResult(0, stage, f"{len(jobs)} job(s) planned for {stage}")


def _needs_more_probes(task: TaskDir, models: dict[str, Any], pending: Any) -> bool:
    from autosplit.estimators import enough_probes

    return not enough_probes(models["cost"], pending.units, task.config.splitting.rel_precision)


def planning_caps(config: Any, models: dict[str, Any]) -> dict[str, Any]:
    """The per-job caps of the configuration, with the output model when an output cap is set."""
    caps: dict[str, Any] = {"max_files_per_job": config.splitting.max_files_per_job}
    if config.splitting.max_output_bytes and "output" in models:
        caps.update(
            max_output_bytes=config.splitting.max_output_bytes, output_bytes_per_event=models["output"]
        )
    return caps


def processing_plan(config: Any, dataset: Any, models: dict[str, Any]) -> Any:
    """The processing stage's JobPlan. With a known slot count, sizes decrease already here, so the
    stage's last wave is not ragged; without one, every job gets the target size."""
    import autosplit as asp

    caps = planning_caps(config, models)
    target, alpha = config.target_seconds, config.splitting.alpha
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OversizedUnitsWarning)
        if config.slots:
            return asp.regroup(dataset, models["cost"], target, n_slots=config.slots, alpha=alpha, **caps)
        return asp.plan(dataset, models["cost"], target, alpha, **caps)


def _plan_jobs(task, ledger, kind, number, pending, unit_ids, pending_units, models) -> list[PlannedJob]:
    import autosplit as asp

    config = task.config
    target = config.target_seconds
    alpha = config.splitting.alpha
    caps = planning_caps(config, models)
    stage = "processing" if kind == "processing" else f"{kind}-{number}"
    if kind == "processing":
        plan = processing_plan(config, pending, models)
        _quarantine_oversized(ledger, plan, unit_ids, target)
        return _planned_from_plan(task, stage, plan, unit_ids, models, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OversizedUnitsWarning)
        last = kind == "resubmit" or number >= config.splitting.max_tails
        soft = None if last else target
        blamed = pending_units["blamed"].to_numpy().astype(bool)
        jobs: list[PlannedJob] = []
        clean_rows = np.flatnonzero(~blamed)
        if clean_rows.size:
            subset = pending.take(clean_rows)
            # Without a slot count, assume the parallelism processing had.
            slots = config.slots or max(len(ledger.jobs("processing")), 1)
            plan = asp.regroup(subset, models["cost"], target, n_slots=slots, alpha=alpha, **caps)
            _quarantine_oversized(ledger, plan, unit_ids[clean_rows], target)
            jobs += _planned_from_plan(task, stage, plan, unit_ids[clean_rows], models, soft)
        # Units a failure was blamed on run alone, so one bad lumi cannot take others down with it.
        cost = models["cost"]
        blamed_rows = np.flatnonzero(blamed)
        if blamed_rows.size:
            # Alone, without soft limit and with the last tail's hard limit: a unit that failed or was cut
            # off may be one far longer than the model predicts.
            means = cost.predict_unit_seconds(pending.units[blamed_rows])[0] + cost.overhead_seconds
            for k, row in enumerate(blamed_rows.tolist()):
                jobs.append(
                    PlannedJob(
                        f"{node_prefix(stage)}-{len(jobs) + 1}",
                        unit_ids[row : row + 1],
                        float(means[k]),
                        None,
                        job_hard_limit(None, 0.0, target, config.grace_seconds),
                        config.limits.memory_mb,
                    )
                )
        return jobs


def _no_estimate_message(ledger: Ledger) -> str:
    attempts = ledger.attempts()
    if attempts.height == 0:
        return "no probe job finished, so there is nothing to estimate the cost per event from"
    errors = attempts["message"].drop_nulls().value_counts(sort=True)
    top = "; ".join(f"{row[0]} ({row[1]}x)" for row in errors.head(3).rows())
    return (
        f"all {attempts.height} probe attempt(s) failed to measure anything, so the cost per event cannot be "
        f"estimated; most common errors: {top}. Fix the code and run 'autosplit resubmit'."
    )


def _planned_jobs_from_ledger(ledger: Ledger, stage: str) -> list[PlannedJob]:
    jobs = ledger.jobs(stage)
    out = []
    for row in jobs.iter_rows(named=True):
        out.append(
            PlannedJob(
                row["node"],
                np.array(ledger.job_unit_ids(row["node"]), dtype=np.int64),
                row["predicted_seconds"],
                row["soft_limit_seconds"],
                row["hard_limit_seconds"],
                row["memory_mb"] or 2000,
            )
        )
    out.sort(key=lambda j: int(j.node.rsplit("-", 1)[1]))
    return out


def _write_stage_files(
    task: TaskDir,
    ledger: Ledger,
    stage: str,
    key: str,
    *,
    jobs: list[PlannedJob] | None = None,
    next_key: str | None = None,
) -> None:
    if jobs is None:
        jobs = _planned_jobs_from_ledger(ledger, stage)
        next_key = (ledger.stage(stage) or {}).get("info", {}).get("next")
    dag = stage_dag(task, stage, jobs, next_stage=next_key, dag_name=key)
    dag.config_file = write_dag_config(task, key)
    dag.write(task.stage_dag(key))


def main(task_dir: str, key: str) -> int:
    task = TaskDir(task_dir)
    try:
        result = run_predag(task, key)
    except AutosplitError as exc:
        print(f"autosplit predag {key}: {exc}", file=sys.stderr)
        _log(task, key, f"failed: {exc}")
        return 1
    print(f"autosplit predag {key}: {result.message}", file=sys.stderr)
    _log(task, key, result.message)
    return result.exit_code


def _log(task: TaskDir, key: str, text: str) -> None:
    try:
        task.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(task.logs_dir / "predag.log", "a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {key}: {text}\n")
    except OSError:
        pass
