"""``autosplit dagman ...``: run HTCondor DAG files on this machine and control running ones.

``run`` exits with DAGMan's exit status (0 success, 1 failure or bad DAG file, 2 removed, 3 stopped for a
restart, or an ABORT-DAG-ON RETURN value), so scripts can treat it like ``condor_dagman``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from autosplit.backends.local import (
    DagError,
    parse_dag,
    read_node_status,
    request_halt,
    request_remove,
    request_resume,
    run_dag,
    running_pid,
)
from autosplit.cli.errors import OneLineErrors
from autosplit.cli.output import console, echo_json, human_seconds, key_value_table

STATUS_NAMES = ["NOT_READY", "READY", "PRERUN", "SUBMITTED", "POSTRUN", "DONE", "ERROR", "FUTILE"]


@click.group(cls=OneLineErrors)
def dagman() -> None:
    """Run DAG files with the embedded DAGMan-compatible executor, and halt, resume or remove them.

    The executor follows HTCondor DAGMan: PRE/POST scripts with DEFER, RETRY [UNLESS-EXIT], ABORT-DAG-ON,
    PRE_SKIP, VARS, PRIORITY, CATEGORY/MAXJOBS, FINAL, SUBDAG EXTERNAL, SPLICE, NODE_STATUS_FILE,
    JOBSTATE_LOG, rescue DAGs. Anything it does not support is refused with the file, line and keyword.
    """


def _config_items(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        if "=" not in item:
            raise click.BadParameter(f"{item!r} is not KNOB=VALUE", param_hint="--config")
        key, value = item.split("=", 1)
        out[key.strip()] = value.strip()
    return out


@dagman.command("run")
@click.argument("dag_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--max-jobs",
    type=click.IntRange(min=0),
    default=None,
    help="Node jobs running at once (default: the DAG's CONFIG, else the number of cores; 0 = no limit).",
)
@click.option(
    "--max-pre",
    type=click.IntRange(min=0),
    default=None,
    help="PRE scripts running at once (default 20; 0 = no limit).",
)
@click.option(
    "--max-post",
    type=click.IntRange(min=0),
    default=None,
    help="POST scripts running at once (default 20; 0 = no limit).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory relative paths in the DAG refer to (default: the DAG file's directory).",
)
@click.option(
    "--config",
    "config_items",
    multiple=True,
    metavar="KNOB=VALUE",
    help="DAGMan configuration knob, e.g. DAGMAN_ALWAYS_RUN_POST=True (repeatable).",
)
@click.option("--no-auto-rescue", is_flag=True, help="Do not apply the newest rescue DAG.")
@click.option(
    "--rescue-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Apply this rescue DAG instead of the newest one.",
)
@click.option(
    "--allow-cycles",
    is_flag=True,
    help="Do not reject cycles before running (DAGMan's default: the DAG then ends as a cycle).",
)
@click.option(
    "--poll-interval",
    type=click.FloatRange(min=0.001),
    default=1.0,
    show_default=True,
    help="Seconds between checks of the halt/remove files and status-file rewrites.",
)
@click.option(
    "--kill-grace",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds between SIGTERM and SIGKILL when jobs are removed.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def run(
    ctx: click.Context,
    dag_file: Path,
    max_jobs: int | None,
    max_pre: int | None,
    max_post: int | None,
    workdir: Path | None,
    config_items: tuple[str, ...],
    no_auto_rescue: bool,
    rescue_file: Path | None,
    allow_cycles: bool,
    poll_interval: float,
    kill_grace: float,
    as_json: bool,
) -> None:
    """Run DAG_FILE on this machine and exit with DAGMan's exit status.

    Nodes run concurrently (up to --max-jobs). If the DAG was interrupted (killed, or stopped with
    Ctrl-C / SIGTERM, exit 3) running it again resumes without re-running finished nodes; after a failure
    (exit 1) running it again applies the rescue DAG. While it runs, `autosplit dagman halt|resume|rm`
    control it from another shell.
    """
    try:
        result = run_dag(
            dag_file,
            max_jobs,
            max_pre,
            max_post,
            workdir=workdir,
            config=_config_items(config_items),
            poll_interval=poll_interval,
            kill_grace=kill_grace,
            auto_rescue=False if no_auto_rescue else None,
            rescue_file=rescue_file,
            startup_cycle_detect=False if allow_cycles else None,
        )
    except DagError as exc:
        # A DAG that cannot be run is a DAGMan failure (exit 1), not a usage error.
        click.echo(f"autosplit: error: {exc}", err=True)
        ctx.exit(1)
    if as_json:
        echo_json(result.to_dict())
    else:
        out = console()
        rows = [
            ("DAG", str(result.dag)),
            ("exit status", result.exit_code),
            ("DAG status", result.dag_status.name),
            ("elapsed", human_seconds(result.elapsed)),
        ]
        rows += [(f"nodes {name.lower()}", count) for name, count in sorted(result.counts().items())]
        if result.rescue_file:
            rows.append(("rescue DAG", str(result.rescue_file)))
        if result.recovered:
            rows.append(("recovered", "yes (resumed an interrupted run)"))
        out.print(key_value_table("DAG run", rows))
        failed = [n for n in result.nodes.values() if n.status.name == "ERROR"]
        if failed:
            table = Table(title="Failed nodes", title_justify="left")
            for column in ("node", "retries", "return", "details"):
                table.add_column(column)
            for node in failed[:50]:
                table.add_row(node.name, str(node.retries), str(node.return_value), node.details)
            out.print(table)
    ctx.exit(result.exit_code)


@dagman.command("rm")
@click.argument("dag_file", type=click.Path(dir_okay=False, path_type=Path))
def rm(dag_file: Path) -> None:
    """Remove a running DAG, like condor_rm of its DAGMan job.

    Running jobs are removed and scripts killed, a rescue DAG is written, the FINAL node (if any) runs,
    and the executor exits with status 2.
    """
    pid = request_remove(dag_file)
    if pid is None:
        raise DagError(f"{dag_file}: no executor is running this DAG")
    click.echo(f"Removal requested for DAG {dag_file} (executor pid {pid})")


@dagman.command("halt")
@click.argument("dag_file", type=click.Path(dir_okay=False, path_type=Path))
def halt(dag_file: Path) -> None:
    """Halt a running DAG (DAGMan's <dag>.halt file).

    No new PRE scripts or jobs start; running jobs finish and their POST scripts run. When nothing is left
    running the DAG exits with status 1 and a rescue DAG (after its FINAL node). `resume` before then
    lets it continue.
    """
    if running_pid(dag_file) is None:
        raise DagError(f"{dag_file}: no executor is running this DAG")
    request_halt(dag_file)
    click.echo(f"Halted DAG {dag_file}")


@dagman.command("resume")
@click.argument("dag_file", type=click.Path(dir_okay=False, path_type=Path))
def resume(dag_file: Path) -> None:
    """Resume a halted DAG (removes the <dag>.halt file)."""
    if not request_resume(dag_file):
        raise DagError(f"{dag_file}: the DAG is not halted")
    click.echo(f"Resumed DAG {dag_file}")


@dagman.command("status")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--nodes", "show_nodes", is_flag=True, help="List every node, not only the summary.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(path: Path, show_nodes: bool, as_json: bool) -> None:
    """Summarise a DAG's NODE_STATUS_FILE (PATH is the DAG file or the status file itself).

    Works for status files written by this executor and by HTCondor DAGMan.
    """
    status_path = path
    running = None
    if path.suffix == ".dag" or not _looks_like_status(path):
        dag = parse_dag(path)
        if dag.status_file is None:
            raise DagError(f"{path}: the DAG has no NODE_STATUS_FILE")
        status_path = Path(dag.status_file.path)
        status_path = status_path if status_path.is_absolute() else dag.workdir / status_path
        running = running_pid(path)
    report = read_node_status(status_path)
    summary = {k: v for k, v in report.dag.items() if k not in ("Type", "DagFiles")}
    if as_json:
        payload: dict[str, Any] = {"status_file": str(status_path), "dag": summary, "counts": report.counts()}
        if running is not None:
            payload["executor_pid"] = running
        if show_nodes:
            payload["nodes"] = {
                name: {
                    "status": STATUS_NAMES[int(ad["NodeStatus"])],
                    "details": ad.get("StatusDetails", ""),
                    "retries": ad.get("RetryCount", 0),
                }
                for name, ad in report.nodes.items()
            }
        echo_json(payload)
        return
    out = console()
    code = int(summary.get("DagStatus", 3))
    rows = [("status file", str(status_path)), ("DAG status", STATUS_NAMES[code] if 0 <= code < 8 else code)]
    rows += [(k, v) for k, v in summary.items() if k.startswith("Nodes")]
    if running is not None:
        rows.append(("executor pid", running))
    out.print(key_value_table("DAG status", rows))
    if show_nodes:
        table = Table(title="Nodes", title_justify="left")
        for column in ("node", "status", "retries", "details"):
            table.add_column(column)
        for name, ad in report.nodes.items():
            table.add_row(
                name,
                STATUS_NAMES[int(ad["NodeStatus"])],
                str(ad.get("RetryCount", 0)),
                str(ad.get("StatusDetails", "")),
            )
        out.print(table)


def _looks_like_status(path: Path) -> bool:
    with open(path, errors="replace") as fh:
        head = fh.read(200)
    return head.lstrip().startswith("[") and "DagStatus" in head
