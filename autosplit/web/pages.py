"""The HTML pages: the task index and one page per task, rendered on the server with Jinja2.

Each page has a ``/live`` twin that renders only its changing part; ``static/monitor.js`` fetches it every
few seconds and swaps it in, until the task's state is final.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import jinja2
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from autosplit import __version__
from autosplit.web import views
from autosplit.web.api import catalog
from autosplit.web.catalog import CatalogEntry, TaskCatalog
from autosplit.web.format import FILTERS

#: Templates see a field the document lacks as empty (not an error), and the filters show it as '–'; the
#: view functions take optional fields with defaults too, so a page renders whatever the document holds.
TEMPLATES = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=jinja2.select_autoescape(),
        undefined=jinja2.ChainableUndefined,
    )
)
TEMPLATES.env.filters.update(FILTERS)
TEMPLATES.env.globals["version"] = __version__
TEMPLATES.env.globals["state_class"] = views.state_class

router = APIRouter(include_in_schema=False, default_response_class=HTMLResponse)


class PageNotFound(Exception):
    """A page asked for a task id this server does not know (rendered as a 404 page)."""

    def __init__(self, task_id: str) -> None:
        super().__init__(task_id)
        self.task_id = task_id


def page_entry(task_id: str, tasks: Annotated[TaskCatalog, Depends(catalog)]) -> CatalogEntry:
    entry = tasks.get(task_id)
    if entry is None:
        raise PageNotFound(task_id)
    return entry


Task = Annotated[CatalogEntry, Depends(page_entry)]


def _settings(request: Request) -> dict:
    """How often pages update: ``refresh_seconds`` for the script, whole seconds for ``<noscript>``."""
    seconds = request.app.state.refresh_seconds
    return {"refresh_seconds": seconds, "meta_refresh_seconds": max(1, math.ceil(seconds))}


@router.get("/")
def index(request: Request, tasks: Annotated[TaskCatalog, Depends(catalog)]) -> HTMLResponse:
    context = views.task_list(tasks.rescan()) | _settings(request)
    return TEMPLATES.TemplateResponse(request, "index.html", context)


@router.get("/live")
def index_live(request: Request, tasks: Annotated[TaskCatalog, Depends(catalog)]) -> HTMLResponse:
    context = views.task_list(tasks.rescan()) | _settings(request)
    return TEMPLATES.TemplateResponse(request, "_index_body.html", context)


@router.get("/tasks/{task_id}")
def task_page(request: Request, entry: Task) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "task.html", views.task_page(entry) | _settings(request))


@router.get("/tasks/{task_id}/live")
def task_live(request: Request, entry: Task) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "_task_body.html", views.task_page(entry) | _settings(request))


def not_found_page(request: Request, task_id: str) -> HTMLResponse:
    """The 404 page for an unknown task id."""
    return TEMPLATES.TemplateResponse(request, "not_found.html", {"task_id": task_id}, status_code=404)
