"""The scheduler's saved state, laid out so that a DAG script loads and saves it at a cost that does not grow
with the task.

A script (a node's PRE or POST script) makes one scheduler call on a task of up to millions of units and
100,000 jobs. Pickling the whole scheduler each time costs seconds at that size, so the state is split:

* ``scheduler.state`` — a header: magic, the ledger version it matches, then a small pickle (the scalars,
  small containers, and the manifest of the files below). It is written last, atomically; before a save
  changes any file in place it is first rewritten as invalid, so a save cut short is never taken for a
  valid state (the state is then rebuilt from the ledger).
* ``scheduler.d/<slot>.<generation>.npy`` — the per-unit arrays (unit book, caps, predictions, queues),
  memory-mapped on load: only the pages a call touches are read. The arrays a call may change in place
  (unit states and counters) are mapped copy-on-write and only the rows the scheduler marked as changed are
  written back; an array the scheduler replaced (a refit's predictions, a rebuilt queue) is written whole
  under a new generation.
* ``scheduler.d/jobs.*`` — every job handed out, as columns (times, limits, codes, the unit rows of all jobs
  concatenated, names sorted for lookup), read one job at a time when the scheduler asks for it; jobs a
  call touched or made are written back, new ones appended.
* ``scheduler.d/reports.*`` — the reservoir of reports the cost model is fitted on, msgpack-encoded,
  appended; decoded only when the model is refitted.
* ``scheduler.d/model.<generation>.pkl`` — the fitted cost model, memory-mapped and unpickled only when
  used (a refit), written only when refitted.
"""

from __future__ import annotations

import mmap
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from autosplit._io import atomic_write_bytes
from autosplit.jobreport import JobReport
from autosplit.scheduler import Scheduler, SchedulerError
from autosplit.scheduler.jobs import SchedJob

STATE_MAGIC = b"autosplit-scheduler-state/2 "
INVALID = b"-1"
# Sub-objects of the scheduler whose large arrays live in their own files, and the unit-book arrays a call
# may change in place (only rows marked changed are written back).
_OWNERS = ("_book", "_caps", "_predictions", "_run_book")
_MUTABLE = {("_book", name) for name in ("state", "job", "returns", "crashes", "failures", "alone")} | {
    ("_run_book", name)
    for name in ("seconds", "job")  # measured rows: rows of the jobs a call touched
}
_EXTERNAL_MIN = 4096  # arrays smaller than this stay in the header's pickle
_BIG = {"_dataset", "_jobs", "_reports", "_by_id"}


def state_dir(header: Path) -> Path:
    return header.with_name("scheduler.d")


# ---------------------------------------------------------------------- columnar job list
class _Columns:
    """The job columns on disk (memory-mapped, read-write; written only during a save)."""

    def __init__(self, root: Path, info: dict[str, Any]) -> None:
        self.root = root
        self.info = info
        self.n = int(info["n"])
        self.num = np.load(root / info["num"], mmap_mode="r+")  # (cap, 6) float64
        self.codes = np.load(root / info["codes"], mmap_mode="r+")  # (cap, 4) int32
        self.offsets = np.load(root / info["offsets"], mmap_mode="r+")  # (cap + 1,) int64
        self.names = np.load(root / info["names"], mmap_mode="r")  # (n,) bytes, sorted
        self.order = np.load(root / info["order"], mmap_mode="r")  # (n,) job index of each sorted name
        rows_path = root / "jobs.rows.bin"
        self.rows = (
            np.memmap(rows_path, dtype=np.int64, mode="r")
            if rows_path.exists() and rows_path.stat().st_size
            else np.zeros(0, np.int64)
        )
        self.vocab: dict[str, list[str]] = info["vocab"]


_NUM_FIELDS = ("requested_at", "soft", "hard", "predicted", "started_at", "ended_at")
_CODE_FIELDS = ("kind", "outcome", "stage")


def _opt(value: float) -> float | None:
    return None if np.isnan(value) else float(value)


