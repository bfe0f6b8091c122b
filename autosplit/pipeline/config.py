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
    # probes = 20                     # probe jobs per round (default: one per slot, at most 500, else 20):
    #                                 # while probes run the other slots would idle anyway
    probe_seconds = "15m"
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
    max_jobs = 2                      # local: jobs at once (default: the number of cores)
    site = "local"
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec

from autosplit.errors import AutosplitError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_DURATION = re.compile(
    r"^\s*(?:(\d+(?:\.\d+)?)\s*h)?\s*(?:(\d+(?:\.\d+)?)\s*m)?\s*(?:(\d+(?:\.\d+)?)\s*s)?\s*$"
)


class ConfigError(AutosplitError, ValueError):
    """The task configuration is invalid; the message names the key and how to fix it."""


def parse_duration(value: Any, key: str) -> float:
    """Seconds from a number or a string like ``"8h"``, ``"90m"``, ``"2h30m"``, ``"45s"``."""
    if isinstance(value, bool):
        raise ConfigError(f"{key} = {value!r}: expected seconds or a duration like '8h' or '90m'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif (
        isinstance(value, str) and value.strip() and (match := _DURATION.match(value)) and any(match.groups())
    ):
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    else:
        raise ConfigError(f"{key} = {value!r}: expected seconds or a duration like '8h', '90m', '2h30m'")
    if not seconds > 0:
        raise ConfigError(f"{key} = {value!r}: must be longer than 0 seconds")
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
    alpha: Annotated[float, msgspec.Meta(gt=0, lt=0.5)] = 0.05
    max_tails: Annotated[int, msgspec.Meta(ge=0, le=20)] = 3
    probes: Annotated[int, msgspec.Meta(ge=1, le=10_000)] | None = None
    probe_seconds: float | str = "15m"
    probe_fraction: Annotated[float, msgspec.Meta(gt=0, le=0.5)] = 0.02
    rel_precision: Annotated[float, msgspec.Meta(gt=0, lt=1)] = 0.10
    max_output_bytes: Annotated[int, msgspec.Meta(gt=0)] | None = None
    max_files_per_job: Annotated[int, msgspec.Meta(gt=0)] | None = None
    slots: Annotated[int, msgspec.Meta(gt=0)] | None = None


class LimitsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    retries: Annotated[int, msgspec.Meta(ge=0, le=10)] = 1
    max_unit_failures: Annotated[int, msgspec.Meta(ge=1, le=10)] = 2
    memory_mb: Annotated[int, msgspec.Meta(gt=0)] = 2000
    grace_seconds: float | str = 60.0
    abort_fraction: Annotated[float, msgspec.Meta(gt=0, le=1)] = 0.9
    abort_min_jobs: Annotated[int, msgspec.Meta(ge=1)] = 10


class OutputSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    destination: str = "outputs"
    stage_out: Literal["direct", "aso"] = "direct"
    temp_root: str = "site-temp"
    temp_budget_bytes: Annotated[int, msgspec.Meta(gt=0)] | None = None
    transfer_timeout: float | str = "6h"


class BackendSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["local", "condor"] = "local"
    max_jobs: Annotated[int, msgspec.Meta(gt=0)] | None = None
    site: str = "local"


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
        return float(self.splitting.probe_seconds)

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
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{origin}: no such task file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin}: not valid TOML ({exc})") from None
    return config_from_dict(raw, base=path.parent.resolve(), origin=origin)


def config_from_dict(raw: dict[str, Any], *, base: Path, origin: str = "task configuration") -> TaskConfig:
    """Validate a configuration given as nested dicts (the TOML's structure); paths relative to ``base``."""
    try:
        config = msgspec.convert(raw, type=TaskConfig)
    except msgspec.ValidationError as exc:
        raise _explain(exc, origin) from None
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
    durations = (
        (config.splitting, "target_runtime", "[splitting] target_runtime"),
        (config.splitting, "probe_seconds", "[splitting] probe_seconds"),
        (config.limits, "grace_seconds", "[limits] grace_seconds"),
        (config.output, "transfer_timeout", "[output] transfer_timeout"),
    )
    for section, name, key in durations:
        try:
            setattr(section, name, parse_duration(getattr(section, name), key))
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from None
    if config.splitting.probe_seconds >= config.splitting.target_runtime:
        raise ConfigError(
            f"{origin}: [splitting] probe_seconds must be shorter than target_runtime "
            f"({config.splitting.probe_seconds:.0f} s >= {config.splitting.target_runtime:.0f} s)"
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
    try:
        return msgspec.json.decode(Path(path).read_bytes(), type=TaskConfig)
    except (OSError, msgspec.DecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the task's stored configuration ({exc})") from None
