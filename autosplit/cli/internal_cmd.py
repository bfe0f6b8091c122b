"""Commands DAG scripts call: ``predag``, ``postjob``, ``finalize`` (documented, but not for people)."""

from __future__ import annotations

import sys

import click


@click.command("predag")
@click.argument("task")
@click.argument("stage")
def predag(task: str, stage: str) -> None:
    """PRE script of a stage's sub-DAG node: plan STAGE (processing, tail-K, resubmit-K).

    Exit 0 when the stage DAG is written, 99 (PRE_SKIP) when nothing is pending, 1 on failure.
    """
    from autosplit.pipeline.predag import main

    sys.exit(main(task, stage))


@click.command("postjob")
@click.argument("task")
@click.argument("node")
@click.argument("return_code")
@click.argument("retry")
@click.argument("max_retries")
def postjob(task: str, node: str, return_code: str, retry: str, max_retries: str) -> None:
    """POST script of a job node: account for one attempt in the ledger.

    Exit 0 accounted for, 1 retry the job, 2 fatal, 3 abort the DAG, 4 defer (stage-out in flight).
    """
    from autosplit.pipeline.postjob import main

    sys.exit(main(task, node, return_code, retry, max_retries))


@click.command("finalize")
@click.argument("task")
@click.argument("dag_status", default="0")
def finalize(task: str, dag_status: str) -> None:
    """PRE script of the FINAL node: quarantine what is left, record the task's final state."""
    from autosplit.pipeline.finalize import main

    sys.exit(main(task, dag_status))


COMMANDS = [predag, postjob, finalize]
