"""Task configuration: a TOML file, validated with msgspec; errors name the key and the fix.

Example (every key but ``task.name``, ``dataset.source`` and one of ``code.callable``/``code.executable``
has a default)::

    [task]
    name = "dimuon-2017"
    workdir = "tasks"                 # task directories are created here (relative to this file)

    [dataset]
    source = "data/*.root"            # ROOT files/glob, a DBS-like listing (.json) or a dataset .parquet
    name = "/DoubleMuon/Run2017B/NANOAOD"   # which dataset of a multi-dataset DBS listing
    mask = "Cert_2017.json"           # golden JSON path or CMSSW ranges "297050:12-297050:137"
    features = "lumi_byls.csv"        # per-lumi features for the cost model (brilcalc CSV, or run/lumi table)

    [code]
    callable = "analysis:run"         # module:function(job), imported from `path`
    # executable = ["./run.sh", "--fast"]
    path = "."

    [splitting]
    target_runtime = "8h"             # seconds, or "90m", "2h30m"
    alpha = 0.05                      # accepted probability that a job reaches the soft limit
    max_tails = 3
    # probes = 20                     # probe jobs per round (default: one per slot, at most 500, and no
    #                                 # more than lumis of the mean size fit in probe_fraction of the events)
    # probe_seconds = "30m"           # a probe's soft limit (default: a sixteenth of target_runtime,
    #                                 # 5 to 30 minutes)
    probe_fraction = 0.02             # at most this fraction of the events goes to each probe round
    # slots = 500                     # slots the task can expect: job sizes decrease so the stages end
    #                                 # together (default: backend max_jobs locally, none on condor)
    # max_output_bytes = 5_000_000_000
    # max_files_per_job = 50

    [limits]
    retries = 1                       # DAGMan retries of a job whose failure names no cause
    max_unit_failures = 2             # a unit failing this often is quarantined
    memory_mb = 2000
    grace_seconds = 60                # SIGTERM -> SIGKILL grace at the hard limit
    # checkpoint_interval = "30m"     # jobs whose code calls job.on_checkpoint(...) commit outputs this often
    abort_fraction = 0.9              # abort the task when this fraction of a stage's jobs failed ...
    abort_min_jobs = 10               # ... once at least this many of them have ended

    [output]
    destination = "outputs"           # where outputs end (relative to the task directory)
    stage_out = "direct"              # "aso": jobs leave outputs in a site temporary area, an agent moves them
    temp_root = "site-temp"           # the site temporary area for "aso" (relative to the task directory)
    # temp_budget_bytes = 50_000_000_000   # jobs wait (postjob DEFER) rather than grow the area beyond this
    transfer_timeout = "6h"           # a job whose transfers take longer is retried

    [backend]
    kind = "local"                    # or "condor"
    max_jobs = 2                      # local: jobs at once (default: the number of cores; condor: no limit)
    site = "local"
    # job_python = "/cvmfs/.../bin/python3"   # condor: the payload's interpreter on the execute host
    # sandbox_limit_mb = 100; sandbox_exclude = ["*.root"]; transfer_inputs = true
    # site_attribute = "GLIDEIN_CMSSite"; sites_whitelist = []; sites_blacklist = []; overflow_after = "6h"
"""

from __future__ import annotations

import math
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import msgspec

from autosplit._io import one_line, read_input_bytes, read_input_text, short_repr
from autosplit.errors import AutosplitError
from autosplit.splitting.limits import default_probe_seconds

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)


class ConfigError(AutosplitError, ValueError):
    """The task configuration is invalid; the message names the key and how to fix it."""


