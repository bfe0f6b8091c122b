"""DAGMan CONFIG files (``CONFIG <file>`` in a DAG): the knobs the local executor understands, and reading
them. Their values are interpreted by :class:`autosplit.backends.local.options.Settings`.
"""

from __future__ import annotations

from pathlib import Path

from autosplit._io import InputProblem, decode_bytes, read_regular_bytes
from autosplit.backends.local.errors import DagParseError
from autosplit.backends.local.model import Location

# DAGMan configuration knobs (CONFIG file) the executor understands. Values are parsed by the executor.
CONFIG_KNOBS = {
    "DAGMAN_MAX_JOBS_SUBMITTED",
    "DAGMAN_MAX_PRE_SCRIPTS",
    "DAGMAN_MAX_POST_SCRIPTS",
    "DAGMAN_ALWAYS_RUN_POST",
    "DAGMAN_MAX_SUBMIT_ATTEMPTS",
    "DAGMAN_SUBMIT_DELAY",
    "DAGMAN_PROHIBIT_MULTI_JOBS",
    "DAGMAN_RESET_RETRIES_UPON_RESCUE",
    "DAGMAN_MAX_RESCUE_NUM",
    "DAGMAN_AUTO_RESCUE",
    "DAGMAN_RETRY_NODE_FIRST",
    "DAGMAN_SUBMIT_DEPTH_FIRST",
    "DAGMAN_STARTUP_CYCLE_DETECT",
    "DAGMAN_DEFAULT_APPEND_VARS",
    "DAGMAN_DEBUG",
}
# Knobs that only tune how DAGMan talks to a schedd; they have no meaning for local processes (jobs start
# at once and are watched directly, never idle), so accepting them changes nothing.
CONFIG_POOL_ONLY = {
    "DAGMAN_USER_LOG_SCAN_INTERVAL",
    "DAGMAN_MAX_SUBMITS_PER_INTERVAL",
    "DAGMAN_MAX_JOBS_IDLE",
    "DAGMAN_WRITE_PARTIAL_RESCUE",
    "DAGMAN_NODE_JOB_FAILURE_TOLERANCE",  # only 0 is accepted, checked below
    "SCHEDULER_UNIVERSE_COOL_DOWN_DURATION",
}


def read_config(path: Path, where: Location) -> dict[str, str]:
    """Read a DAGMan CONFIG file (``KNOB = value`` lines); unknown knobs are refused with file and line."""
    try:
        lines = decode_bytes(read_regular_bytes(path, "DAGMan config"), "DAGMan config file").splitlines()
    except InputProblem as problem:
        raise DagParseError(where.file, where.line, "CONFIG", f"{path}: {problem.reason}") from None
    out: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if "=" not in text:
            raise DagParseError(str(path), number, "CONFIG", f"expected KNOB = value, got {text!r}")
        key, value = (s.strip() for s in text.split("=", 1))
        knob = key.upper()
        if knob.startswith("_CONDOR_"):
            knob = knob[len("_CONDOR_") :]
        if knob not in CONFIG_KNOBS and knob not in CONFIG_POOL_ONLY:
            raise DagParseError(str(path), number, knob, "DAGMan configuration knob not supported locally")
        if knob == "DAGMAN_NODE_JOB_FAILURE_TOLERANCE" and value.strip() not in ("0", ""):
            raise DagParseError(str(path), number, knob, "only a tolerance of 0 is supported locally")
        out[knob] = value
    return out
