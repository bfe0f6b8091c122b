"""``autosplit serve``: a read-only web monitor of tasks — a JSON API and a page per task.

Layout (one job per module):

* :mod:`~autosplit.web.catalog` — which task directories are served, addressed by id, never by path;
* :mod:`~autosplit.web.readonly` — a task directory whose ledger opens read-only (safe on running tasks);
* :mod:`~autosplit.web.documents` — the JSON documents, from the code ``status`` and ``report`` use;
* :mod:`~autosplit.web.schemas` — their shapes, for the OpenAPI description;
* :mod:`~autosplit.web.api` — the ``/api/v1`` routes; :mod:`~autosplit.web.pages` — the HTML pages;
* :mod:`~autosplit.web.views`, :mod:`~autosplit.web.plots`, :mod:`~autosplit.web.format` — what the pages
  show: view data, server-side SVG plots, number formatting;
* :mod:`~autosplit.web.app` — the application; :mod:`~autosplit.web.server` — binding and serving.

Needs the ``web`` extra (``pip install 'autosplit[web]'``).
"""

from __future__ import annotations

from autosplit.web.app import create_app
from autosplit.web.catalog import TaskCatalog

__all__ = ["TaskCatalog", "create_app"]