class LazyJobs:
    """The scheduler's list of jobs, read from the columns one job at a time (list-like: len, index,
    iterate, append)."""

    def __init__(self, columns: _Columns | None = None) -> None:
        self._columns = columns
        self._stored = columns.n if columns is not None else 0
        self._n = self._stored
        self.live: dict[int, SchedJob] = {}

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: int) -> SchedJob:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]  # type: ignore[return-value]
        if index < 0:
            index += self._n
        if not 0 <= index < self._n:
            raise IndexError(index)
        job = self.live.get(index)
        if job is None:
            job = self.live[index] = self._read(index)
        return job

    def __iter__(self) -> Iterator[SchedJob]:
        for i in range(self._n):
            yield self[i]

    def append(self, job: SchedJob) -> None:
        self.live[self._n] = job
        self._n += 1

    def _read(self, index: int) -> SchedJob:
        c = self._columns
        assert c is not None
        num = c.num[index]
        kind, outcome, stage, probe_round = (int(v) for v in c.codes[index])
        start, end = int(c.offsets[index]), int(c.offsets[index + 1])
        return SchedJob(
            index=index,
            job_id=_name_of(c, index),
            stage=c.vocab["stage"][stage],
            kind=c.vocab["kind"][kind],
            rows=np.array(c.rows[start:end], dtype=np.int64),
            requested_at=float(num[0]),
            soft=_opt(num[1]),
            hard=float(num[2]),
            predicted=_opt(num[3]),
            started_at=_opt(num[4]),
            ended_at=_opt(num[5]),
            outcome=c.vocab["outcome"][outcome],
            probe_round=probe_round,
        )


def _name_of(c: _Columns, index: int) -> str:
    # The names are kept sorted (for lookup); the index of a name's job is ``order``. Reading a job by index
    # needs the reverse, kept as its own small column.
    return bytes(c.info_names_by_index[index]).decode()  # type: ignore[attr-defined]


class LazyIndex:
    """The scheduler's job name -> index mapping, looked up by binary search in the sorted name column."""

    def __init__(self, columns: _Columns | None = None) -> None:
        self._columns = columns
        self.new: dict[str, int] = {}

    def get(self, name: str, default: Any = None) -> Any:
        if name in self.new:
            return self.new[name]
        c = self._columns
        if c is None or c.n == 0:
            return default
        key = name.encode()
        if len(key) > c.names.dtype.itemsize:
            return default
        pos = int(np.searchsorted(c.names, key))
        if pos < c.n and bytes(c.names[pos]) == key:
            return int(c.order[pos])
        return default

    def __getitem__(self, name: str) -> int:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __setitem__(self, name: str, index: int) -> None:
        self.new[name] = index

    def __len__(self) -> int:
        return (self._columns.n if self._columns is not None else 0) + len(self.new)


# ---------------------------------------------------------------------- reports reservoir
class LazyReports:
    """The reservoir of reports (list-like), decoded only when read (a refit)."""

    def __init__(self, root: Path | None = None, info: dict[str, Any] | None = None) -> None:
        self._root = root
        self._index = (
            np.load(root / info["index"], mmap_mode="r") if root and info else np.zeros((0, 2), np.int64)
        )
        self._n = int(info["n"]) if info else 0
        self.changed: dict[int, JobReport] = {}

    def __len__(self) -> int:
        return self._n

    def __bool__(self) -> bool:
        return self._n > 0

    def append(self, report: JobReport) -> None:
        self.changed[self._n] = report
        self._n += 1

    def __setitem__(self, index: int, report: JobReport) -> None:
        if not 0 <= index < self._n:
            raise IndexError(index)
        self.changed[index] = report

    def __getitem__(self, index: int) -> JobReport:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._n))]  # type: ignore[return-value]
        if index < 0:
            index += self._n
        if index in self.changed:
            return self.changed[index]
        start, length = (int(v) for v in self._index[index])
        with open(self._root / "reports.bin", "rb") as handle:  # type: ignore[operator]
            handle.seek(start)
            return msgspec.msgpack.decode(handle.read(length), type=JobReport)

    def __iter__(self) -> Iterator[JobReport]:
        if self._n == 0:
            return
        data = (
            (self._root / "reports.bin").read_bytes() if self._root is not None and self._index.size else b""
        )
        decoder = msgspec.msgpack.Decoder(JobReport)
        for i in range(self._n):
            if i in self.changed:
                yield self.changed[i]
            else:
                start, length = (int(v) for v in self._index[i])
                yield decoder.decode(data[start : start + length])


# ---------------------------------------------------------------------- load
class Loaded:
    """What a load mapped, so the save can tell what changed."""

    def __init__(self) -> None:
        self.arrays: dict[tuple[str, str], tuple[np.ndarray, str]] = {}
        self.model: tuple[Any, str] | None = None
        self.info: dict[str, Any] = {}


