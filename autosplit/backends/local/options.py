"""Settings of one run: :class:`RunOptions` (what the caller of ``run_dag`` passes) and :class:`Settings`
(those options merged with the DAG's CONFIG knobs and DAGMan's defaults, checked once before the run).

Which knobs a CONFIG file may set is decided by :mod:`autosplit.backends.local.dag_config`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autosplit.backends.local.errors import DagError
from autosplit.backends.local.model import Dag

_BOOL_TRUE = {"true", "yes", "1", "t", "y"}


@dataclass
class RunOptions:
    """Settings of one run. ``None`` means: the DAG's CONFIG file, else DAGMan's (or this executor's) default.

    Times are in seconds. ``poll_interval`` is how often the loop wakes without events (halt/remove files,
    ALWAYS-UPDATE status files); ``kill_grace`` the wait between ``kill_sig`` and SIGKILL when jobs are
    removed; ``defer_factor`` scales ``SCRIPT DEFER`` delays (tests use small values).
    """

    max_jobs: int | None = None
    max_pre: int | None = None
    max_post: int | None = None
    workdir: Path | None = None
    config: Mapping[str, str] = field(default_factory=dict)
    poll_interval: float = 1.0
    kill_grace: float = 10.0
    defer_factor: float = 1.0
    submit_retry_delay: float = 1.0
    auto_rescue: bool | None = None
    rescue_file: Path | None = None
    startup_cycle_detect: bool | None = None
    priority: int = 0
    handle_signals: bool | None = None


@dataclass(frozen=True)
class Settings:
    """The effective DAGMan knobs of one run (0 for a ``max_*`` throttle means unlimited)."""

    max_jobs: int  # DAGMAN_MAX_JOBS_SUBMITTED
    max_pre: int  # DAGMAN_MAX_PRE_SCRIPTS
    max_post: int  # DAGMAN_MAX_POST_SCRIPTS
    always_run_post: bool  # DAGMAN_ALWAYS_RUN_POST
    max_submit_attempts: int  # DAGMAN_MAX_SUBMIT_ATTEMPTS
    submit_delay: float  # DAGMAN_SUBMIT_DELAY (seconds between two submits)
    prohibit_multi: bool  # DAGMAN_PROHIBIT_MULTI_JOBS
    reset_retries: bool  # DAGMAN_RESET_RETRIES_UPON_RESCUE
    max_rescue: int  # DAGMAN_MAX_RESCUE_NUM
    auto_rescue: bool  # DAGMAN_AUTO_RESCUE
    retry_first: bool  # DAGMAN_RETRY_NODE_FIRST
    depth_first: bool  # DAGMAN_SUBMIT_DEPTH_FIRST
    append_vars: bool  # DAGMAN_DEFAULT_APPEND_VARS
    cycle_detect: bool  # DAGMAN_STARTUP_CYCLE_DETECT
    debug_test: bool  # DAGMAN_DEBUG contains D_TEST

    @classmethod
    def resolve(cls, dag: Dag, opts: RunOptions) -> Settings:
        """Options first, then the DAG's CONFIG (overridden by ``opts.config``), then the defaults.

        Raises :class:`DagError` for a knob that is not a number where one is needed, or a negative throttle.
        """
        cfg = dict(dag.config)
        cfg.update({k.upper(): str(v) for k, v in opts.config.items()})

        def number(key: str, default: int) -> int:
            if key not in cfg:
                return default
            try:
                return int(cfg[key])
            except ValueError:
                raise DagError(f"{key} = {cfg[key]!r}: must be an integer") from None

        def flag(key: str, default: bool) -> bool:
            return _truthy(cfg[key]) if key in cfg else default

        o = opts
        max_jobs = (
            o.max_jobs if o.max_jobs is not None else number("DAGMAN_MAX_JOBS_SUBMITTED", os.cpu_count() or 1)
        )
        max_pre = o.max_pre if o.max_pre is not None else number("DAGMAN_MAX_PRE_SCRIPTS", 20)
        max_post = o.max_post if o.max_post is not None else number("DAGMAN_MAX_POST_SCRIPTS", 20)
        for name, value in (("max_jobs", max_jobs), ("max_pre", max_pre), ("max_post", max_post)):
            if value < 0:
                raise DagError(f"{name} must be >= 0 (0 = unlimited), got {value}")
        always_run_post = flag("DAGMAN_ALWAYS_RUN_POST", False)
        max_submit_attempts = max(number("DAGMAN_MAX_SUBMIT_ATTEMPTS", 6), 1)
        submit_delay = float(number("DAGMAN_SUBMIT_DELAY", 0))
        prohibit_multi = flag("DAGMAN_PROHIBIT_MULTI_JOBS", False)
        reset_retries = flag("DAGMAN_RESET_RETRIES_UPON_RESCUE", True)
        max_rescue = number("DAGMAN_MAX_RESCUE_NUM", 100)
        auto_rescue = o.auto_rescue if o.auto_rescue is not None else flag("DAGMAN_AUTO_RESCUE", True)
        if o.startup_cycle_detect is not None:
            cycle_detect = o.startup_cycle_detect
        else:
            cycle_detect = flag("DAGMAN_STARTUP_CYCLE_DETECT", True)
        return cls(
            max_jobs=max_jobs,
            max_pre=max_pre,
            max_post=max_post,
            always_run_post=always_run_post,
            max_submit_attempts=max_submit_attempts,
            submit_delay=submit_delay,
            prohibit_multi=prohibit_multi,
            reset_retries=reset_retries,
            max_rescue=max_rescue,
            auto_rescue=auto_rescue,
            retry_first=flag("DAGMAN_RETRY_NODE_FIRST", False),
            depth_first=flag("DAGMAN_SUBMIT_DEPTH_FIRST", False),
            append_vars=flag("DAGMAN_DEFAULT_APPEND_VARS", False),
            cycle_detect=cycle_detect,
            debug_test="D_TEST" in cfg.get("DAGMAN_DEBUG", "").upper(),
        )


def _truthy(value: str) -> bool:
    return value.strip().lower() in _BOOL_TRUE
