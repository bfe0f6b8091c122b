"""Which tasks the monitor shows: the task directories found under the paths given at start.

A path given to ``autosplit serve`` is a task directory itself, or a directory holding task directories
(one level down, like the ``workdir`` tasks are created in). The catalog is rescanned when asked, so tasks
submitted after the server started appear too.

Tasks are addressed by an id from this index (the task directory's name, made unique with a short hash of
its path when two roots hold tasks of the same name). A request names an id; :meth:`TaskCatalog.get` looks
it up in the index and nothing else, so no part of a URL ever becomes a filesystem path.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from autosplit.web.readonly import ReadOnlyTaskDir

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,80}$")


@dataclass(frozen=True)
class CatalogEntry:
    """One task the monitor serves: its id in URLs and its (read-only) task directory."""

    id: str
    task: ReadOnlyTaskDir


class TaskCatalog:
    """The index of task directories under fixed roots (see the module docstring)."""

    def __init__(self, roots: Iterable[str | os.PathLike[str]]) -> None:
        self.roots: tuple[Path, ...] = tuple(Path(r).resolve() for r in roots)
        self._lock = threading.Lock()
        self._entries: dict[str, CatalogEntry] = {}
        self._by_path: dict[Path, ReadOnlyTaskDir] = {}
        self.rescan()

    def rescan(self) -> list[CatalogEntry]:
        """Look for task directories again; returns the entries in display order (root, then name)."""
        found: list[Path] = []
        for root in self.roots:
            for path in _task_dirs(root):
                if path not in found:
                    found.append(path)
        entries: dict[str, CatalogEntry] = {}
        with self._lock:
            names = [p.name for p in found]
            for path in found:
                task = self._by_path.get(path) or ReadOnlyTaskDir(path)
                self._by_path[path] = task
                task_id = path.name if names.count(path.name) == 1 else _unique_id(path)
                if not ID_PATTERN.match(task_id):
                    task_id = _unique_id(path)
                entries[task_id] = CatalogEntry(task_id, task)
            self._entries = entries
        return list(entries.values())

    def entries(self) -> list[CatalogEntry]:
        """The entries found by the last scan, in display order."""
        with self._lock:
            return list(self._entries.values())

    def get(self, task_id: str) -> CatalogEntry | None:
        """The entry with this id, or None (a new task directory is picked up by one rescan)."""
        if not ID_PATTERN.match(task_id):
            return None
        with self._lock:
            entry = self._entries.get(task_id)
        if entry is None:
            entry = next((e for e in self.rescan() if e.id == task_id), None)
        return entry


def _task_dirs(root: Path) -> list[Path]:
    """``root`` if it is a task directory, else its children that are (sorted by name)."""
    if ReadOnlyTaskDir(root).exists():
        return [root]
    try:
        children = sorted(p for p in root.iterdir() if p.is_dir())
    except OSError:
        return []
    return [p.resolve() for p in children if ReadOnlyTaskDir(p).exists()]


def _unique_id(path: Path) -> str:
    """``<name>-<6 hex digits of the path's hash>``: stable across restarts, unique across roots."""
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:6]
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", path.name)[:64]
    if not safe[:1].isalnum():
        safe = "task" + safe
    return f"{safe}-{digest}"
