"""The Dataset: which (run, lumi) units exist, how many events each holds, and which files hold them.

A dataset is two polars tables:

``units`` — one row per (run, lumi) unit, the atomic piece of work:

==============  =============  ==========================================================================
column          dtype          meaning
==============  =============  ==========================================================================
run             Int64          run number
lumi            Int64          luminosity-section number
events          Int64          events in the unit (summed over all files that hold it)
bytes           Int64          input bytes attributed to the unit (apportioned from file sizes by events)
events_exact    Boolean        True when counted per lumi (ROOT), False when spread from a file total (DBS)
file_id         UInt32         the lowest ``file_id`` holding the unit
file_ids        List(UInt32)   every file holding the unit; more than one when a lumi spans files
(extra)         any            unit features passed through (e.g. ``pileup``) for cost models
==============  =============  ==========================================================================

``files`` — one row per input file: ``file_id`` (UInt32, stable across :meth:`Dataset.select`), ``lfn``,
``events``, ``size`` (bytes), ``block`` and ``locations`` (List(String), empty when unknown).

A lumi that appears in several files is one unit whose job needs all of those files (WMCore's LumiChecker
semantics): its ``file_ids`` lists them all, and splitting hands every one of them to the job.
Units are kept sorted by (file_id, run, lumi), the order that reads files sequentially.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from autosplit._arrays import first_duplicate, sorted_unique
from autosplit._io import one_line, require_regular_file
from autosplit.datasets.lumimask import MAX_LUMI, MAX_RUN, RUN_FACTOR, LumiMask
from autosplit.errors import DatasetError

UNIT_SCHEMA: dict[str, pl.DataType] = {
    "run": pl.Int64(),
    "lumi": pl.Int64(),
    "events": pl.Int64(),
    "bytes": pl.Int64(),
    "events_exact": pl.Boolean(),
    "file_id": pl.UInt32(),
    "file_ids": pl.List(pl.UInt32()),
}
FILE_SCHEMA: dict[str, pl.DataType] = {
    "file_id": pl.UInt32(),
    "lfn": pl.String(),
    "events": pl.Int64(),
    "size": pl.Int64(),
    "block": pl.String(),
    "locations": pl.List(pl.String()),
}
PARQUET_FORMAT = "autosplit-dataset/1"
#: Largest events or bytes count of one file (2**53 - 1): planning arithmetic on float64 stays exact.
MAX_FILE_COUNT = 2**53 - 1
#: Largest total of events or bytes over a dataset: sums stay far from int64 overflow.
MAX_TOTAL_COUNT = 2**62

#: readers of other sources (``"dbs_json"``, ``"root"``), registered by their modules
#: (:mod:`autosplit.datasets.dbs`, :mod:`autosplit.datasets.root`) when the package imports them, so the
#: Dataset does not import its loaders back.
LOADERS: dict[str, Callable[..., Dataset]] = {}


def register_loader(kind: str) -> Callable[[Callable[..., Dataset]], Callable[..., Dataset]]:
    """Decorator: make ``loader`` the reader behind ``Dataset.from_<kind>``."""

    def register(loader: Callable[..., Dataset]) -> Callable[..., Dataset]:
        LOADERS[kind] = loader
        return loader

    return register


def _loader(kind: str) -> Callable[..., Dataset]:
    try:
        return LOADERS[kind]
    except KeyError:  # only when autosplit.datasets.dataset is loaded without its package
        raise DatasetError(f"no {kind} reader is registered; import autosplit.datasets") from None


def unit_keys(runs: np.ndarray, lumis: np.ndarray) -> np.ndarray:
    """Pack (run, lumi) into one sortable int64 key, the same encoding :class:`LumiMask` uses."""
    return runs.astype(np.int64) * RUN_FACTOR + lumis.astype(np.int64)


def apportion(totals: np.ndarray, weights: np.ndarray, group_sizes: np.ndarray) -> np.ndarray:
    """Split integer ``totals`` (one per group) over the group's rows in proportion to ``weights``.

    Rows are laid out group after group (``group_sizes`` rows each). Rounding works on cumulative shares, so
    each group's parts sum exactly to its total. A group whose weights are all zero is split evenly.
    """
    totals = np.asarray(totals, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    group_sizes = np.asarray(group_sizes, dtype=np.int64)
    if weights.size == 0:
        return np.empty(0, np.int64)
    group = np.repeat(np.arange(group_sizes.size), group_sizes)
    weight_sum = np.bincount(group, weights=weights, minlength=group_sizes.size)
    even = weight_sum[group] == 0
    weights = np.where(even, 1.0, weights)
    weight_sum = np.bincount(group, weights=weights, minlength=group_sizes.size)
    starts = np.concatenate(([0], np.cumsum(group_sizes)[:-1]))
    cumulative = np.cumsum(weights)
    before_group = np.where(starts > 0, cumulative[np.maximum(starts - 1, 0)], 0.0)
    cum_in_group = cumulative - before_group[group]
    share = np.round(totals[group] * cum_in_group / weight_sum[group])
    previous = np.empty_like(share)
    previous[1:] = share[:-1]
    previous[starts[group_sizes > 0]] = 0.0
    return (share - previous).astype(np.int64)


class Dataset:
    """A set of (run, lumi) units and the files that hold them; see the module docstring for the tables.

    Build one with a constructor: :meth:`from_dbs_json`, :meth:`from_root`, :meth:`from_units`,
    :meth:`from_parquet` (or :func:`autosplit.datasets.load_dataset` which picks by file type).
    Datasets are immutable: :meth:`select` returns a new one.
    """

    def __init__(
        self,
        units: pl.DataFrame,
        files: pl.DataFrame,
        *,
        name: str = "",
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self._units = _conform(units, UNIT_SCHEMA, "units")
        self._files = _conform(files, FILE_SCHEMA, "files")
        self.name = name
        self.meta: dict[str, Any] = dict(meta or {})
        self._cache: dict[str, Any] = {}
        self._check()

    # ------------------------------------------------------------------ validation
    def _check(self) -> None:
        units = self._units
        if units.height == 0:
            return
        for column in ("run", "lumi", "events", "bytes", "file_id"):
            if units[column].null_count():
                raise DatasetError(f"units: column {column!r} has missing values")
        runs, lumis = units["run"].to_numpy(), units["lumi"].to_numpy()
        if runs.min() < 0 or runs.max() > MAX_RUN or lumis.min() < 0 or lumis.max() > MAX_LUMI:
            raise DatasetError(
                "units: run or lumi outside the valid range (non-negative, below 2**31 / 2**32)"
            )
        if units["events"].min() < 0 or units["bytes"].min() < 0:
            raise DatasetError("units: negative events or bytes")
        dup_row = first_duplicate(unit_keys(runs, lumis))
        if dup_row is not None:
            dup = units.row(dup_row, named=True)
            raise DatasetError(
                f"units: run {dup['run']} lumi {dup['lumi']} appears in more than one row; "
                "one unit per (run, lumi), list every file that holds it in file_ids"
            )
        known = self._files["file_id"].to_numpy()
        referenced = sorted_unique(units["file_ids"].explode().to_numpy())
        missing = np.setdiff1d(referenced, known).tolist()
        if missing:
            raise DatasetError(
                f"units refer to file_id(s) {sorted(missing)[:5]} that are not in the files table"
            )

    # ------------------------------------------------------------------ tables
    @property
    def units(self) -> pl.DataFrame:
        """The units table (one row per (run, lumi)), sorted by (file_id, run, lumi)."""
        return self._units

    @property
    def files(self) -> pl.DataFrame:
        """The files table: file_id, lfn, events, size (bytes), block, locations."""
        return self._files

    @property
    def n_units(self) -> int:
        return self._units.height

    @property
    def n_events(self) -> int:
        return int(self._units["events"].sum()) if self._units.height else 0

    @property
    def n_files(self) -> int:
        return self._files.height

    @property
    def runs(self) -> list[int]:
        return sorted_unique(self._units["run"].to_numpy()).tolist()

    @property
    def has_multifile_units(self) -> bool:
        """True when some lumi spans several files."""
        return bool(self._units.height) and int(self.unit_file_counts().max()) > 1

    def unit_file_counts(self) -> np.ndarray:
        """Number of files holding each unit (int64 array aligned with :attr:`units`; cached)."""
        if "file_counts" not in self._cache:
            self._cache["file_counts"] = self._units["file_ids"].list.len().to_numpy().astype(np.int64)
        return self._cache["file_counts"]

    def is_file_sorted(self) -> bool:
        """True when units are ordered by file_id (the canonical order loaders produce; cached)."""
        if "file_sorted" not in self._cache:
            ids = self._units["file_id"].to_numpy()
            self._cache["file_sorted"] = bool(ids.size < 2 or (ids[1:] >= ids[:-1]).all())
        return self._cache["file_sorted"]

    def file_location_groups(self) -> np.ndarray:
        """Array indexed by file_id: an id per distinct location set (0 when all files share one; cached)."""
        if "location_groups" not in self._cache:
            files = self._files
            size = int(files["file_id"].max()) + 1 if files.height else 1
            groups = np.zeros(size, dtype=np.int64)
            if files.height and files["locations"].n_unique() > 1:
                keys = files.select(
                    "file_id", pl.col("locations").list.sort().list.join(",").rank("dense").alias("group")
                )
                groups[keys["file_id"].to_numpy()] = keys["group"].to_numpy().astype(np.int64) - 1
            self._cache["location_groups"] = groups
        return self._cache["location_groups"]

    def lumi_mask(self) -> LumiMask:
        """The mask of every unit in the dataset."""
        return LumiMask.from_pairs(self._units["run"].to_numpy(), self._units["lumi"].to_numpy())

    def units_with_lfn(self) -> pl.DataFrame:
        """The units table with the ``lfn`` of each unit's first file (for display and export)."""
        return self._units.join(self._files.select("file_id", "lfn"), on="file_id", how="left")

    # ------------------------------------------------------------------ selection
    def select(self, mask: LumiMask | Mapping[Any, Any]) -> Dataset:
        """The units inside ``mask`` and the files holding them (file-level totals unchanged)."""
        if not isinstance(mask, LumiMask):
            mask = LumiMask(mask)
        keep = mask.contains(self._units["run"].to_numpy(), self._units["lumi"].to_numpy())
        units = self._units.filter(pl.Series(keep))
        return self._with_units(units, meta={**self.meta, "mask_lumis": mask.n_lumis})

    def with_features(self, table: pl.DataFrame) -> Dataset:
        """Join per-lumi features (a table with run, lumi and feature columns) onto the units.

        Units without a row in ``table`` get nulls; cost models fill them (e.g. with the mean).
        """
        if not {"run", "lumi"} <= set(table.columns):
            raise DatasetError("a feature table needs run and lumi columns")
        reserved = [c for c in table.columns if c in UNIT_SCHEMA and c not in ("run", "lumi")]
        if reserved:
            raise DatasetError(f"feature columns {reserved} clash with the units table's own columns")
        table = table.with_columns(pl.col("run").cast(pl.Int64), pl.col("lumi").cast(pl.Int64))
        table = table.unique(subset=["run", "lumi"], keep="first")
        keep = [c for c in self._units.columns if c not in table.columns or c in ("run", "lumi")]
        units = self._units.select(keep).join(table, on=["run", "lumi"], how="left", maintain_order="left")
        out = Dataset.__new__(Dataset)
        out._units, out._files, out.name, out.meta = units, self._files, self.name, dict(self.meta)
        out._cache = dict(self._cache)
        return out

    def take(self, rows: np.ndarray) -> Dataset:
        """A dataset of the units at the given row positions (or boolean mask) of :attr:`units`."""
        rows = np.asarray(rows)
        units = self._units.filter(pl.Series(rows)) if rows.dtype == bool else self._units[rows]
        return self._with_units(units, meta=self.meta)

    def _with_units(self, units: pl.DataFrame, meta: Mapping[str, Any]) -> Dataset:
        used = self._used_file_ids(units)
        files = self._files.filter(pl.Series(used[self._files["file_id"].to_numpy()]))
        out = Dataset.__new__(Dataset)
        out._units, out._files, out.name, out.meta = units, files, self.name, dict(meta)
        out._cache = {}
        return out

    def _used_file_ids(self, units: pl.DataFrame) -> np.ndarray:
        size = int(self._files["file_id"].max() or 0) + 1 if self._files.height else 1
        used = np.zeros(size, dtype=bool)
        if units.height:
            if self.has_multifile_units:
                used[units["file_ids"].explode().to_numpy()] = True
            else:
                used[units["file_id"].to_numpy()] = True
        return used

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_units(
        cls,
        df: pl.DataFrame,
        *,
        name: str = "",
        files: pl.DataFrame | None = None,
        events_exact: bool = True,
        meta: Mapping[str, Any] | None = None,
    ) -> Dataset:
        """Build a dataset from a long table: one row per (run, lumi, file).

        Required columns: ``run``, ``lumi``, ``events``, ``file`` (the LFN). Optional: ``bytes`` (else 0),
        ``events_exact`` (else the ``events_exact`` argument), and any extra feature column (kept, first
        value per unit). A lumi listed in several files becomes one unit holding all of them, with events
        and bytes summed. ``files`` may add file-level facts (lfn, size, block, locations, events).
        """
        return _build_dataset(df, name=name, files=files, events_exact=events_exact, meta=meta)

    @classmethod
    def from_dbs_json(cls, path: str | os.PathLike[str], dataset: str | None = None) -> Dataset:
        """Read a DBS-like listing (see :mod:`autosplit.datasets.dbs`); per-lumi events are estimated."""
        return _loader("dbs_json")(path, dataset=dataset)

    @classmethod
    def from_root(cls, paths: Any, tree: str = "Events") -> Dataset:
        """Read exact per-lumi event counts from ROOT files (``run``/``luminosityBlock`` branches)."""
        return _loader("root")(paths, tree=tree)

    @classmethod
    def from_parquet(cls, path: str | os.PathLike[str]) -> Dataset:
        """Read a dataset written by :meth:`to_parquet`, or a plain long units table (see :meth:`from_units`)."""
        path = Path(path)
        require_regular_file(path, DatasetError, "parquet", missing=f"{path}: no such file")
        try:
            metadata = pl.read_parquet_metadata(path)
            table = pl.read_parquet(path)
        except FileNotFoundError:
            raise DatasetError(f"{path}: no such file") from None
        except Exception as exc:  # polars raises several error types for non-parquet input
            raise DatasetError(
                f"{path}: not a readable parquet file ({type(exc).__name__}: {one_line(str(exc))})"
            ) from None
        if metadata.get("autosplit.format") != PARQUET_FORMAT:
            return cls.from_units(table, name=path.stem, meta={"source": str(path)})
        try:
            files = pl.DataFrame(json.loads(metadata["autosplit.files"]), schema=FILE_SCHEMA)
            extra = json.loads(metadata.get("autosplit.meta", "{}"))
        except Exception as exc:  # a damaged or hand-edited metadata block
            raise DatasetError(
                f"{path}: the autosplit metadata of this parquet file is damaged ({one_line(str(exc), 160)})"
            ) from None
        if not isinstance(extra, dict):
            raise DatasetError(f"{path}: the autosplit metadata of this parquet file is damaged (meta)")
        return cls(table, files, name=metadata.get("autosplit.name", ""), meta=extra)

    def to_parquet(self, path: str | os.PathLike[str]) -> Path:
        """Write the dataset to one parquet file (units as rows, files table in the file's metadata)."""
        path = Path(path)
        metadata = {
            "autosplit.format": PARQUET_FORMAT,
            "autosplit.name": self.name,
            "autosplit.files": json.dumps(self._files.to_dict(as_series=False)),
            "autosplit.meta": json.dumps(self.meta, default=str),
        }
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            self._units.write_parquet(tmp, metadata=metadata)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    # ------------------------------------------------------------------ summaries
    def summary(self) -> dict[str, Any]:
        """Counts and the events-per-lumi distribution, as plain JSON-ready values."""
        events = self._units["events"].to_numpy()
        quantiles = (
            dict(zip(("p10", "p50", "p90"), np.percentile(events, [10, 50, 90]).tolist(), strict=True))
            if events.size
            else {"p10": 0, "p50": 0, "p90": 0}
        )
        return {
            "name": self.name,
            "files": self.n_files,
            "files_with_units": int(self._used_file_ids(self._units).sum()) if self.n_units else 0,
            "units": self.n_units,
            "events": self.n_events,
            "bytes": int(self._units["bytes"].sum()) if self.n_units else 0,
            "runs": len(self.runs),
            "units_estimated": int((~self._units["events_exact"]).sum()) if self.n_units else 0,
            "units_multifile": int((self._units["file_ids"].list.len() > 1).sum()) if self.n_units else 0,
            "zero_event_units": int((events == 0).sum()),
            "events_per_lumi": {
                "min": int(events.min()) if events.size else 0,
                "mean": float(events.mean()) if events.size else 0.0,
                **quantiles,
                "max": int(events.max()) if events.size else 0,
            },
            **{k: v for k, v in self.meta.items() if k.startswith("n_")},
        }

    def __repr__(self) -> str:
        label = f"{self.name!r}, " if self.name else ""
        return f"Dataset({label}files={self.n_files}, units={self.n_units}, events={self.n_events})"


