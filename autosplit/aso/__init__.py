"""Asynchronous stage-out (ASO): jobs leave outputs in a site's temporary area, an agent moves them.

Pieces (one job each):

* :mod:`~.jobside` -- ``stage_to_temp`` and ``register_outputs`` (job wrapper / postjob), temp-space budget;
* :mod:`~.db` -- the SQLite transfer database and its state machine (``TransferDB``);
* :mod:`~.agent` -- the transfer agent (leases, thread pool, retries, flow control);
* :mod:`~.transports` -- the ``Transport`` interface and the built-in POSIX copy;
* :mod:`~.outcome` -- what the postjob asks (``job_transfer_outcome``) and ``kill_job_transfers``;
* :mod:`~.status` -- ``status_summary`` (``autosplit aso status``) and ``task_progress``;
* :mod:`~.flow`, :mod:`~.checksums`, :mod:`~.paths` -- flow control, adler32/sha256, path safety;
* :mod:`~.process` -- start/stop an agent process (local backend);
* :mod:`~.cli` -- the ``autosplit aso`` click group (``command_group``, loaded on first use; also
  ``python -m autosplit.aso``).

Code outside this package imports from here only (the submodules are internal).

Typical use::

    staged = stage_to_temp({"out.root": "user/t1/out_7.root"}, site_temp, task="t1", job_id="job-7", attempt=0)
    register_outputs(db_path, "t1", "job-7", 0, staged, temp_root=site_temp, destination_root=dest)
    ... agent: ``autosplit aso run <db>`` ...
    job_transfer_outcome(db_path, "t1", "job-7", 0).exit_code   # 4 while in flight, then 0 / 1 / 2
"""

from typing import TYPE_CHECKING, Any

from autosplit.aso.agent import Agent, AgentConfig, AgentStats, run_agent
from autosplit.aso.checksums import Checksum, file_checksum
from autosplit.aso.db import TransferDB
from autosplit.aso.errors import (
    AsoError,
    RegistrationError,
    TransferDBError,
    TransferError,
    UnsafePathError,
)
from autosplit.aso.flow import DestinationLimit, FlowLimits, RetryPolicy
from autosplit.aso.jobside import (
    Registration,
    StagedFile,
    can_accept_temp,
    register_outputs,
    site_temp_usage,
    stage_to_temp,
)
from autosplit.aso.outcome import (
    POSTJOB_DEFER,
    POSTJOB_FATAL,
    POSTJOB_OK,
    POSTJOB_RETRY,
    OutcomeKind,
    TransferOutcome,
    job_transfer_outcome,
    kill_job_transfers,
)
from autosplit.aso.process import agent_command, spawn_agent, stop_agent
from autosplit.aso.records import State, Transfer, transfer_id
from autosplit.aso.status import AsoStatus, TaskProgress, status_summary, task_progress
from autosplit.aso.transports import Location, PosixTransport, Transport, register_transport

if TYPE_CHECKING:
    from autosplit.aso.cli import aso as command_group

#: File name of the per-task transfer database inside a task directory.
DEFAULT_DB_NAME = "transfers.sqlite"

__all__ = [
    "DEFAULT_DB_NAME",
    "POSTJOB_DEFER",
    "POSTJOB_FATAL",
    "POSTJOB_OK",
    "POSTJOB_RETRY",
    "Agent",
    "AgentConfig",
    "AgentStats",
    "AsoError",
    "AsoStatus",
    "Checksum",
    "DestinationLimit",
    "FlowLimits",
    "Location",
    "OutcomeKind",
    "PosixTransport",
    "RegistrationError",
    "Registration",
    "RetryPolicy",
    "StagedFile",
    "State",
    "TaskProgress",
    "Transfer",
    "TransferDB",
    "TransferDBError",
    "TransferError",
    "TransferOutcome",
    "Transport",
    "UnsafePathError",
    "agent_command",
    "can_accept_temp",
    "command_group",
    "file_checksum",
    "job_transfer_outcome",
    "kill_job_transfers",
    "register_outputs",
    "register_transport",
    "run_agent",
    "site_temp_usage",
    "spawn_agent",
    "stage_to_temp",
    "status_summary",
    "stop_agent",
    "task_progress",
    "transfer_id",
]


def __getattr__(name: str) -> Any:
    # ``command_group`` (the ``autosplit aso`` click group) is loaded on first use: importing the subsystem
    # (job wrapper, postjob) need not load click and rich.
    if name == "command_group":
        from autosplit.aso.cli import aso

        return aso
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
