"""Rescue DAGs: DAGMan's partial rescue format (``Dag::WriteRescue``), numbering, and reading them back.

A rescue file ``<dag>.rescueNNN`` lists the nodes that finished (``DONE name``) and, only when retries are
not reset, the retries left. Running the DAG again applies the highest-numbered rescue file on top of the
DAG file, so finished nodes are not re-run.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from autosplit._io import InputProblem, decode_bytes, read_regular_bytes
from autosplit.backends.local.errors import DagParseError
from autosplit.backends.local.statusfile import write_atomically

RESCUE_VERSION = "2.1.0"
_NUMBER = re.compile(r"\.rescue(\d{3})$")


def rescue_path(dag_path: Path, number: int) -> Path:
    return dag_path.with_name(f"{dag_path.name}.rescue{number:03d}")


def last_rescue_number(dag_path: Path, max_number: int = 100) -> int:
    """Highest existing rescue number for this DAG (0 if none), not above ``max_number``."""
    best = 0
    if not dag_path.parent.is_dir():
        return 0
    prefix = dag_path.name + ".rescue"
    for entry in dag_path.parent.iterdir():
        if entry.name.startswith(prefix):
            m = _NUMBER.search(entry.name)
            if m and 0 < int(m.group(1)) <= max_number:
                best = max(best, int(m.group(1)))
    return best


@dataclass
class RescueInfo:
    """What a rescue file says: nodes done, and retries left per node (only if retries were not reset)."""

    path: Path
    done: list[str] = field(default_factory=list)
    retries: dict[str, tuple[int, int | None]] = field(default_factory=dict)


def read_rescue(path: Path) -> RescueInfo:
    """Read the DONE (and RETRY) lines of a rescue file; other commands are refused."""
    info = RescueInfo(path)
    try:
        text = decode_bytes(read_regular_bytes(path, "rescue DAG"), "rescue DAG")
    except InputProblem as problem:
        raise DagParseError(str(path), 0, "DAG", problem.reason) from None
    for number, raw in enumerate(text.splitlines(), 1):
        text = raw.strip()
        if not text or text.startswith("#") or text.startswith("//"):
            continue
        words = text.split()
        keyword = words[0].upper()
        if keyword == "DONE" and len(words) == 2:
            info.done.append(words[1])
        elif keyword == "RETRY" and len(words) in (3, 5):
            try:
                count = int(words[2])
                unless = int(words[4]) if len(words) == 5 else None
            except ValueError:
                raise DagParseError(
                    str(path), number, "RETRY", "expected RETRY <node> <n> [UNLESS-EXIT v]"
                ) from None
            info.retries[words[1]] = (count, unless)
        else:
            raise DagParseError(
                str(path), number, words[0], "only DONE and RETRY lines are read from a rescue DAG"
            )
    return info


def render_rescue(
    dag_name: str,
    total: int,
    done_count: int,
    failed: list[str],
    failed_count: int,
    done_lines: list[str],
    retry_lines: list[tuple[str, int, int, int | None]] | None = None,
    now: float | None = None,
) -> str:
    """Rescue text. ``retry_lines``: (node, retries done, retry max, unless-exit) when retries are kept."""
    tm = time.gmtime(time.time() if now is None else now)
    out = [
        "# Rescue DAG file, created after running\n",
        f"#   the {dag_name} DAG file\n",
        f"# Created {tm.tm_mon}/{tm.tm_mday}/{tm.tm_year} {tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} UTC\n",
        f"# Rescue DAG version: {RESCUE_VERSION}\n",
        "#\n",
        f"# Total number of Nodes: {total}\n",
        f"# Nodes premarked DONE: {done_count}\n",
        f"# Nodes that failed: {failed_count}\n",
        "#   " + "".join(f"{name}," for name in failed) + "<ENDLIST>\n",
        "\n",
    ]
    out += [f"DONE {name}\n" for name in done_lines]
    for name, done, retry_max, unless in retry_lines or []:
        remaining = max(retry_max - done, 0)
        out.append(f"\n# {done} of {retry_max} retries already performed; {remaining} remaining\n")
        out.append(
            f"RETRY {name} {remaining}" + (f" UNLESS-EXIT {unless}" if unless is not None else "") + "\n"
        )
    return "".join(out)


def write_rescue(path: Path, text: str) -> None:
    """Write the rescue file durably (tmp + fsync + rename)."""
    write_atomically(path, text, durable=True)