# ---------------------------------------------------------------------- helpers
def _conform(df: pl.DataFrame, schema: Mapping[str, pl.DataType], label: str) -> pl.DataFrame:
    if not isinstance(df, pl.DataFrame):
        raise DatasetError(f"{label}: expected a polars DataFrame, got {type(df).__name__}")
    missing = [c for c in schema if c not in df.columns]
    if missing:
        raise DatasetError(f"{label}: missing column(s) {missing}")
    try:
        return df.with_columns([pl.col(c).cast(t, strict=True) for c, t in schema.items()])
    except Exception as exc:
        raise DatasetError(f"{label}: a column has the wrong type ({one_line(str(exc), 200)})") from None


def _build_dataset(
    df: pl.DataFrame,
    *,
    name: str,
    files: pl.DataFrame | None,
    events_exact: bool,
    meta: Mapping[str, Any] | None,
) -> Dataset:
    """Shared by every loader: long (run, lumi, file) rows -> canonical units and files tables."""
    if not isinstance(df, pl.DataFrame):
        raise DatasetError(f"from_units expects a polars DataFrame, got {type(df).__name__}")
    missing = [c for c in ("run", "lumi", "events", "file") if c not in df.columns]
    if missing:
        raise DatasetError(f"units table: missing column(s) {missing}; need run, lumi, events, file")
    extras = [c for c in df.columns if c not in ("run", "lumi", "events", "file", "bytes", "events_exact")]
    try:
        long = df.select(
            pl.col("run").cast(pl.Int64, strict=True),
            pl.col("lumi").cast(pl.Int64, strict=True),
            pl.col("events").cast(pl.Int64, strict=True),
            pl.col("file").cast(pl.String, strict=True),
            (pl.col("bytes") if "bytes" in df.columns else pl.lit(0))
            .cast(pl.Int64, strict=True)
            .alias("bytes"),
            (pl.col("events_exact") if "events_exact" in df.columns else pl.lit(events_exact))
            .cast(pl.Boolean, strict=True)
            .alias("events_exact"),
            *extras,
        )
    except Exception as exc:
        raise DatasetError(
            f"units table: run, lumi, events and bytes must be integers ({one_line(str(exc), 200)})"
        ) from None
    for column in ("run", "lumi", "events", "file", "bytes"):
        nulls = long[column].null_count()
        if nulls:
            raise DatasetError(f"units table: column {column!r} has {nulls} missing value(s)")
    if long.height:
        bad = long.filter(
            (pl.col("run") < 0)
            | (pl.col("run") > MAX_RUN)
            | (pl.col("lumi") < 0)
            | (pl.col("lumi") > MAX_LUMI)
            | (pl.col("events") < 0)
            | (pl.col("bytes") < 0)
            | (pl.col("events") > MAX_FILE_COUNT)
            | (pl.col("bytes") > MAX_FILE_COUNT)
        )
        if bad.height:
            row = bad.row(0, named=True)
            raise DatasetError(
                f"units table: row run={row['run']} lumi={row['lumi']} events={row['events']} "
                f"bytes={row['bytes']} (file {row['file']}) has a negative or out-of-range value "
                f"(runs 0..{MAX_RUN}, lumis 0..{MAX_LUMI}, events and bytes 0..{MAX_FILE_COUNT})"
            )
        for column in ("events", "bytes"):
            if long[column].cast(pl.Float64).sum() > MAX_TOTAL_COUNT:
                raise DatasetError(f"units table: the {column} add up to more than {MAX_TOTAL_COUNT}")

    files_table = _files_table(long, files)
    long = long.join(files_table.select(pl.col("lfn").alias("file"), "file_id"), on="file", how="left")
    keys = unit_keys(long["run"].to_numpy(), long["lumi"].to_numpy())
    # (run, lumi, file) must be unique; (run, lumi) may repeat across files (a lumi spanning files).
    file_ids = long["file_id"].to_numpy().astype(np.int64)
    order = np.lexsort((file_ids, keys))
    same_unit = keys[order][1:] == keys[order][:-1]
    same_pair = same_unit & (file_ids[order][1:] == file_ids[order][:-1])
    if same_pair.any():
        row = long.row(int(order[np.flatnonzero(same_pair)[0] + 1]), named=True)
        raise DatasetError(
            f"units table: run {row['run']} lumi {row['lumi']} is listed twice for file {row['file']}"
        )
    if not same_unit.any():
        units = long.with_columns(pl.concat_list([pl.col("file_id")]).alias("file_ids"))
    else:
        units = (
            long.sort("file_id")
            .group_by("run", "lumi", maintain_order=True)
            .agg(
                pl.col("events").sum(),
                pl.col("bytes").sum(),
                pl.col("events_exact").all(),
                pl.col("file_id").min(),
                pl.col("file_id").alias("file_ids"),
                *[pl.col(c).first() for c in extras],
            )
        )
    units = units.select(*UNIT_SCHEMA, *extras).sort("file_id", "run", "lumi")
    return Dataset(units, files_table, name=name, meta=meta)


