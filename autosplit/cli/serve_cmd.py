"""``autosplit serve``: watch tasks in a browser (a read-only web monitor with a JSON API)."""

from __future__ import annotations

from pathlib import Path

import click

from autosplit.errors import AutosplitError

DEFAULT_TASKS_DIR = "autosplit-tasks"


def _task_roots(paths: tuple[str, ...]) -> list[Path]:
    """The directories to serve: each given path (a task TOML stands for its task directory)."""
    roots = []
    for given in paths or (DEFAULT_TASKS_DIR,):
        path = Path(given)
        if path.is_file() and path.suffix == ".toml":
            from autosplit.pipeline.config import load_config

            config = load_config(path)
            path = Path(config.task.workdir) / config.task.name
        if not path.is_dir():
            hint = " (the default; name task directories, or run from where they are)" if not paths else ""
            raise AutosplitError(f"{given}: no such directory{hint}")
        roots.append(path.resolve())
    return roots


@click.command("serve")
@click.argument("tasks_dirs", nargs=-1, metavar="[TASKS_DIR]...")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8080, show_default=True, help="Port (0: any free port)."
)
@click.option(
    "--refresh",
    type=click.FloatRange(min=0.5),
    default=5.0,
    show_default=True,
    help="Seconds between updates of a running task's page.",
)
def serve_command(tasks_dirs: tuple[str, ...], host: str, port: int, refresh: float) -> None:
    """Watch tasks in a browser: a read-only web page per task and a JSON API.

    Each TASKS_DIR is a task directory, a directory holding task directories (like the
    [task] workdir they are created in; tasks created there later appear too), or a task TOML file.
    Default: ./autosplit-tasks.

    Pages: / lists the tasks; /tasks/ID shows stages and job states, units done/pending/quarantined,
    the time left, the scheduler's estimates (seconds per event, overhead, jobs at once), sites, top
    errors and plots of job runtimes and progress, and updates itself while the task runs. API: /api/v1/tasks, /api/v1/tasks/ID (= 'autosplit status --json'), .../jobs,
    .../lumis, .../runtimes, .../timeline; described at /openapi.json.

    It only reads the task directories, and listens on this machine only (127.0.0.1) unless --host
    says otherwise. It has no authentication: anyone who can reach the address sees the tasks.
    """
    try:
        from autosplit.web import create_app
        from autosplit.web.server import bind, is_loopback, serve, url_of
    except ImportError as exc:
        raise AutosplitError(
            f"autosplit serve needs the web extra ({exc.name} is missing): pip install 'autosplit[web]'"
        ) from None

    roots = _task_roots(tasks_dirs)
    app = create_app(roots, refresh_seconds=refresh)
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise AutosplitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    n_tasks = len(app.state.catalog.entries())
    click.echo(f"autosplit monitor: {url_of(sock)}", nl=True)
    click.echo(
        f"serving {n_tasks} task(s) from {', '.join(str(r) for r in roots)} (read-only); Ctrl-C stops it",
        err=True,
    )
    if not is_loopback(host):
        click.echo(
            f"autosplit: warning: listening on {host}, reachable from other machines; the monitor has no "
            "authentication, so anyone who can reach it can see these tasks",
            err=True,
        )
    with sock:
        serve(app, sock)
