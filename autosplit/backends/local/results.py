"""What a DAG run returns: DAGMan's exit code, the DAG status and the final state of every node."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autosplit.backends.local.model import EXIT_OKAY, DagStatus, NodeStatus


@dataclass
class NodeResult:
    """Final state of one node."""

    name: str
    status: NodeStatus
    retries: int
    return_value: int
    details: str


@dataclass
class DagResult:
    """Outcome of :func:`run_dag`: DAGMan's exit code, DAG status and the state of every node."""

    dag: Path
    exit_code: int
    dag_status: DagStatus
    nodes: dict[str, NodeResult]
    rescue_file: Path | None = None
    recovered: bool = False
    elapsed: float = 0.0  # seconds
    stats: dict[str, float] = field(
        default_factory=dict
    )  # cycles, jobs_started, job_seconds, scripts_started

    @property
    def ok(self) -> bool:
        return self.exit_code == EXIT_OKAY

    def counts(self) -> dict[str, int]:
        """Number of nodes per final status name."""
        return dict(collections.Counter(n.status.name for n in self.nodes.values()))

    def to_dict(self) -> dict[str, Any]:
        return {
            "dag": str(self.dag),
            "exit_code": self.exit_code,
            "dag_status": self.dag_status.name,
            "rescue_file": str(self.rescue_file) if self.rescue_file else None,
            "recovered": self.recovered,
            "elapsed_s": round(self.elapsed, 3),
            "stats": self.stats,
            "counts": self.counts(),
            "nodes": {
                n.name: {
                    "status": n.status.name,
                    "retries": n.retries,
                    "return_value": n.return_value,
                    "details": n.details,
                }
                for n in self.nodes.values()
            },
        }