def _files_table(long: pl.DataFrame, files: pl.DataFrame | None) -> pl.DataFrame:
    """One row per LFN in ``long`` or ``files``, sorted by LFN, with ids 0..n-1.

    File-level facts given in ``files`` win; otherwise events and size are the sums over the file's rows.
    """
    seen = (
        long.group_by("file")
        .agg(pl.col("events").sum().alias("_events"), pl.col("bytes").sum().alias("_size"))
        .rename({"file": "lfn"})
    )
    if files is None:
        given = pl.DataFrame(schema={"lfn": pl.String})
    else:
        if "lfn" not in files.columns:
            raise DatasetError("files table: missing column 'lfn'")
        given = files.with_columns(pl.col("lfn").cast(pl.String))
        duplicated = given.filter(pl.col("lfn").is_duplicated())
        if duplicated.height:
            raise DatasetError(f"files table: LFN {duplicated['lfn'][0]} is listed twice")
    table = seen.join(given, on="lfn", how="full", coalesce=True)

    def given_or_null(column: str) -> pl.Expr:
        return pl.col(column) if column in table.columns else pl.lit(None, dtype=FILE_SCHEMA[column])

    table = table.select(
        "lfn",
        pl.coalesce(given_or_null("events"), pl.col("_events"), pl.lit(0)).alias("events"),
        pl.coalesce(given_or_null("size"), pl.col("_size"), pl.lit(0)).alias("size"),
        pl.coalesce(given_or_null("block"), pl.lit("")).alias("block"),
        given_or_null("locations").fill_null(pl.lit([], dtype=FILE_SCHEMA["locations"])).alias("locations"),
    )
    table = table.sort("lfn").with_row_index("file_id")
    return table.select(list(FILE_SCHEMA)).cast(FILE_SCHEMA)