def load(header: Path, version: int, dataset: Any) -> tuple[Scheduler, Loaded] | None:
    """The saved scheduler if its header matches ``version``, else None."""
    try:
        data = header.read_bytes()
    except OSError:
        return None
    if not data.startswith(STATE_MAGIC):
        return None
    head, _, blob = data.partition(b"\n")
    try:
        saved = int(head[len(STATE_MAGIC) :])
    except ValueError:
        return None
    if saved != version:
        return None
    root = state_dir(header)
    try:
        info = pickle.loads(blob)  # noqa: S301 - the task's own state file
        loaded = Loaded()
        loaded.info = info
        state = info["state"]
        for owner, attrs in info["owners"].items():
            if attrs is None:
                state[owner] = None
                continue
            obj = object.__new__(info["owner_types"][owner])
            if "__setstate__" in type(obj).__dict__:
                # Fills attributes a state saved by an older version lacks (the arrays are set just below).
                obj.__setstate__({**attrs, **dict.fromkeys(info["arrays"].get(owner, {}))})
            else:
                obj.__dict__.update(attrs)
            for name, filename in info["arrays"].get(owner, {}).items():
                mode = "c" if (owner, name) in _MUTABLE else "r"
                array = np.load(root / filename, mmap_mode=mode)
                setattr(obj, name, array)
                loaded.arrays[(owner, name)] = (array, filename)
            state[owner] = obj
        if info["model"]:
            with open(root / info["model"], "rb") as handle:
                blob_map = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
            state["_model_blob"] = blob_map
            state["_model"] = None
            loaded.model = (blob_map, info["model"])
        columns = _open_columns(root, info["jobs"]) if info["jobs"] else None
        state["_jobs"] = LazyJobs(columns)
        state["_by_id"] = LazyIndex(columns)
        state["_reports"] = LazyReports(root, info["reports"]) if info["reports"] else LazyReports()
        observer = state.get("_observer")
        if isinstance(getattr(observer, "overheads", None), np.ndarray):
            observer.overheads = observer.overheads.tolist()
        sched = Scheduler.__new__(Scheduler)
        sched.__dict__.update(state)
        sched.dataset = dataset
        if sched._book.n != int(info["n_units"]):
            return None
    except (OSError, KeyError, ValueError, EOFError, pickle.UnpicklingError, AttributeError, SchedulerError):
        return None
    return sched, loaded


def _open_columns(root: Path, info: dict[str, Any]) -> _Columns:
    columns = _Columns(root, info)
    columns.info_names_by_index = np.load(root / info["by_index"], mmap_mode="r")  # type: ignore[attr-defined]
    return columns


