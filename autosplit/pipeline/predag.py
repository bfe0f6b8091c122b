"""``python -I -m autosplit.pipeline.predag TASK KEY`` — the PRE script of a ``tail`` sub-DAG node.

A tail sub-DAG node waits for every chain of its DAG (:mod:`autosplit.pipeline.stages`). When they have
all ended and units are still pending, this script writes ``KEY.dag``: another set of chains for them
(their length fitted to what is left), followed by the next tail node, at most
:data:`~autosplit.pipeline.stages.MAX_TAIL_DAGS` deep. With nothing pending (or the task killed) it exits
with the node's ``PRE_SKIP`` code and the sub-DAG is skipped.

Keys: ``tail-J`` (after the task's own chains) and ``resubmit-K-tail-J`` (after a resubmission's).

Exit codes: 0 the sub-DAG is written; 99 (``PRE_SKIP``) nothing to do; 1 the script failed (the message is
recorded in the ledger and ``logs/predag.log``).
"""

from __future__ import annotations

import re
import sys
import time

from autosplit.errors import AutosplitError
from autosplit.pipeline.taskdir import PRE_SKIP_CODE, TaskDir

_KEY = re.compile(r"^(?:resubmit-(\d+)-)?tail-(\d+)$")


class PredagError(AutosplitError):
    """A tail sub-DAG cannot be written (bad key)."""


def parse_key(key: str) -> tuple[int | None, int]:
    """``tail-2`` -> (None, 2); ``resubmit-1-tail-3`` -> (1, 3)."""
    match = _KEY.match(key)
    if not match:
        raise PredagError(f"unknown tail key {key!r}; expected tail-J or resubmit-K-tail-J")
    resubmit = int(match.group(1)) if match.group(1) else None
    return resubmit, int(match.group(2))


def next_tail_key(key: str) -> str | None:
    """The tail after ``key``'s chains (``task`` -> ``tail-1``, ``tail-1`` -> ``tail-2``, ...), or ``None``
    once :data:`MAX_TAIL_DAGS` are used."""
    from autosplit.pipeline.stages import MAX_TAIL_DAGS

    if key == "task":
        return "tail-1"
    if key.startswith("resubmit-") and "-tail-" not in key:
        return f"{key}-tail-1"
    resubmit, number = parse_key(key)
    if number >= MAX_TAIL_DAGS:
        return None
    return f"tail-{number + 1}" if resubmit is None else f"resubmit-{resubmit}-tail-{number + 1}"


def run_predag(task: TaskDir, key: str) -> tuple[int, str]:
    """Write the tail sub-DAG ``key`` for the pending units, or skip; returns (exit code, message)."""
    from autosplit.pipeline.stages import chain_count, chain_dag, chain_length

    parse_key(key)
    task.require()
    with task.ledger() as ledger:
        if ledger.get_meta("killed") is not None:
            return PRE_SKIP_CODE, "the task was killed"
        counts = ledger.unit_counts()
    waiting = counts["pending"] - counts["assigned"]
    if waiting <= 0:
        return PRE_SKIP_CODE, "nothing pending"
    task.closed_marker.unlink(missing_ok=True)
    n_chains = chain_count(task)
    length = chain_length(waiting, n_chains)
    dag = chain_dag(task, key, n_chains, length, next_tail=next_tail_key(key))
    dag.write(task.stage_dag(key))
    return 0, f"{waiting} unit(s) pending: {n_chains} chain(s) of {length} node(s)"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m autosplit.pipeline.predag TASK_DIR KEY", file=sys.stderr)
        return 2
    task = TaskDir(args[0])
    key = args[1]
    try:
        code, message = run_predag(task, key)
    except Exception as exc:  # noqa: BLE001 - recorded for status, and the node fails with the reason
        code, message = 1, f"failed: {type(exc).__name__}: {exc}"
        try:
            with task.ledger() as ledger:
                ledger.set_meta(error=f"predag {key}: {message}"[:2000])
        except Exception:  # noqa: BLE001
            pass
    print(f"autosplit predag {key}: {message}", file=sys.stderr)
    _log(task, key, message)
    return code


def _log(task: TaskDir, key: str, text: str) -> None:
    try:
        task.logs_dir.mkdir(parents=True, exist_ok=True)
        with open(task.logs_dir / "predag.log", "a") as log:
            log.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {key}: {text}\n")
    except OSError:
        pass


if __name__ == "__main__":
    sys.exit(main())
