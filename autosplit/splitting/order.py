"""Planning order: which units may share a job, and in what order they are packed.

Units are packed in (location set, file, run, lumi) order so consecutive units read the same file and a job
never mixes files stored at different location sets (WMCore makes one job group per location set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from autosplit.datasets import Dataset


@dataclass(frozen=True)
class PlanningOrder:
    """Units of a dataset laid out for packing.

    ``rows`` are positions in ``dataset.units`` in packing order; every other array is aligned with
    ``rows``. ``segment_start[k]`` is True where unit k may not share a job with unit k-1 (a new location
    set, and optionally a new run or a new file).
    """

    rows: np.ndarray
    file_id: np.ndarray
    run: np.ndarray
    file_start: np.ndarray
    extra_files: np.ndarray
    segment_start: np.ndarray
    identity: bool = False

    @property
    def n(self) -> int:
        return int(self.rows.size)

    def take(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one per dataset unit) in packing order; no copy when the order is the dataset's."""
        return values if self.identity else values[self.rows]

    def scatter(self, values: np.ndarray, n_units: int, fill: int = -1) -> np.ndarray:
        """Inverse of :meth:`take`: a per-dataset-unit array, ``fill`` for units not in the order."""
        if self.identity:
            return values
        out = np.full(n_units, fill, dtype=values.dtype)
        out[self.rows] = values
        return out


def planning_order(
    dataset: Dataset,
    *,
    split_on_run: bool = False,
    halt_on_file_boundaries: bool = False,
    respect_locations: bool = True,
) -> PlanningOrder:
    """Lay the dataset's units out for packing; see :class:`PlanningOrder`."""
    units = dataset.units
    file_id = units["file_id"].to_numpy()
    run = units["run"].to_numpy()
    extra_files = dataset.unit_file_counts() - 1
    n = file_id.size
    groups = dataset.file_location_groups()
    several_sites = respect_locations and n and groups.max() > 0
    group = groups[file_id] if several_sites else np.zeros(1, np.int64)
    rows = np.arange(n)
    if several_sites:
        rows = np.argsort(group, kind="stable")  # units are already in (file_id, run, lumi) order
        file_id, group, run, extra_files = file_id[rows], group[rows], run[rows], extra_files[rows]

    def changes(values: np.ndarray) -> np.ndarray:
        flags = np.ones(n, dtype=bool)
        if n > 1:
            flags[1:] = values[1:] != values[:-1]
        return flags

    file_start = changes(file_id)
    segment_start = changes(group) if several_sites else np.zeros(n, dtype=bool)
    if n:
        segment_start[0] = True
    if split_on_run:
        segment_start |= changes(run)
    if halt_on_file_boundaries:
        segment_start |= file_start
    return PlanningOrder(
        rows, file_id, run, file_start, extra_files, segment_start, identity=not several_sites
    )