# ---------------------------------------------------------------------- save
def save(
    header: Path, sched: Scheduler, version: int, loaded: Loaded | None, dirty_rows: list[np.ndarray]
) -> None:
    """Save ``sched`` stamped with ``version`` (see the module docstring)."""
    root = state_dir(header)
    root.mkdir(mode=0o700, exist_ok=True)
    atomic_write_bytes(header, STATE_MAGIC + INVALID + b"\n")
    previous = loaded.info if loaded is not None else {}
    generation = int(previous.get("generation", 0)) + 1
    keep: set[str] = set()
    info: dict[str, Any] = {"generation": generation, "n_units": int(sched._book.n)}

    # per-unit arrays
    rows = np.unique(np.concatenate(dirty_rows)) if dirty_rows else np.zeros(0, np.int64)
    jobs = sched._jobs
    if isinstance(jobs, LazyJobs) and jobs.live:
        touched = [j.rows for j in jobs.live.values()]
        rows = np.unique(np.concatenate([rows, *touched]))
    pending_dirty = getattr(sched._book, "_dirty", [])
    if pending_dirty:
        rows = np.unique(np.concatenate([rows, *pending_dirty]))
    owners: dict[str, Any] = {}
    owner_types: dict[str, type] = {}
    arrays: dict[str, dict[str, str]] = {}
    for owner in _OWNERS:
        obj = getattr(sched, owner, None)
        if obj is None:
            owners[owner] = None
            continue
        owner_types[owner] = type(obj)
        attrs = dict(obj.__dict__)
        arrays[owner] = {}
        for name, value in list(attrs.items()):
            if not isinstance(value, np.ndarray) or value.size < _EXTERNAL_MIN:
                if isinstance(value, np.memmap):
                    attrs[name] = np.array(value)
                continue
            del attrs[name]
            mapped = loaded.arrays.get((owner, name)) if loaded is not None else None
            if mapped is not None and mapped[0] is value:
                filename = mapped[1]
                if (owner, name) in _MUTABLE and rows.size:
                    target = np.load(root / filename, mmap_mode="r+")
                    target[rows] = value[rows]
                    target.flush()
                    del target
            else:
                filename = f"{owner.strip('_')}.{name}.{generation}.npy"
                _write_npy(root / filename, np.ascontiguousarray(value))
            arrays[owner][name] = filename
            keep.add(filename)
        owners[owner] = attrs

    # model
    model_file = None
    if sched._model is not None:
        model_file = f"model.{generation}.pkl"
        _write_file(root / model_file, pickle.dumps(sched._model, protocol=pickle.HIGHEST_PROTOCOL))
    elif sched._model_blob is not None:
        if loaded is not None and loaded.model is not None and loaded.model[0] is sched._model_blob:
            model_file = loaded.model[1]
        else:
            model_file = f"model.{generation}.pkl"
            _write_file(root / model_file, bytes(sched._model_blob))
    if model_file:
        keep.add(model_file)

    info["jobs"] = _save_jobs(root, sched, previous.get("jobs"), generation, keep)
    info["reports"] = _save_reports(root, sched, previous.get("reports"), keep)

    state = {k: v for k, v in sched.__dict__.items() if k not in _BIG and k not in _OWNERS}
    observer = state.get("_observer")
    if isinstance(getattr(observer, "overheads", None), list):
        # one float per ended job: as an array it pickles as one buffer, not 100,000 objects
        packed = object.__new__(type(observer))
        packed.__dict__.update(observer.__dict__, overheads=np.asarray(observer.overheads, dtype=np.float64))
        state["_observer"] = packed
    state["_model"] = None
    state["_model_blob"] = None
    info.update(state=state, owners=owners, owner_types=owner_types, arrays=arrays, model=model_file)
    blob = pickle.dumps(info, protocol=pickle.HIGHEST_PROTOCOL)
    atomic_write_bytes(header, STATE_MAGIC + str(int(version)).encode() + b"\n" + blob)
    for path in root.iterdir():
        if path.name not in keep and not path.name.startswith("."):
            path.unlink(missing_ok=True)


def _write_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.lib.format.write_array(handle, array, allow_pickle=False)
    os.replace(tmp, path)


