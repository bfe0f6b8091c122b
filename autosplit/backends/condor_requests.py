"""``request_memory`` and ``request_disk`` of condor jobs, learned from the task's finished jobs and cached.

The memory and output-size models (:class:`~autosplit.estimators.MemoryModel`,
:class:`~autosplit.estimators.OutputModel`) are fitted on the newest :data:`MODEL_REPORTS` usable reports,
which the ledger names (no walk of ``jobs/``). Their upper-quantile lines are kept in ``requests.json``, so
writing a job's submit file reads one small file and imports no estimator: scipy, scikit-learn and polars
cost about 0.7 CPU-s, and the submit file is written while the scheduler lock is held, so every other PRE
and POST script of the task would wait for it.

:func:`refresh_requests` fits again when the number of reports has doubled since the last fit, or grown
by :data:`REFIT_STEP`, whichever comes first. A bind calls it after it released the scheduler lock; the job
it just bound used the previous fit.
"""

from __future__ import annotations

import fcntl
import json
import math
from typing import Any

from autosplit._io import atomic_write_text

MODEL_REPORTS = 200  # the newest job reports the memory and output models learn from
MIN_REPORTS = 3  # fewer reports than this: the configured memory, no output estimate
REFIT_STEP = MODEL_REPORTS // 2  # fit again after this many new reports at the latest
QUANTILE = 0.95  # requests cover this upper quantile of memory and output size
MEMORY_MARGIN = 1.1  # request_memory is the quantile plus 10 %
FILE = "requests.json"


def _read(task: Any) -> dict[str, Any]:
    try:
        data = json.loads((task.root / FILE).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _line_value(line: Any, events: int) -> float | None:
    """``a + b * events`` for a stored ``[a, b]``; None when missing or not two finite numbers."""
    if not isinstance(line, list) or len(line) != 2:
        return None
    if not all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in line):
        return None
    return float(line[0]) + float(line[1]) * events


def requests_for(task: Any, events: int, floor_mb: int) -> tuple[int, float]:
    """``(request_memory in MB, expected output bytes)`` for a job of ``events`` events, from the cached
    fit: the memory quantile plus 10 %, never below ``floor_mb`` (the configured memory); 0 bytes of output
    until the output model could be fitted."""
    cached = _read(task)
    memory_mb = int(floor_mb)
    peak = _line_value(cached.get("memory"), events)
    if peak is not None and peak > 0:
        memory_mb = max(memory_mb, int(peak * MEMORY_MARGIN / 2**20) + 1)
    output = _line_value(cached.get("output"), events)
    return memory_mb, output if output is not None and output > 0 else 0.0


def _fitted_on(task: Any) -> int:
    """How many reports the cached fit was made on (0: none, or a cache that makes no sense)."""
    value = _read(task).get("reports", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _due(n_reports: int, fitted_on: int) -> bool:
    if n_reports < MIN_REPORTS:
        return False
    return n_reports >= 2 * fitted_on or n_reports - fitted_on >= REFIT_STEP


def refresh_requests(task: Any) -> bool:
    """Fit the memory and output models again if enough new reports came since the last fit; returns
    whether it did. One process fits at a time (the others skip); the cache is replaced atomically."""
    with task.ledger() as ledger:
        n_reports = ledger.usable_report_count()
    if not _due(n_reports, _fitted_on(task)):
        return False  # most binds: the report paths are not even read
    with open(task.root / f".{FILE}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another script is fitting
            return False
        if not _due(n_reports, _fitted_on(task)):
            return False
        with task.ledger() as ledger:
            paths = ledger.newest_reports(MODEL_REPORTS)
        atomic_write_text(task.root / FILE, json.dumps({"reports": n_reports, **_fit(paths)}))
    return True


def _fit(paths: list[str]) -> dict[str, list[float] | None]:
    """The memory and output quantile lines fitted on the reports at ``paths`` (None where a model cannot
    be fitted: no RSS measured, or no output sizes)."""
    from autosplit.estimators import EstimatorError, MemoryModel, OutputModel
    from autosplit.jobreport import JobReport, JobReportError

    reports = []
    for path in paths:
        try:
            reports.append(JobReport.from_json(path))
        except (OSError, JobReportError):  # an unreadable report teaches nothing
            continue
    fitted: dict[str, list[float] | None] = {}
    for key, model in (("memory", MemoryModel()), ("output", OutputModel())):
        try:
            fitted[key] = list(model.fit(reports).quantile_line(QUANTILE))
        except (EstimatorError, ValueError):
            fitted[key] = None
    return fitted
