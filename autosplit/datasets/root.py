"""Loader for ROOT files (NanoAOD and similar) through uproot.

Exact events per (run, lumi) come from the ``run`` and ``luminosityBlock`` branches of the event tree
(TTree or RNTuple). A file's bytes are apportioned to its units by events. Needs the ``root`` extra
(``pip install 'autosplit[root]'``).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from autosplit.datasets.dataset import Dataset, _build_dataset, apportion, register_loader, unit_keys
from autosplit.errors import DatasetError

RUN_BRANCH = "run"
LUMI_BRANCH = "luminosityBlock"


def expand_paths(paths: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Turn a path, a glob pattern or a list of them into a sorted list of existing file paths."""
    items = [paths] if isinstance(paths, str | os.PathLike) else list(paths)
    out: list[Path] = []
    for item in items:
        text = os.fspath(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise DatasetError(f"{text}: the pattern matches no file")
            out.extend(Path(m) for m in matches)
        else:
            out.append(Path(text))
    if not out:
        raise DatasetError("no ROOT file given")
    return out


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _read_lumis(path: Path, tree: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(runs, lumis) arrays of every event in ``path``'s ``tree``, and the entry count."""
    try:
        import uproot
    except ImportError:
        raise DatasetError("reading ROOT files needs uproot: pip install 'autosplit[root]'") from None
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    try:
        handle = uproot.open(path)
    except Exception as exc:
        raise DatasetError(
            f"{path}: not a readable ROOT file ({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    with handle:
        if tree not in handle:
            raise DatasetError(
                f"{path}: no tree {tree!r} (found: {', '.join(handle.keys(cycle=False)) or 'none'})"
            )
        events = handle[tree]
        names = set(events.keys())
        for branch in (RUN_BRANCH, LUMI_BRANCH):
            if branch not in names:
                raise DatasetError(
                    f"{path}: tree {tree!r} has no {branch!r} branch, so its lumis cannot be known; "
                    "add the branch or list the file's lumis in a DBS-like JSON instead"
                )
        try:
            arrays = events.arrays([RUN_BRANCH, LUMI_BRANCH], library="np")
        except Exception as exc:
            raise DatasetError(f"{path}: cannot read {RUN_BRANCH}/{LUMI_BRANCH} ({_one_line(exc)})") from None
        return np.asarray(arrays[RUN_BRANCH]), np.asarray(arrays[LUMI_BRANCH]), int(events.num_entries)


@register_loader("root")
def read_root(paths: Any, tree: str = "Events") -> Dataset:
    """Read one or more ROOT files into a :class:`Dataset` with exact per-lumi event counts."""
    files = expand_paths(paths)
    frames = []
    file_rows = []
    for path in files:
        runs, lumis, n_entries = _read_lumis(path, tree)
        keys, counts = np.unique(unit_keys(runs, lumis), return_counts=True)
        size = path.stat().st_size
        lfn = str(path.resolve())
        frames.append(
            pl.DataFrame(
                {
                    "run": keys >> 32,
                    "lumi": keys & 0xFFFFFFFF,
                    "events": counts.astype(np.int64),
                    "bytes": apportion(np.array([size]), counts, np.array([counts.size])),
                    "file": [lfn] * counts.size,
                },
                schema={
                    "run": pl.Int64,
                    "lumi": pl.Int64,
                    "events": pl.Int64,
                    "bytes": pl.Int64,
                    "file": pl.String,
                },
            )
        )
        file_rows.append({"lfn": lfn, "events": n_entries, "size": size})
    lfns = [row["lfn"] for row in file_rows]
    if len(set(lfns)) != len(lfns):
        raise DatasetError("the same ROOT file is given twice")
    long = pl.concat(frames)
    name = files[0].parent.name if len(files) > 1 else files[0].stem
    meta = {"source": [str(p) for p in files], "format": "root", "tree": tree}
    return _build_dataset(long, name=name, files=pl.DataFrame(file_rows), events_exact=True, meta=meta)