def _write_file(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _code(vocab: dict[str, list[str]], field: str, value: str) -> int:
    values = vocab.setdefault(field, [])
    try:
        return values.index(value)
    except ValueError:
        values.append(value)
        return len(values) - 1


def _nan(value: float | None) -> float:
    return np.nan if value is None else float(value)


def _save_jobs(
    root: Path, sched: Scheduler, previous: dict | None, generation: int, keep: set[str]
) -> dict | None:
    jobs = sched._jobs
    if isinstance(jobs, LazyJobs) and jobs._columns is not None and previous is not None:
        columns = jobs._columns
        stored = columns.n
        live = jobs.live
        vocab = {k: list(v) for k, v in previous["vocab"].items()}
        info = dict(previous, vocab=vocab)
    else:
        # a scheduler made or rebuilt in this process: write every job
        columns = None
        stored = 0
        live = dict(enumerate(jobs))
        vocab = {"kind": [], "outcome": [], "stage": []}
        info = {"vocab": vocab, "n": 0}
        (root / "jobs.rows.bin").unlink(missing_ok=True)
    total = len(jobs)
    if total == 0:
        return None
    new = [i for i in range(stored, total)]
    # capacity-doubling columns: grow (copy) only when full
    capacity = int(info.get("capacity", 0))
    num = columns.num if columns is not None else None
    codes = columns.codes if columns is not None else None
    offsets = columns.offsets if columns is not None else None
    if total > capacity:
        capacity = max(1024, 2 * total)
        names = {
            "num": f"jobs.num.{generation}.npy",
            "codes": f"jobs.codes.{generation}.npy",
            "offsets": f"jobs.offsets.{generation}.npy",
        }
        new_num = np.lib.format.open_memmap(
            root / names["num"], mode="w+", dtype=np.float64, shape=(capacity, 6)
        )
        new_codes = np.lib.format.open_memmap(
            root / names["codes"], mode="w+", dtype=np.int32, shape=(capacity, 4)
        )
        new_offsets = np.lib.format.open_memmap(
            root / names["offsets"], mode="w+", dtype=np.int64, shape=(capacity + 1,)
        )
        if columns is not None and stored:
            new_num[:stored] = num[:stored]
            new_codes[:stored] = codes[:stored]
            new_offsets[: stored + 1] = offsets[: stored + 1]
        else:
            new_offsets[0] = 0
        num, codes, offsets = new_num, new_codes, new_offsets
        info.update(names, capacity=capacity)
    # mutable fields of stored jobs the call touched
    for index, job in live.items():
        if index < stored:
            num[index, 4] = _nan(job.started_at)
            num[index, 5] = _nan(job.ended_at)
            codes[index, 1] = _code(vocab, "outcome", job.outcome)
    # new jobs: append
    if new:
        rows_path = root / "jobs.rows.bin"
        with open(rows_path, "r+b" if rows_path.exists() else "wb") as handle:
            position = int(offsets[stored])
            handle.seek(position * 8)
            handle.truncate()  # drop what a save cut short may have appended
            for index in new:
                job = live[index]
                rows = np.ascontiguousarray(job.rows, dtype=np.int64)
                handle.write(rows.tobytes())
                position += rows.size
                offsets[index + 1] = position
                num[index] = [
                    float(job.requested_at),
                    _nan(job.soft),
                    float(job.hard),
                    _nan(job.predicted),
                    _nan(job.started_at),
                    _nan(job.ended_at),
                ]
                codes[index] = [
                    _code(vocab, "kind", job.kind),
                    _code(vocab, "outcome", job.outcome),
                    _code(vocab, "stage", job.stage),
                    int(job.probe_round),
                ]
        # names: the by-index column and the sorted column with its job indices
        added = [live[i].job_id.encode() for i in new]
        old_by_index = columns.info_names_by_index if columns is not None else np.zeros(0, "S1")  # type: ignore[attr-defined]
        old_names = columns.names if columns is not None else np.zeros(0, "S1")
        old_order = columns.order if columns is not None else np.zeros(0, np.int64)
        width = max([old_names.dtype.itemsize, *(len(a) for a in added)])
        dtype = f"S{width}"
        added_arr = np.array(added, dtype=dtype)
        by_index = np.concatenate([np.asarray(old_by_index, dtype=dtype), added_arr])
        sort = np.argsort(added_arr, kind="stable")
        added_sorted = added_arr[sort]
        base = np.asarray(old_names, dtype=dtype)
        at = np.searchsorted(base, added_sorted)
        sorted_names = np.insert(base, at, added_sorted)
        order = np.insert(np.asarray(old_order), at, np.asarray(new, dtype=np.int64)[sort])
        for key, array in (("by_index", by_index), ("names", sorted_names), ("order", order)):
            filename = f"jobs.{key}.{generation}.npy"
            _write_npy(root / filename, array)
            info[key] = filename
    for array in (num, codes, offsets):
        if isinstance(array, np.memmap):
            array.flush()
    info["n"] = total
    for key in ("num", "codes", "offsets", "by_index", "names", "order"):
        keep.add(info[key])
    keep.add("jobs.rows.bin")
    return info


def _save_reports(root: Path, sched: Scheduler, previous: dict | None, keep: set[str]) -> dict | None:
    reports = sched._reports
    if isinstance(reports, LazyReports) and previous is not None:
        changed = reports.changed
        info = dict(previous)
        index = np.load(root / info["index"], mmap_mode="r+")
    else:
        changed = dict(enumerate(reports))
        info = {"index": "reports.index.npy", "n": 0}
        (root / "reports.bin").unlink(missing_ok=True)
        index = None
    n = len(reports)
    if n == 0:
        return None
    capacity = max(int(getattr(sched, "_max_reports", 20_000)), n)
    if index is None or index.shape[0] < capacity:
        grown = np.zeros((capacity, 2), dtype=np.int64)
        if index is not None:
            grown[: index.shape[0]] = index
        _write_npy(root / info["index"], grown)
        index = np.load(root / info["index"], mmap_mode="r+")
    if changed:
        encoder = msgspec.msgpack.Encoder()
        path = root / "reports.bin"
        with open(path, "ab") as handle:
            position = handle.tell()
            for slot in sorted(changed):
                data = encoder.encode(changed[slot])
                handle.write(data)
                index[slot] = (position, len(data))
                position += len(data)
        index.flush()
    info["n"] = n
    keep.update({info["index"], "reports.bin"})
    return info
