"""Loader for DBS-like file listings.

Accepted layouts (JSON):

* ``{"datasets": {"<name>": [record, ...], ...}}`` — pick one with ``dataset=``; optional when only one;
* ``[record, ...]`` — a plain list of file records.

A record: ``lfn`` (str), ``events`` (int), ``size`` (bytes), ``lumis`` (``{"<run>": [lumi, ...]}``), and
optionally ``block``, ``valid`` (0 excludes the file), ``locations`` (list of site names; ``location`` is
accepted too). DBS gives no per-lumi event counts, so each file's events are spread evenly over its lumis
(integers that sum to the file total) and flagged ``events_exact = False``; bytes follow the events.
Files with lumis and 0 events are kept (their units hold 0 events). Files without lumis stay in the files
table but hold no units.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from autosplit._io import parse_json
from autosplit.datasets.dataset import Dataset, _build_dataset, apportion, register_loader, unit_keys
from autosplit.errors import DatasetError


def _records(data: Any, origin: str, dataset: str | None) -> tuple[list[Any], str]:
    if isinstance(data, list):
        return data, dataset or Path(origin).stem
    if isinstance(data, dict) and isinstance(data.get("datasets"), dict):
        names = sorted(data["datasets"])
        if dataset is None:
            if len(names) != 1:
                raise DatasetError(
                    f"{origin}: holds {len(names)} datasets; choose one with --dataset: " + ", ".join(names)
                )
            dataset = names[0]
        if dataset not in data["datasets"]:
            raise DatasetError(f"{origin}: no dataset {dataset!r}; available: " + ", ".join(names))
        records = data["datasets"][dataset]
        if not isinstance(records, list):
            raise DatasetError(f"{origin}: dataset {dataset!r} must be a list of file records")
        return records, dataset
    raise DatasetError(f"{origin}: expected a list of file records or {{'datasets': {{name: [records]}}}}")


def _field(record: dict[str, Any], name: str, kind: type, where: str, default: Any = ...) -> Any:
    if name not in record:
        if default is ...:
            raise DatasetError(f"{where}: missing field {name!r}")
        return default
    value = record[name]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise DatasetError(f"{where}: field {name!r} must be a non-negative integer, got {value!r}")
    elif not isinstance(value, kind):
        raise DatasetError(f"{where}: field {name!r} must be a {kind.__name__}, got {value!r}")
    return value


@register_loader("dbs_json")
def read_dbs_json(path: str | os.PathLike[str], dataset: str | None = None) -> Dataset:
    """Read a DBS-like listing into a :class:`Dataset` (per-lumi events estimated)."""
    origin = str(path)
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise DatasetError(f"{origin}: cannot read ({exc.strerror or exc})") from None
    data = parse_json(text, origin, DatasetError)
    records, name = _records(data, origin, dataset)

    lfns: list[str] = []
    file_events: list[int] = []
    file_sizes: list[int] = []
    blocks: list[str] = []
    locations: list[list[str]] = []
    run_chunks: list[np.ndarray] = []
    lumi_chunks: list[np.ndarray] = []
    n_invalid = 0
    seen: set[str] = set()
    for index, record in enumerate(records):
        where = f"{origin}: file record {index}"
        if not isinstance(record, dict):
            raise DatasetError(f"{where}: expected an object, got {type(record).__name__}")
        lfn = _field(record, "lfn", str, where)
        where = f"{origin}: file {lfn}"
        if lfn in seen:
            raise DatasetError(f"{where}: listed twice")
        seen.add(lfn)
        if record.get("valid", 1) in (0, False):
            n_invalid += 1
            continue
        events = _field(record, "events", int, where)
        size = _field(record, "size", int, where, default=0)
        lumis = _field(record, "lumis", dict, where, default={})
        runs_here, lumis_here = [], []
        for run, run_lumis in lumis.items():
            if not (isinstance(run, str) and run.isascii() and run.isdigit()):
                raise DatasetError(f"{where}: run key {run!r} is not a non-negative integer")
            if not isinstance(run_lumis, list) or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in run_lumis
            ):
                raise DatasetError(f"{where}: run {run}: lumis must be a list of non-negative integers")
            lumi_array = np.unique(np.asarray(run_lumis, dtype=np.int64))
            runs_here.append(np.full(lumi_array.size, int(run), dtype=np.int64))
            lumis_here.append(lumi_array)
        site = record.get("locations", record.get("location", []))
        site = [site] if isinstance(site, str) else list(site or [])
        lfns.append(lfn)
        file_events.append(events)
        file_sizes.append(size)
        blocks.append(str(record.get("block", "")))
        locations.append(sorted(str(s) for s in site))
        run_chunks.append(np.concatenate(runs_here) if runs_here else np.empty(0, np.int64))
        lumi_chunks.append(np.concatenate(lumis_here) if lumis_here else np.empty(0, np.int64))

    counts = np.array([c.size for c in run_chunks], dtype=np.int64)
    runs = np.concatenate(run_chunks) if run_chunks else np.empty(0, np.int64)
    lumis = np.concatenate(lumi_chunks) if lumi_chunks else np.empty(0, np.int64)
    # Within each file, lay lumis out in (run, lumi) order so the even spread is deterministic.
    file_of_row = np.repeat(np.arange(counts.size), counts)
    order = np.lexsort((unit_keys(runs, lumis), file_of_row))
    runs, lumis, file_of_row = runs[order], lumis[order], file_of_row[order]
    events = apportion(np.array(file_events), np.ones(runs.size), counts)
    unit_bytes = apportion(np.array(file_sizes), events, counts)

    long = pl.DataFrame(
        {
            "run": runs,
            "lumi": lumis,
            "events": events,
            "bytes": unit_bytes,
            "file": np.array(lfns, dtype=object)[file_of_row] if lfns else np.empty(0, dtype=object),
        },
        schema={"run": pl.Int64, "lumi": pl.Int64, "events": pl.Int64, "bytes": pl.Int64, "file": pl.String},
    )
    files = pl.DataFrame(
        {"lfn": lfns, "events": file_events, "size": file_sizes, "block": blocks, "locations": locations},
        schema={
            "lfn": pl.String,
            "events": pl.Int64,
            "size": pl.Int64,
            "block": pl.String,
            "locations": pl.List(pl.String),
        },
    )
    meta = {
        "source": origin,
        "format": "dbs-json",
        "n_invalid_files": n_invalid,
        "n_files_without_lumis": int((counts == 0).sum()),
        "n_zero_event_files": int(
            sum(1 for e, c in zip(file_events, counts, strict=True) if e == 0 and c > 0)
        ),
    }
    return _build_dataset(long, name=name, files=files, events_exact=False, meta=meta)