def _human_seconds(seconds: float) -> str:
    """``604800`` -> ``'7 days'``, ``3600`` -> ``'1 h'``, ``90`` -> ``'90 s'``."""
    for size, unit in ((86400, "days"), (3600, "h"), (60, "min")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {'day' if unit == 'days' and count == 1 else unit}"
    return f"{seconds:g} s"


def parse_duration(
    value: Any, key: str, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    """Seconds from a number or a string like ``"8h"``, ``"90m"``, ``"2h30m"``, ``"45s"``.

    The result is finite; without ``minimum`` it must be longer than 0 seconds, with it at least ``minimum``;
    with ``maximum`` at most that. Errors name ``key`` and the allowed range.
    """
    shown = short_repr(value)
    if isinstance(value, bool):
        raise ConfigError(f"{key} = {shown}: expected seconds or a duration like '8h' or '90m'")
    if isinstance(value, int | float):
        try:
            seconds = float(value)
        except OverflowError:  # an integer beyond float range
            seconds = math.inf
    elif (
        isinstance(value, str)
        and value.strip()
        and len(value) <= 64
        and (match := _DURATION.match(value))
        and any(match.groups())
    ):
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ConfigError(f"{key} = {shown}: expected seconds or a duration like '8h', '90m', '2h30m'")
    low_ok = seconds > 0 if minimum is None else seconds >= minimum
    high_ok = maximum is None or seconds <= maximum
    if not (math.isfinite(seconds) and low_ok and high_ok):
        if minimum is not None and maximum is not None:
            allowed = f"between {_human_seconds(minimum)} and {_human_seconds(maximum)}"
        elif maximum is not None:
            allowed = f"longer than 0 seconds and at most {_human_seconds(maximum)}"
        elif minimum is not None:
            allowed = f"finite and at least {_human_seconds(minimum)}"
        else:
            allowed = "a finite duration longer than 0 seconds"
        raise ConfigError(f"{key} = {shown}: must be {allowed}")
    return seconds


class TaskSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: str
    workdir: str = "autosplit-tasks"


class DatasetSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    source: str | list[str]
    name: str | None = None
    mask: str | None = None
    tree: str = "Events"
    features: str | None = None


class CodeSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    callable: str | None = None
    executable: list[str] | None = None
    path: str = "."


class SplittingSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    target_runtime: float | str = "8h"
    alpha: float = 0.05
    max_tails: int = 3
    probes: int | None = None
    probe_seconds: float | str | None = None
    probe_fraction: float = 0.02
    rel_precision: float = 0.10
    max_output_bytes: int | None = None
    max_files_per_job: int | None = None
    slots: int | None = None


class LimitsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    retries: int = 1
    max_unit_failures: int = 2
    memory_mb: int = 2000
    grace_seconds: float | str = 60.0
    checkpoint_interval: float | str | None = None
    abort_fraction: float = 0.9
    abort_min_jobs: int = 10


class OutputSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    destination: str = "outputs"
    stage_out: Literal["direct", "aso"] = "direct"
    temp_root: str = "site-temp"
    temp_budget_bytes: int | None = None
    transfer_timeout: float | str = "6h"


class BackendSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["local", "condor"] = "local"
    max_jobs: int | None = None
    site: str = "local"
    # condor only (autosplit.backends.condor_submit): no shared filesystem, jobs get what HTCondor transfers.
    job_python: str = (
        "python3"  # the payload's interpreter on the execute host (needs msgspec + the code's deps)
    )
    sandbox_limit_mb: float = 100.0  # the user's code directory, packed, at most this big
    sandbox_exclude: list[str] = []  # extra glob patterns left out of the sandbox
    transfer_inputs: bool = True  # input files that are local paths travel with the job
    site_attribute: str = "GLIDEIN_CMSSite"  # machine attribute naming a slot's site
    sites_whitelist: list[str] = []
    sites_blacklist: list[str] = []
    overflow_after: float | str | None = None  # after a job is idle this long, any allowed site may run it
    chirp_interval: float = 30.0  # seconds between progress updates published into the job ad
    bind_defer_seconds: int | None = (
        None  # a chain node waiting for work asks again after this (local 2, condor 60)
    )


class TaskConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A validated task configuration; durations in seconds, paths absolute (see :func:`load_config`)."""

    task: TaskSection
    dataset: DatasetSection
    code: CodeSection
    splitting: SplittingSection = msgspec.field(default_factory=SplittingSection)
    limits: LimitsSection = msgspec.field(default_factory=LimitsSection)
    output: OutputSection = msgspec.field(default_factory=OutputSection)
    backend: BackendSection = msgspec.field(default_factory=BackendSection)

    # ------------------------------------------------------------------ derived values
    @property
    def target_seconds(self) -> float:
        return float(self.splitting.target_runtime)

    @property
    def probe_seconds(self) -> float:
        """A probe's soft limit (seconds): the configured value, else a sixteenth of the target (5-30 min)."""
        return default_probe_seconds(self.target_seconds, self.splitting.probe_seconds)

    @property
    def grace_seconds(self) -> float:
        return float(self.limits.grace_seconds)

    @property
    def max_jobs(self) -> int:
        return self.backend.max_jobs or os.cpu_count() or 1

    @property
    def n_probes(self) -> int:
        """Probe jobs per round: the configured number, else one per slot (at most 500), else 20."""
        if self.splitting.probes:
            return self.splitting.probes
        return min(self.slots, 500) if self.slots else 20

    @property
    def slots(self) -> int | None:
        """Slots the task's jobs share (factoring needs it): the configured value, else the local backend's
        job limit; None on condor without a value (jobs then all get the target size)."""
        if self.splitting.slots:
            return self.splitting.slots
        return self.max_jobs if self.backend.kind == "local" else None

    def to_dict(self) -> dict[str, Any]:
        return msgspec.to_builtins(self)


# Allowed range of every number, checked after the TOML is read: (section, key, low, high, low_open, high_open,
# unit). Durations (seconds; strings like "2h30m" too) are in DURATIONS.
_DAY = 86400.0
RANGES: tuple[tuple[str, str, float, float, bool, bool, str], ...] = (
    # alpha far from 0: the planner's normal quantile of 1 - alpha is finite and sane (3.7 sigma at 1e-4).
    ("splitting", "alpha", 1e-4, 0.5, False, True, ""),
    ("splitting", "max_tails", 0, 20, False, False, ""),
    ("splitting", "probes", 1, 10_000, False, False, ""),
    ("splitting", "probe_fraction", 1e-6, 0.5, False, False, ""),
    ("splitting", "rel_precision", 1e-3, 0.9, False, False, ""),
    ("splitting", "max_output_bytes", 1e6, 1e15, False, False, " bytes"),
    ("splitting", "max_files_per_job", 1, 100_000, False, False, ""),
    ("splitting", "slots", 1, 1_000_000, False, False, ""),
    ("limits", "retries", 0, 10, False, False, ""),
    ("limits", "max_unit_failures", 1, 10, False, False, ""),
    ("limits", "memory_mb", 16, 1_048_576, False, False, " MB"),
    ("limits", "abort_fraction", 0, 1, True, False, ""),
    ("limits", "abort_min_jobs", 1, 1_000_000, False, False, ""),
    ("output", "temp_budget_bytes", 1e6, 1e18, False, False, " bytes"),
    ("backend", "max_jobs", 1, 100_000, False, False, ""),
    ("backend", "sandbox_limit_mb", 0.001, 10_000, False, False, " MB"),
    ("backend", "chirp_interval", 0.5, 86400, False, False, " s"),
    ("backend", "bind_defer_seconds", 1, 3600, False, False, " s"),
)
#: (section, key, shortest, longest) in seconds. target_runtime's floor is 1 s, not a minute: the pipeline's
#: own end-to-end tests and the demo run with targets of a few seconds.
DURATIONS: tuple[tuple[str, str, float, float], ...] = (
    ("splitting", "target_runtime", 1.0, 7 * _DAY),
    ("limits", "grace_seconds", 0.0, 3600.0),
    ("limits", "checkpoint_interval", 1.0, _DAY),
    ("output", "transfer_timeout", 1.0, 7 * _DAY),
)
#: Durations that may be left out (None).
OPTIONAL_DURATIONS: tuple[tuple[str, str, float, float], ...] = (
    ("splitting", "probe_seconds", 0.1, _DAY),
    ("backend", "overflow_after", 0.0, 30 * _DAY),
)


def _check_ranges(config: TaskConfig, origin: str) -> None:
    """Every number finite and inside its range; one line naming the key and the allowed range otherwise."""
    for section_name, name, minimum, maximum in (*DURATIONS, *OPTIONAL_DURATIONS):
        section = getattr(config, section_name)
        if getattr(section, name) is None:  # an optional duration left unset
            continue
        try:
            seconds = parse_duration(
                getattr(section, name), f"[{section_name}] {name}", minimum=minimum, maximum=maximum
            )
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
        setattr(section, name, seconds)
    for section_name, name, low, high, low_open, high_open, unit in RANGES:
        value = getattr(getattr(config, section_name), name)
        if value is None:
            continue
        inside = (
            isinstance(value, int | float)
            and math.isfinite(value)
            and (low < value if low_open else low <= value)
            and (value < high if high_open else value <= high)
        )
        if not inside:
            left, right = ("(" if low_open else "["), (")" if high_open else "]")
            raise ConfigError(
                f"{origin}: [{section_name}] {name} = {short_repr(value)}: must be in "
                f"{left}{_number(low)}, {_number(high)}{right}{unit}"
            )


def _number(value: float) -> str:
    """A range bound as the TOML a user would write: ``1_048_576``, ``0.0001``."""
    return f"{int(value):_}" if float(value).is_integer() else f"{value:g}"


def _where(path: str) -> str:
    """``$.splitting.alpha`` -> ``[splitting] alpha``."""
    parts = [p for p in path.removeprefix("$").split(".") if p]
    if not parts:
        return "the file"
    if len(parts) == 1:
        return f"[{parts[0]}]"
    return f"[{parts[0]}] {'.'.join(parts[1:])}"


def _explain(exc: msgspec.ValidationError, origin: str) -> ConfigError:
    text = str(exc)
    message, _, path = text.partition(" - at `")
    where = _where(path.rstrip("`")) if path else "the file"
    unknown = re.search(r"unknown field `([^`]+)`", message)
    if unknown:
        return ConfigError(
            f"{origin}: {where}: unknown key {unknown.group(1)!r} (check the spelling; see "
            "autosplit.pipeline.config for the keys)"
        )
    missing = re.search(r"missing required field `([^`]+)`", message)
    if missing:
        section = f"[{missing.group(1)}]" if where == "the file" else where
        return ConfigError(f"{origin}: {section}: missing required key {missing.group(1)!r}")
    return ConfigError(f"{origin}: {where}: {message}")


def load_config(path: str | os.PathLike[str]) -> TaskConfig:
    """Read and validate a task TOML file; relative paths are resolved against the file's directory."""
    path = Path(path)
    origin = str(path)
    text = read_input_text(path, ConfigError, "task TOML", missing=f"{origin}: no such task file")
    try:
        raw = tomllib.loads(text)
    except RecursionError:
        raise ConfigError(f"{origin}: not valid TOML (nested too deeply to read)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({one_line(str(exc))})") from None
    except ValueError:  # an integer with more digits than Python converts
        raise ConfigError(f"{origin}: not valid TOML (a number has too many digits)") from None
    return config_from_dict(raw, base=path.parent.resolve(), origin=origin)


def config_from_dict(raw: dict[str, Any], *, base: Path, origin: str = "task configuration") -> TaskConfig:
    """Validate a configuration given as nested dicts (the TOML's structure); paths relative to ``base``."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{origin}: a task configuration is a table of sections, got {type(raw).__name__}")
    try:
        config = msgspec.convert(raw, type=TaskConfig)
    except msgspec.ValidationError as exc:
        raise _explain(exc, origin) from None
    except RecursionError:
        raise ConfigError(f"{origin}: a value is nested too deeply") from None
    return _finish(config, base, origin)


def _finish(config: TaskConfig, base: Path, origin: str) -> TaskConfig:
    if not NAME_PATTERN.match(config.task.name):
        raise ConfigError(
            f"{origin}: [task] name = {config.task.name!r}: use 1-64 letters, digits, '-' or '_' "
            "(it names directories and DAG nodes)"
        )
    code = config.code
    if bool(code.callable) == bool(code.executable):
        raise ConfigError(
            f"{origin}: [code]: give exactly one of callable = 'module:function' or executable = [...]"
        )
    if code.callable and not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", code.callable):
        raise ConfigError(f"{origin}: [code] callable = {code.callable!r}: expected 'module:function'")
    _check_ranges(config, origin)
    if config.probe_seconds >= config.target_seconds:
        raise ConfigError(
            f"{origin}: [splitting] probe_seconds must be shorter than target_runtime "
            f"({config.probe_seconds:.0f} s >= {config.target_seconds:.0f} s)"
        )

    def resolve(value: str) -> str:
        expanded = os.path.expanduser(value)
        return expanded if os.path.isabs(expanded) else str(base / expanded)

    config.task.workdir = resolve(config.task.workdir)
    sources = config.dataset.source if isinstance(config.dataset.source, list) else [config.dataset.source]
    resolved = [resolve(s) for s in sources]
    config.dataset.source = resolved if isinstance(config.dataset.source, list) else resolved[0]
    mask = config.dataset.mask
    if mask and (mask.strip().endswith((".json", ".txt")) or os.sep in mask):
        config.dataset.mask = resolve(mask)
    if config.dataset.features:
        config.dataset.features = resolve(config.dataset.features)
    config.code.path = resolve(config.code.path)
    backend = config.backend
    if os.sep in backend.job_python and not os.path.isabs(os.path.expanduser(backend.job_python)):
        backend.job_python = resolve(backend.job_python)
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$", backend.site_attribute):
        raise ConfigError(
            f"{origin}: [backend] site_attribute = {backend.site_attribute!r}: not a ClassAd name"
        )
    for key in ("sites_whitelist", "sites_blacklist"):
        for name in getattr(backend, key):
            if not (isinstance(name, str) and re.match(r"^[A-Za-z0-9_.-]{1,100}$", name)):
                raise ConfigError(f"{origin}: [backend] {key}: {short_repr(name)} is not a site name")
    if any(ch.isspace() or ch in "\"'" for ch in backend.job_python) or not backend.job_python:
        raise ConfigError(
            f"{origin}: [backend] job_python = {backend.job_python!r}: a path without blanks or quotes"
        )
    if code.executable:
        first = code.executable[0]
        if os.sep in first and not os.path.isabs(first):
            code.executable[0] = resolve(first)
    if any(ch.isspace() for ch in config.task.workdir):
        raise ConfigError(
            f"{origin}: [task] workdir {config.task.workdir!r} contains whitespace; DAGMan splits script "
            "arguments on blanks, so choose a path without spaces"
        )
    return config


def dump_config(config: TaskConfig) -> str:
    """The resolved configuration as TOML-like JSON text (stored in the task directory)."""
    return msgspec.json.format(msgspec.json.encode(config), indent=2).decode()


def read_resolved(path: str | os.PathLike[str]) -> TaskConfig:
    """Read the resolved configuration stored in a task directory by :func:`dump_config`."""
    data = read_input_bytes(path, ConfigError, "stored task configuration")
    try:
        return msgspec.json.decode(data, type=TaskConfig)
    except (msgspec.DecodeError, RecursionError) as exc:
        reason = one_line(str(exc)) if isinstance(exc, msgspec.DecodeError) else "nested too deeply"
        raise ConfigError(f"{path}: cannot read the task's stored configuration ({reason})") from None
