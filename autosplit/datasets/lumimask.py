"""Lumi masks: sets of (run, lumi) pairs in CMS golden-JSON form.

A mask is stored as sorted, disjoint half-open intervals of the key ``run * 2**32 + lumi``. Runs cannot
bleed into each other because a lumi is at most ``MAX_LUMI`` (``2**32 - 2``), so ``last + 1`` never reaches
the next run's first key. Every operation (membership, ``&``, ``|``, ``-``) is a few numpy calls on those
interval arrays; nothing loops over lumis in Python.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from autosplit._arrays import sorted_unique
from autosplit._io import atomic_write_text, load_json_source, short_repr
from autosplit.errors import LumiMaskError

RUN_FACTOR = 2**32
MAX_RUN = 2**31 - 1
MAX_LUMI = 2**32 - 2

# ASCII digits only: \d would also take other scripts' digits, which int() accepts.
_CMSSW_ITEM = re.compile(r"^\s*([0-9]+):([0-9]+)(?:\s*-\s*([0-9]+):([0-9]+))?\s*$")
_MAX_DIGITS = 12  # longer numbers are out of range anyway (and int() refuses > 4300 digits)


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _canonical(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort half-open intervals and merge overlapping or touching ones."""
    if starts.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    order = np.argsort(starts, kind="stable")
    starts, ends = starts[order], ends[order]
    reach = np.maximum.accumulate(ends)
    # A new interval begins where its start lies beyond everything before it.
    new_group = np.empty(starts.size, dtype=bool)
    new_group[0] = True
    new_group[1:] = starts[1:] > reach[:-1]
    first = np.flatnonzero(new_group)
    last = np.append(first[1:] - 1, starts.size - 1)
    return starts[first].copy(), reach[last].copy()


