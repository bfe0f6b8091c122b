"""``autosplit report``: lumi lists and a summary, from the ledger.

Writes, in golden-JSON format: ``processedLumis.json`` (done), ``notFinishedLumis.json`` (not done yet:
pending or in a job), ``quarantinedLumis.json`` (given up, see ``summary.json`` for why); and
``summary.json`` (units and events per state, output files of the accounted jobs). The three lumi lists
are disjoint and their union is the task's dataset after the mask — always, because all come from one
table.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import polars as pl

from autosplit.datasets import LumiMask
from autosplit.jobreport import JobReport, JobReportError
from autosplit.pipeline.taskdir import TaskDir


def _mask(units: pl.DataFrame) -> LumiMask:
    if units.height == 0:
        return LumiMask()
    return LumiMask.from_pairs(units["run"].to_numpy(), units["lumi"].to_numpy())


def split_units(units: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """The ledger's units as the report counts them: (done, not finished = pending or in a job, quarantined)."""
    return (
        units.filter(pl.col("state") == "done"),
        units.filter(pl.col("state").is_in(["pending", "assigned"])),
        units.filter(pl.col("state") == "quarantined"),
    )


def lumi_lists(units: pl.DataFrame) -> dict[str, LumiMask]:
    """The report's three lumi lists of the ledger's ``units``, by file name (``processedLumis.json``, ...).

    Computed without writing anything (``autosplit serve`` shows them); :func:`write_report` writes them.
    """
    done, open_units, quarantined = split_units(units)
    return {
        "processedLumis.json": _mask(done),
        "notFinishedLumis.json": _mask(open_units),
        "quarantinedLumis.json": _mask(quarantined),
    }


def _committed(task: TaskDir, node: str, report: JobReport) -> list[dict[str, Any]]:
    """Where an accepted job's outputs were committed (``<destination>/<node>/<name>``, the name relative to
    the job's output directory: :mod:`autosplit.pipeline.outputs`), not where the job wrote them."""
    from autosplit.pipeline.outputs import OutputCommitError, output_relpath

    found = []
    for o in report.outputs:
        try:
            relative = output_relpath(o.name, task.output_dir(node))
        except OutputCommitError:
            continue  # never committed
        path = task.destination / node / relative
        found.append(
            {
                "job": node,
                "name": str(path),
                "bytes": o.bytes,
                "checksum": o.checksum,
                "exists": path.is_file(),
            }
        )
    return found


def write_report(task: TaskDir, outdir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Write the lumi lists and summary into ``outdir`` (default ``<task>/results``); returns the summary."""
    task.require()
    out = Path(outdir) if outdir else task.root / "results"
    out.mkdir(parents=True, exist_ok=True)
    with task.ledger() as ledger:
        units = ledger.units()
        attempts = ledger.attempts()
    done, open_units, quarantined = split_units(units)
    files = lumi_lists(units)
    for name, mask in files.items():
        mask.to_json(out / name)
    outputs = []
    good = (
        attempts.filter(pl.col("outcome").is_in(["ok", "soft-stopped", "wall-time", "success"]))
        if attempts.height
        else attempts
    )
    rows = (
        good.filter(pl.col("report_path").is_not_null()).select("node", "report_path").rows()
        if good.height
        else []
    )
    for node, path in rows:
        try:
            report = JobReport.from_json(path)
        except JobReportError:
            continue
        outputs += _committed(task, node, report)
    summary = {
        "task": task.name,
        "units": {
            "total": units.height,
            "done": done.height,
            "not_finished": open_units.height,
            "quarantined": quarantined.height,
        },
        "events": {
            "total": int(units["events"].sum() or 0) if units.height else 0,
            "read": int(done["events"].sum() or 0) if done.height else 0,
        },
        "quarantine_reasons": (
            quarantined.group_by("reason").len().sort("len", descending=True).rows()
            if quarantined.height
            else []
        ),
        "output_files": outputs,
        "files": sorted([*files, "summary.json"]),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["directory"] = str(out)
    return summary
