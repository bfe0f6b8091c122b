"""Datasets: lumi masks, the units/files tables, and the loaders that fill them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from autosplit.datasets import dbs, root  # noqa: F401  (their readers register behind Dataset.from_*)
from autosplit.datasets.dataset import Dataset
from autosplit.datasets.lumimask import LumiMask
from autosplit.errors import DatasetError

__all__ = ["Dataset", "LumiMask", "load_dataset", "load_mask"]


def load_dataset(source: Any, *, dataset: str | None = None, tree: str = "Events") -> Dataset:
    """Open a dataset by file type: ``.json`` (DBS-like listing), ``.parquet``, or ROOT files/globs.

    ``source`` may be one path, a glob pattern, or a list of ROOT paths.
    """
    if isinstance(source, Dataset):
        return source
    if isinstance(source, list | tuple):
        return Dataset.from_root(source, tree=tree)
    text = os.fspath(source)
    suffix = Path(text).suffix.lower()
    if suffix == ".json":
        return Dataset.from_dbs_json(text, dataset=dataset)
    if suffix in (".parquet", ".pq"):
        return Dataset.from_parquet(text)
    if suffix == ".root" or any(ch in text for ch in "*?["):
        return Dataset.from_root(text, tree=tree)
    raise DatasetError(f"{text}: unknown dataset type; use a .json DBS listing, .parquet, or .root files")


def load_mask(source: Any) -> LumiMask:
    """A lumi mask from a LumiMask, a dict, a golden-JSON path or text, or a CMSSW range string."""
    if source is None or isinstance(source, LumiMask):
        return source
    if isinstance(source, dict):
        return LumiMask(source)
    text = os.fspath(source)
    stripped = text.strip()
    if (
        stripped.startswith("{")
        or os.path.exists(text)  # False (no OSError) for a long CMSSW range string: "File name too long"
        or stripped.endswith(".json")
        or stripped.endswith(".txt")
    ):
        return LumiMask.from_json(text)
    return LumiMask.from_cmssw(text)
