"""Local DAGMan-compatible executor: run HTCondor DAG files on this machine with DAGMan's semantics.

Public API::

    from autosplit.backends.local import run_dag, request_halt, request_remove, read_node_status

    result = run_dag("task.dag", max_jobs=4)        # blocks; result.exit_code is DAGMan's exit status
    result.nodes["probe-1"].status                  # NodeStatus.DONE, ...
    request_halt("task.dag"); request_resume("task.dag"); request_remove("task.dag")   # from elsewhere
    report = read_node_status("task.status")        # NODE_STATUS_FILE, also one written by real DAGMan

``python -m autosplit.backends.local run task.dag`` runs it as its own process (that is how SUBDAG nodes
run); ``autosplit dagman run|rm|halt|resume|status`` is the command line.

Where this executor deliberately differs from condor_dagman:

* cycles are rejected before anything runs (DAGMan's ``DAGMAN_STARTUP_CYCLE_DETECT``); pass
  ``startup_cycle_detect=False`` for DAGMan's default (the DAG runs until it stalls, then ends as a cycle);
* ``max_jobs`` defaults to the number of cores (DAGMan: unlimited), a local "pool";
* the halt file is level-triggered: deleting ``<dag>.halt`` before the DAG has drained resumes it (as
  DAGMan before 25.x; ``request_resume``);
* after a crash, nodes that were running are re-run from their PRE script (a node whose job had finished
  re-runs only its POST script); DAGMan re-attaches to jobs still in the schedd's queue. Finished nodes
  are never re-run;
* SIGTERM/SIGINT act like ``condor_hold`` of the DAGMan job (stop, exit 3, resume on the next run) and
  SIGUSR1 like ``condor_rm`` (exit 2, rescue DAG);
* local jobs are never idle or held: submit keys that steer a pool are accepted without effect, keys
  whose meaning cannot be honoured (``periodic_*``, ``on_exit_*``, ``hold``, other universes) refuse
  the node's submission with the key named.

Modules: ``parser`` (DAG language: ``dag_lines`` reads lines, ``dag_commands`` gives each command its
meaning, ``dag_config`` reads CONFIG files), ``submit`` (submit descriptions), ``executor`` (the scheduler
loop; its parts: ``state``, ``throttle``, ``launcher``, ``exits``, ``shutdown``, ``control_requests``,
``startup``, ``node_logs``, ``state_files``, ``options``), ``launch`` (job processes, sub-DAG command
lines), ``statusfile``/``logs``/``rescue`` (DAGMan's files), ``journal`` (lock and crash-safe progress
record), ``processes`` (child processes), ``control`` (halt/remove requests), ``results`` (what a run
returns).
"""

from autosplit.backends.local.control import request_halt, request_remove, request_resume, running_pid
from autosplit.backends.local.errors import DagError, DagLockedError, DagParseError, SubmitError
from autosplit.backends.local.executor import run_dag
from autosplit.backends.local.model import (
    EXIT_ABORT,
    EXIT_ERROR,
    EXIT_OKAY,
    EXIT_RESTART,
    Dag,
    DagStatus,
    Node,
    NodeStatus,
)
from autosplit.backends.local.parser import find_cycle, parse_dag
from autosplit.backends.local.results import DagResult, NodeResult
from autosplit.backends.local.statusfile import NodeStatusReport, read_node_status

__all__ = [
    "EXIT_ABORT",
    "EXIT_ERROR",
    "EXIT_OKAY",
    "EXIT_RESTART",
    "Dag",
    "DagError",
    "DagLockedError",
    "DagParseError",
    "DagResult",
    "DagStatus",
    "Node",
    "NodeResult",
    "NodeStatus",
    "NodeStatusReport",
    "SubmitError",
    "find_cycle",
    "parse_dag",
    "read_node_status",
    "request_halt",
    "request_remove",
    "request_resume",
    "run_dag",
    "running_pid",
]