def _member(starts: np.ndarray, ends: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Boolean array: which keys fall inside one of the (canonical) intervals."""
    if starts.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    idx = np.searchsorted(starts, keys, side="right") - 1
    safe = np.clip(idx, 0, None)
    return (idx >= 0) & (keys < ends[safe])


class LumiMask:
    """An immutable set of (run, lumi) pairs, read from and written as CMS golden JSON.

    ``LumiMask({"315267": [[1, 33], [35, 35]]})`` holds lumis 1-33 and 35 of run 315267 (ranges inclusive).
    Run keys may be strings or integers. The mask is normalised on construction: runs sorted, overlapping
    and adjacent ranges merged, so two masks holding the same lumis are equal and print the same.

    Supports ``&`` (intersection), ``|`` (union), ``-`` (difference), ``==``, ``(run, lumi) in mask`` and the
    vectorized :meth:`contains`.
    """

    __slots__ = ("_starts", "_ends")

    def __init__(self, data: Mapping[Any, Iterable[Iterable[int]]] | LumiMask | None = None) -> None:
        if isinstance(data, LumiMask):
            self._starts, self._ends = data._starts, data._ends
            return
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise LumiMaskError(
                f"a lumi mask must be a mapping of run -> [[first, last], ...], got {type(data).__name__}"
            )
        starts: list[int] = []
        ends: list[int] = []
        for key, ranges in data.items():
            run = self._parse_run(key)
            if isinstance(ranges, str | bytes) or not isinstance(ranges, Iterable):
                raise LumiMaskError(
                    f"run {short_repr(key)}: expected a list of [first, last] ranges, got {short_repr(ranges)}"
                )
            for rng in ranges:
                first, last = self._parse_range(key, rng)
                starts.append(run * RUN_FACTOR + first)
                ends.append(run * RUN_FACTOR + last + 1)
        self._starts, self._ends = _canonical(np.array(starts, np.int64), np.array(ends, np.int64))

    # ------------------------------------------------------------------ parsing helpers
    @staticmethod
    def _parse_run(key: Any) -> int:
        if _is_int(key):
            run = int(key)
        elif isinstance(key, str) and key.isascii() and key.isdigit():
            if len(key) > _MAX_DIGITS:
                raise LumiMaskError(f"run {short_repr(key)} is outside 0..{MAX_RUN}")
            run = int(key)
        else:
            raise LumiMaskError(f"run key {short_repr(key)} is not a non-negative integer")
        if not 0 <= run <= MAX_RUN:
            raise LumiMaskError(f"run {short_repr(key)} is outside 0..{MAX_RUN}")
        return run

    @staticmethod
    def _parse_range(key: Any, rng: Any) -> tuple[int, int]:
        if isinstance(rng, str | bytes) or not isinstance(rng, list | tuple | np.ndarray) or len(rng) != 2:
            raise LumiMaskError(f"run {short_repr(key)}: range {short_repr(rng)} is not a [first, last] pair")
        first, last = rng[0], rng[1]
        if not (_is_int(first) and _is_int(last)):
            raise LumiMaskError(
                f"run {short_repr(key)}: range {short_repr(list(rng))} must hold two integers"
            )
        first, last = int(first), int(last)
        where = f"run {short_repr(key)}: range [{short_repr(first, 24)}, {short_repr(last, 24)}]"
        if first < 0 or last < 0:
            raise LumiMaskError(f"{where} has a negative lumi")
        if first > last:
            raise LumiMaskError(f"{where} has first > last")
        if last > MAX_LUMI:
            raise LumiMaskError(f"{where} exceeds the largest lumi {MAX_LUMI}")
        return first, last

    @classmethod
    def _from_intervals(cls, starts: np.ndarray, ends: np.ndarray) -> LumiMask:
        mask = cls.__new__(cls)
        mask._starts, mask._ends = _canonical(starts.astype(np.int64), ends.astype(np.int64))
        return mask

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_json(cls, source: str | os.PathLike[str]) -> LumiMask:
        """Read a golden JSON from a file path, or from a JSON string (text starting with ``{``)."""
        data, origin = load_json_source(source, LumiMaskError, "lumi mask")
        if not isinstance(data, dict):
            raise LumiMaskError(f"{origin}: a lumi mask is a JSON object of run -> ranges")
        try:
            return cls(data)
        except LumiMaskError as exc:
            raise LumiMaskError(f"{origin}: {exc}") from None

    @classmethod
    def from_cmssw(cls, text: str) -> LumiMask:
        """Parse CMSSW's ``lumisToProcess`` form: ``"1:1-1:33,1:35"`` (ranges within one run)."""
        if not isinstance(text, str):
            raise LumiMaskError(f"CMSSW lumi ranges must be a string, got {type(text).__name__}")
        starts: list[int] = []
        ends: list[int] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            match = _CMSSW_ITEM.match(item)
            if not match:
                raise LumiMaskError(
                    f"CMSSW lumi range {short_repr(item)} is not 'run:lumi' or 'run:first-run:last'"
                )
            if any(len(g) > _MAX_DIGITS for g in match.groups() if g):
                raise LumiMaskError(
                    f"CMSSW lumi range {short_repr(item)}: a number is out of range "
                    f"(runs 0..{MAX_RUN}, lumis 0..{MAX_LUMI})"
                )
            run1, first = int(match[1]), int(match[2])
            run2, last = (int(match[3]), int(match[4])) if match[3] else (run1, first)
            if run1 != run2:
                raise LumiMaskError(
                    f"CMSSW lumi range {short_repr(item)} spans runs {run1} and {run2}; split it per run"
                )
            cls._parse_run(run1)
            cls._parse_range(str(run1), [first, last])
            starts.append(run1 * RUN_FACTOR + first)
            ends.append(run1 * RUN_FACTOR + last + 1)
        return cls._from_intervals(np.array(starts, np.int64), np.array(ends, np.int64))

    @classmethod
    def from_pairs(cls, runs: Any, lumis: Any) -> LumiMask:
        """Build the mask holding exactly the given (run, lumi) pairs (arrays of equal length)."""
        runs = np.asarray(runs, dtype=np.int64).ravel()
        lumis = np.asarray(lumis, dtype=np.int64).ravel()
        if runs.shape != lumis.shape:
            raise LumiMaskError(f"runs and lumis differ in length ({runs.size} vs {lumis.size})")
        if runs.size and (runs.min() < 0 or runs.max() > MAX_RUN):
            raise LumiMaskError(f"a run is outside 0..{MAX_RUN}")
        if lumis.size and (lumis.min() < 0 or lumis.max() > MAX_LUMI):
            raise LumiMaskError(f"a lumi is outside 0..{MAX_LUMI}")
        keys = sorted_unique(runs * RUN_FACTOR + lumis)
        if keys.size == 0:
            return cls()
        breaks = np.flatnonzero(np.diff(keys) != 1) + 1
        first = np.concatenate(([0], breaks))
        last = np.concatenate((breaks - 1, [keys.size - 1]))
        return cls._from_intervals(keys[first], keys[last] + 1)

    # ------------------------------------------------------------------ views
    def _run_first_last(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        runs = self._starts // RUN_FACTOR
        return runs, self._starts - runs * RUN_FACTOR, self._ends - 1 - runs * RUN_FACTOR

    def to_dict(self) -> dict[str, list[list[int]]]:
        """Canonical golden-JSON dict: runs in numeric order, merged inclusive ranges."""
        runs, firsts, lasts = self._run_first_last()
        out: dict[str, list[list[int]]] = {}
        for run, first, last in zip(runs.tolist(), firsts.tolist(), lasts.tolist(), strict=True):
            out.setdefault(str(run), []).append([first, last])
        return out

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Golden-JSON text; also written to ``path`` when given."""
        text = json.dumps(self.to_dict())
        if path is not None:
            atomic_write_text(path, text + "\n")
        return text

    def to_cmssw(self) -> str:
        """CMSSW ``lumisToProcess`` string, e.g. ``"1:1-1:33,1:35"``."""
        runs, firsts, lasts = self._run_first_last()
        return ",".join(
            f"{r}:{a}" if a == b else f"{r}:{a}-{r}:{b}"
            for r, a, b in zip(runs.tolist(), firsts.tolist(), lasts.tolist(), strict=True)
        )

    def to_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """All (run, lumi) pairs as two int64 arrays, sorted by run then lumi."""
        lengths = self._ends - self._starts
        total = int(lengths.sum())
        if total == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        offsets = np.repeat(self._starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
        keys = np.arange(total, dtype=np.int64) + offsets
        return keys // RUN_FACTOR, keys % RUN_FACTOR

    @property
    def runs(self) -> list[int]:
        """Sorted run numbers that hold at least one lumi."""
        return sorted_unique(self._starts // RUN_FACTOR).tolist()

    @property
    def n_lumis(self) -> int:
        """Number of (run, lumi) pairs in the mask."""
        return int((self._ends - self._starts).sum())

    @property
    def n_ranges(self) -> int:
        """Number of merged inclusive ranges."""
        return int(self._starts.size)

    # ------------------------------------------------------------------ membership
    def contains(self, runs: Any, lumis: Any) -> np.ndarray:
        """Vectorized membership: a bool array, True where ``(runs[i], lumis[i])`` is in the mask."""
        runs = np.asarray(runs, dtype=np.int64)
        lumis = np.asarray(lumis, dtype=np.int64)
        runs, lumis = np.broadcast_arrays(runs, lumis)
        valid = (lumis >= 0) & (lumis <= MAX_LUMI) & (runs >= 0) & (runs <= MAX_RUN)
        keys = np.where(valid, runs * RUN_FACTOR + lumis, -1)
        return valid & _member(self._starts, self._ends, keys)

    def __contains__(self, item: object) -> bool:
        if not isinstance(item, tuple) or len(item) != 2:
            return False
        run, lumi = item
        if not (_is_int(run) and _is_int(lumi)):
            return False
        return bool(self.contains(np.array([run]), np.array([lumi]))[0])

    # ------------------------------------------------------------------ set algebra
    def _combine(self, other: LumiMask, keep: Any) -> LumiMask:
        if not isinstance(other, LumiMask):
            return NotImplemented
        points = sorted_unique(np.concatenate((self._starts, self._ends, other._starts, other._ends)))
        if points.size < 2:
            return LumiMask()
        seg_start, seg_end = points[:-1], points[1:]
        in_self = _member(self._starts, self._ends, seg_start)
        in_other = _member(other._starts, other._ends, seg_start)
        kept = keep(in_self, in_other)
        return LumiMask._from_intervals(seg_start[kept], seg_end[kept])

    def __and__(self, other: LumiMask) -> LumiMask:
        return self._combine(other, np.logical_and)

    def __or__(self, other: LumiMask) -> LumiMask:
        if not isinstance(other, LumiMask):
            return NotImplemented
        return LumiMask._from_intervals(
            np.concatenate((self._starts, other._starts)), np.concatenate((self._ends, other._ends))
        )

    def __sub__(self, other: LumiMask) -> LumiMask:
        return self._combine(other, lambda a, b: a & ~b)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LumiMask):
            return NotImplemented
        return np.array_equal(self._starts, other._starts) and np.array_equal(self._ends, other._ends)

    def __hash__(self) -> int:
        return hash((self._starts.tobytes(), self._ends.tobytes()))

    def __bool__(self) -> bool:
        return self._starts.size > 0

    def __repr__(self) -> str:
        return f"LumiMask(runs={len(self.runs)}, lumis={self.n_lumis}, ranges={self.n_ranges})"
