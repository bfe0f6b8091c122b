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

from autosplit._io import one_line, parse_json, read_input_text, short_repr
from autosplit.datasets.dataset import (
    MAX_FILE_COUNT,
    MAX_TOTAL_COUNT,
    Dataset,
    _build_dataset,
    apportion,
    register_loader,
    unit_keys,
)
from autosplit.datasets.lumimask import MAX_LUMI, MAX_RUN
from autosplit.errors import DatasetError


def _records(data: Any, origin: str, dataset: str | None) -> tuple[list[Any], str]:
    if dataset is not None and not isinstance(dataset, str):
        raise DatasetError(f"{origin}: the dataset name must be a string, got {type(dataset).__name__}")
    if isinstance(data, list):
        return data, dataset or Path(origin).stem
    if isinstance(data, dict) and isinstance(data.get("datasets"), dict):
        names = sorted(data["datasets"])
        if dataset is None:
            if len(names) != 1:
                raise DatasetError(
                    f"{origin}: holds {len(names)} datasets; choose one with --dataset: "
                    + one_line(", ".join(names))
                )
            dataset = names[0]
        if dataset not in data["datasets"]:
            raise DatasetError(
                f"{origin}: no dataset {short_repr(dataset)}; available: " + one_line(", ".join(names))
            )
        records = data["datasets"][dataset]
        if not isinstance(records, list):
            raise DatasetError(f"{origin}: dataset {short_repr(dataset)} must be a list of file records")
        return records, dataset
    raise DatasetError(f"{origin}: expected a list of file records or {{'datasets': {{name: [records]}}}}")


def _field(
    record: dict[str, Any], name: str, kind: type, where: str, default: Any = ..., top: int = 0
) -> Any:
    """``record[name]`` checked to be a ``kind`` (an ``int`` in 0..``top``); ``default`` when absent."""
    if name not in record:
        if default is ...:
            raise DatasetError(f"{where}: missing field {name!r}")
        return default
    value = record[name]
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise DatasetError(
                f"{where}: field {name!r} must be a non-negative integer (at most {top}), "
                f"got {short_repr(value)}"
            )
    elif not isinstance(value, kind):
        raise DatasetError(
            f"{where}: field {name!r} must be a {_KIND_NAMES.get(kind, kind.__name__)}, "
            f"got {type(value).__name__} {short_repr(value)}"
        )
    return value


_KIND_NAMES = {str: "string", dict: "JSON object", list: "JSON list"}


def _locations(record: dict[str, Any], where: str) -> list[str]:
    """The file's sites: ``locations`` (or ``location``) as a list of names, one name, or null."""
    name = "locations" if "locations" in record else "location"
    value = record.get(name)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(site, str) for site in value):
        raise DatasetError(
            f"{where}: field {name!r} must be a list of site names (strings), got {short_repr(value)}"
        )
    return sorted(value)


def _lumis(lumis: dict[str, Any], where: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(runs, lumis) arrays per run of a file's ``lumis`` object, every number checked to be in range."""
    runs_here, lumis_here = [], []
    for run, run_lumis in lumis.items():
        if not (isinstance(run, str) and run.isascii() and run.isdigit()):
            raise DatasetError(f"{where}: run key {short_repr(run)} is not a non-negative integer")
        if len(run) > 10 or int(run) > MAX_RUN:
            raise DatasetError(f"{where}: run {short_repr(run)} is outside 0..{MAX_RUN}")
        if not isinstance(run_lumis, list) or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_LUMI for v in run_lumis
        ):
            raise DatasetError(
                f"{where}: run {run}: lumis must be a list of integers in 0..{MAX_LUMI}, "
                f"got {short_repr(run_lumis)}"
            )
        lumi_array = np.unique(np.asarray(run_lumis, dtype=np.int64))
        runs_here.append(np.full(lumi_array.size, int(run), dtype=np.int64))
        lumis_here.append(lumi_array)
    return runs_here, lumis_here


@register_loader("dbs_json")
def read_dbs_json(path: str | os.PathLike[str], dataset: str | None = None) -> Dataset:
    """Read a DBS-like listing into a :class:`Dataset` (per-lumi events estimated).

    Every field is type- and range-checked (events and sizes at most :data:`MAX_FILE_COUNT`, runs and lumis
    within the lumi-mask limits); a bad record raises :class:`DatasetError` naming the file, the record and
    the field.
    """
    origin = str(path)
    text = read_input_text(path, DatasetError, "DBS-like JSON listing")
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
        if not lfn.strip():
            raise DatasetError(f"{where}: field 'lfn' is empty")
        where = f"{origin}: file {one_line(lfn, 120)}"
        if lfn in seen:
            raise DatasetError(f"{where}: listed twice")
        seen.add(lfn)
        valid = record.get("valid", 1)
        if valid is not None and (not isinstance(valid, int) or valid not in (0, 1)):
            raise DatasetError(f"{where}: field 'valid' must be 1, 0, true or false, got {short_repr(valid)}")
        if valid in (0, False):
            n_invalid += 1
            continue
        events = _field(record, "events", int, where, top=MAX_FILE_COUNT)
        size = _field(record, "size", int, where, default=0, top=MAX_FILE_COUNT)
        lumis = _field(record, "lumis", dict, where, default={})
        block = record.get("block")
        if block is not None and not isinstance(block, str):
            raise DatasetError(f"{where}: field 'block' must be a string, got {short_repr(block)}")
        runs_here, lumis_here = _lumis(lumis, where)
        lfns.append(lfn)
        file_events.append(events)
        file_sizes.append(size)
        blocks.append(block or "")
        locations.append(_locations(record, where))
        run_chunks.append(np.concatenate(runs_here) if runs_here else np.empty(0, np.int64))
        lumi_chunks.append(np.concatenate(lumis_here) if lumis_here else np.empty(0, np.int64))
    for label, values in (("events", file_events), ("bytes", file_sizes)):
        if sum(values) > MAX_TOTAL_COUNT:
            raise DatasetError(
                f"{origin}: the files hold {sum(values)} {label} in total, more than {MAX_TOTAL_COUNT}; "
                "check the listing's numbers"
            )

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
