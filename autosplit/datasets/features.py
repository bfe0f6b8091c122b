"""Per-lumi features (pile-up, luminosity, ...) that cost models can use.

:func:`read_features` reads a table keyed by (run, lumi): a parquet or CSV file with ``run`` and ``lumi``
columns, or brilcalc's per-lumisection CSV output (``#run:fill,ls,...,avgpu,...``), which becomes
``pileup`` (average pile-up; :func:`read_brilcalc` also gives ``recorded`` and ``delivered`` in /pb).
:meth:`Dataset.with_features` joins such a table onto the units.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import polars as pl

from autosplit._io import decode_text, one_line, read_input_bytes, read_input_text
from autosplit.errors import DatasetError


def read_brilcalc(path: str | os.PathLike[str]) -> pl.DataFrame:
    """brilcalc ``lumi --byls`` CSV -> run, lumi, pileup, recorded, delivered (one row per lumisection)."""
    path = Path(path)
    lines = read_input_text(path, DatasetError, "brilcalc CSV").splitlines()
    header = next((ln for ln in lines if ln.startswith("#run")), None)
    if header is None:
        raise DatasetError(f"{path}: not a brilcalc --byls CSV (no '#run:fill,ls,...' header line)")
    body = [header.lstrip("#")] + [ln for ln in lines if ln and not ln.startswith("#")]
    try:
        raw = pl.read_csv(io.StringIO("\n".join(body)), infer_schema_length=0)
    except Exception as exc:  # polars raises several error types for malformed CSV
        raise DatasetError(f"{path}: not a readable brilcalc CSV ({one_line(str(exc))})") from None
    needed = {"run:fill", "ls", "avgpu"}
    if not needed <= set(raw.columns):
        raise DatasetError(f"{path}: brilcalc CSV lacks column(s) {sorted(needed - set(raw.columns))}")
    columns = [
        pl.col("run:fill").str.split(":").list.get(0).cast(pl.Int64).alias("run"),
        pl.col("ls").str.split(":").list.get(0).cast(pl.Int64).alias("lumi"),
        pl.col("avgpu").cast(pl.Float64).alias("pileup"),
    ]
    for name in ("recorded(/pb)", "delivered(/pb)"):
        if name in raw.columns:
            columns.append(pl.col(name).cast(pl.Float64).alias(name.split("(")[0]))
    try:
        table = raw.select(columns)
    except Exception as exc:
        raise DatasetError(
            f"{path}: a run, ls or avgpu value is not a number ({one_line(str(exc), 160)})"
        ) from None
    return table.unique(subset=["run", "lumi"], keep="first").sort("run", "lumi")


def read_features(path: str | os.PathLike[str]) -> pl.DataFrame:
    """A (run, lumi)-keyed feature table from parquet, CSV, or brilcalc CSV."""
    path = Path(path)
    data = read_input_bytes(path, DatasetError, "feature table", missing=f"{path}: no such feature file")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            table = pl.read_parquet(io.BytesIO(data))
        else:
            first = decode_text(data, str(path), DatasetError, "feature CSV")[:2000].lstrip()
            if first.startswith("#") and "run:fill" in first:
                # Only pile-up drives per-event cost; luminosity columns would just add noise terms to a model.
                return read_brilcalc(path).select("run", "lumi", "pileup")
            table = pl.read_csv(io.BytesIO(data))
    except DatasetError:
        raise
    except Exception as exc:  # polars raises several error types for malformed files
        raise DatasetError(f"{path}: not a readable feature table ({one_line(str(exc), 160)})") from None
    missing = {"run", "lumi"} - set(table.columns)
    if missing:
        raise DatasetError(f"{path}: a feature table needs columns run and lumi (missing {sorted(missing)})")
    try:
        return table.with_columns(pl.col("run").cast(pl.Int64), pl.col("lumi").cast(pl.Int64))
    except Exception as exc:
        raise DatasetError(f"{path}: run and lumi must be integers ({one_line(str(exc), 160)})") from None
