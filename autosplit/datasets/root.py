"""Loader for ROOT files (NanoAOD and similar) through uproot.

Exact events per (run, lumi) come from the ``run`` and ``luminosityBlock`` branches of the event tree
(TTree or RNTuple). A file's bytes are apportioned to its units by events. Needs the ``root`` extra
(``pip install 'autosplit[root]'``).
"""

from __future__ import annotations

import glob
import os
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from autosplit._io import require_regular_file
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
    require_regular_file(path, DatasetError, "ROOT", missing=f"{path}: no such file")
    try:
        _check_complete(path, _header_end(path))
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        handle = uproot.open(path)
    except Exception as exc:
        raise DatasetError(
            f"{path}: not a readable ROOT file ({type(exc).__name__}: {_one_line(exc)})"
        ) from None
    with handle:
        _check_complete(path, getattr(handle.file, "fEND", None))
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
        _check_baskets(path, events)
        try:
            arrays = events.arrays([RUN_BRANCH, LUMI_BRANCH], library="np")
        except Exception as exc:
            raise DatasetError(f"{path}: cannot read {RUN_BRANCH}/{LUMI_BRANCH} ({_one_line(exc)})") from None
        runs, lumis = np.asarray(arrays[RUN_BRANCH]), np.asarray(arrays[LUMI_BRANCH])
        n_entries = int(events.num_entries)
        if runs.size != n_entries or lumis.size != n_entries:
            raise DatasetError(
                f"{path}: tree {tree!r} says {n_entries} entries but {RUN_BRANCH}/{LUMI_BRANCH} hold "
                f"{runs.size}/{lumis.size}; the file is damaged"
            )
        return runs, lumis, n_entries


def _truncated(path: Path, size: int, needed: int, what: str) -> DatasetError:
    return DatasetError(
        f"{path}: truncated ROOT file ({size} bytes, but {what} reaches byte {needed}); a job reading it "
        "would fail: copy the file again"
    )


def _header_end(path: Path) -> int | None:
    """``fEND`` from the ROOT file header (``"root"``, version, fBEGIN, fEND: 4 or 8 bytes), read directly,
    so a truncated file is named as such before uproot trips over it; None if the header is not ROOT's."""
    with open(path, "rb") as handle:
        head = handle.read(20)
    if len(head) < 16 or head[:4] != b"root":
        return None
    version = struct.unpack(">i", head[4:8])[0]
    if version > 1_000_000:
        return struct.unpack(">q", head[12:20])[0] if len(head) >= 20 else None
    return struct.unpack(">i", head[12:16])[0]


def _check_complete(path: Path, end: int | None) -> None:
    """Refuse a file shorter than its header says (``fEND``), as ROOT itself notices: a truncated copy."""
    size = path.stat().st_size
    if isinstance(end, int) and size < end:
        raise _truncated(path, size, end, "its header says it")


def _check_baskets(path: Path, events: Any) -> None:
    """Refuse a TTree whose baskets (of any branch, not only run/lumi: the job reads the others) lie beyond
    the end of the file. RNTuples have no baskets; the header check covers them."""
    import uproot

    if not isinstance(events, uproot.behaviors.TTree.TTree):
        return
    size = path.stat().st_size
    for branch in events.itervalues(recursive=True):
        n = int(branch.num_baskets)
        if n == 0:
            continue
        seeks = np.asarray(branch.member("fBasketSeek")[:n], dtype=np.int64)
        lengths = np.asarray(branch.member("fBasketBytes")[:n], dtype=np.int64)
        ends = seeks + lengths
        if ends.size and int(ends.max()) > size:
            raise _truncated(path, size, int(ends.max()), f"a basket of branch {branch.name!r}")


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
