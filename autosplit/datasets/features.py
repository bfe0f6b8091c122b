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

from autosplit.errors import DatasetError


def read_brilcalc(path: str | os.PathLike[str]) -> pl.DataFrame:
    """brilcalc ``lumi --byls`` CSV -> run, lumi, pileup, recorded, delivered (one row per lumisection)."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    header = next((ln for ln in lines if ln.startswith("#run")), None)
    if header is None:
        raise DatasetError(f"{path}: not a brilcalc --byls CSV (no '#run:fill,ls,...' header line)")
    body = [header.lstrip("#")] + [ln for ln in lines if ln and not ln.startswith("#")]
    raw = pl.read_csv(io.StringIO("\n".join(body)), infer_schema_length=0)
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
    return raw.select(columns).unique(subset=["run", "lumi"], keep="first").sort("run", "lumi")


def read_features(path: str | os.PathLike[str]) -> pl.DataFrame:
    """A (run, lumi)-keyed feature table from parquet, CSV, or brilcalc CSV."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such feature file")
    if path.suffix.lower() in (".parquet", ".pq"):
        table = pl.read_parquet(path)
    else:
        first = path.read_text()[:2000].lstrip()
        if first.startswith("#") and "run:fill" in first:
            # Only pile-up drives per-event cost; luminosity columns would just add noise terms to a model.
            return read_brilcalc(path).select("run", "lumi", "pileup")
        table = pl.read_csv(path)
    missing = {"run", "lumi"} - set(table.columns)
    if missing:
        raise DatasetError(f"{path}: a feature table needs columns run and lumi (missing {sorted(missing)})")
    return table.with_columns(pl.col("run").cast(pl.Int64), pl.col("lumi").cast(pl.Int64))
