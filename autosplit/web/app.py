"""The monitor's web application: the JSON API, the HTML pages and their static files, read-only."""

from __future__ import annotations

import os
from collections.abc import Iterable
from html import escape
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from autosplit import __version__
from autosplit.web import api, documents, pages
from autosplit.web.catalog import TaskCatalog

STATIC_DIR = Path(__file__).parent / "static"
#: Everything the pages load comes from this server (no CDN); scripts only from our static files.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)


def create_app(
    roots: Iterable[str | os.PathLike[str]] | TaskCatalog, *, refresh_seconds: float = 5.0
) -> FastAPI:
    """The monitor over the task directories under ``roots`` (or an existing catalog).

    ``refresh_seconds`` is how often a page of a running task updates itself.
    """
    catalog = roots if isinstance(roots, TaskCatalog) else TaskCatalog(roots)
    app = FastAPI(
        title="autosplit monitor",
        version=__version__,
        description="Read-only view of autosplit tasks: status, jobs, lumi reports, runtimes.",
        docs_url=None,  # the interactive docs load their code from a CDN; /openapi.json is served
        redoc_url=None,
    )
    app.state.catalog = catalog
    app.state.refresh_seconds = refresh_seconds
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.exception_handler(pages.PageNotFound)
    def page_not_found(request: Request, exc: pages.PageNotFound) -> HTMLResponse:
        return pages.not_found_page(request, exc.task_id)

    for error in documents.READ_ERRORS:
        app.add_exception_handler(error, _unreadable)

    @app.middleware("http")
    async def headers(request: Request, call_next) -> Response:
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        if not request.url.path.startswith("/static/"):
            response.headers["Cache-Control"] = "no-store"
        return response

    return app


def _unreadable(request: Request, exc: Exception) -> Response:
    """A task that cannot be read right now (being removed, damaged): 503, as JSON on the API."""
    detail = f"cannot read this task now: {exc}"
    if request.url.path.startswith(api.API_PREFIX):
        return JSONResponse({"detail": detail}, status_code=503)
    return HTMLResponse(f"<p>{escape(detail)}</p>", status_code=503)
