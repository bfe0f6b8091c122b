"""The versioned JSON API (``/api/v1``): the task list, and per task its status, jobs, lumi reports,
runtimes and progress over time. Read-only: every route is a GET."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from autosplit.web import documents, schemas
from autosplit.web.catalog import CatalogEntry, TaskCatalog

API_PREFIX = "/api/v1"
NOT_FOUND = {404: {"model": schemas.Problem, "description": "no task with this id on this server"}}

router = APIRouter(prefix=API_PREFIX, tags=["tasks"])


def catalog(request: Request) -> TaskCatalog:
    """The server's task index (made at start from the directories given)."""
    return request.app.state.catalog


def task_entry(task_id: str, tasks: Annotated[TaskCatalog, Depends(catalog)]) -> CatalogEntry:
    """The task with this id in the index, or 404: ids are looked up, never used as paths."""
    entry = tasks.get(task_id)
    if entry is None:
        raise HTTPException(404, f"no task {task_id!r} on this server; GET {API_PREFIX}/tasks lists them")
    return entry


Task = Annotated[CatalogEntry, Depends(task_entry)]


@router.get("/tasks", response_model=schemas.TaskList, summary="List the tasks")
def list_tasks(tasks: Annotated[TaskCatalog, Depends(catalog)]) -> dict[str, Any]:
    """Every task under the server's directories (rescanned), with its state and progress."""
    entries = tasks.rescan()
    return {
        "roots": [str(r) for r in tasks.roots],
        "tasks": [documents.task_entry(e.id, e.task) for e in entries],
    }


@router.get("/tasks/{task_id}", responses=NOT_FOUND, summary="A task's status")
def task_status(entry: Task) -> dict[str, Any]:
    """The task's status document: the same as ``autosplit status TASK --json`` prints (stages and job
    states, units done/pending/quarantined, estimates, sites, top errors, remaining time)."""
    return documents.status_document(entry.task)


@router.get(
    "/tasks/{task_id}/jobs", response_model=schemas.JobsPage, responses=NOT_FOUND, summary="A task's jobs"
)
def task_jobs(
    entry: Task,
    stage: Annotated[
        str | None, Query(description="only jobs of this stage, e.g. processing, tail-1")
    ] = None,
    state: Annotated[
        str | None, Query(description="only jobs in this display state, e.g. done, running")
    ] = None,
    offset: Annotated[int, Query(ge=0, description="jobs to skip")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000, description="jobs per page")] = 100,
) -> dict[str, Any]:
    """The task's jobs in plan order with their limits and last attempt, filtered and paged."""
    return documents.jobs_page(entry.task, stage=stage, state=state, offset=offset, limit=limit)


@router.get(
    "/tasks/{task_id}/lumis", response_model=schemas.LumiReports, responses=NOT_FOUND, summary="Lumi reports"
)
def task_lumis(entry: Task) -> dict[str, Any]:
    """processedLumis, notFinishedLumis and quarantinedLumis as ``autosplit report`` computes them."""
    return documents.lumi_reports(entry.task)


@router.get(
    "/tasks/{task_id}/runtimes", response_model=schemas.Runtimes, responses=NOT_FOUND, summary="Job runtimes"
)
def task_runtimes(entry: Task) -> dict[str, Any]:
    """Per job the plan's predicted runtime and limits, per attempt the measured wall and CPU seconds."""
    return documents.runtimes(entry.task)


@router.get(
    "/tasks/{task_id}/timeline",
    response_model=schemas.Timeline,
    responses=NOT_FOUND,
    summary="Units over time",
)
def task_timeline(entry: Task) -> dict[str, Any]:
    """Cumulative units done after each accepted job report, from the task's creation."""
    return documents.timeline(entry.task)
