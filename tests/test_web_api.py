"""The monitor's JSON API (``autosplit serve``), with FastAPI's TestClient over a real finished task.

The task is the small pipeline task of ``tests/pipeline_helpers.py`` run for real on the local backend,
with user code that fails on one lumi, so it ends with done and quarantined units, failed jobs and a tail
stage. It is run once per test session and shared by the API and browser tests (and xdist workers).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from autosplit.datasets import LumiMask
from autosplit.pipeline.report import write_report
from autosplit.pipeline.status import task_status
from autosplit.pipeline.taskdir import TaskDir
from autosplit.web import TaskCatalog, create_app, documents
from autosplit.web import format as web_format
from autosplit.web.readonly import ReadOnlyTaskDir
from tests.pipeline_helpers import write_config

pytestmark = pytest.mark.slow

FINISHED_NAME = "web-done"
CRASH_LUMI = 7

PAYLOAD = """
import os
import time

CRASH = {crash!r}   # (run, lumi) on which the code always fails, or None
GATE = {gate!r}     # while this file is missing, processing jobs wait before each unit (None: never)


def run(job):
    done = 0
    for unit in job.iter_units():
        while GATE and job.spec.stage == "processing" and not os.path.exists(GATE):
            time.sleep(0.05)
        if CRASH is not None and (unit.run, unit.lumi) == tuple(CRASH):
            raise ValueError(f"cannot process run {{unit.run}} lumi {{unit.lumi}}")
        time.sleep(unit.events * 0.002)
        done += 1
    out = job.output_path("count.txt")
    out.write_text(str(done))
    job.add_output(out)
"""


def write_task(
    tmp_path: Path, name: str, *, crash: tuple[int, int] | None = None, gate: Path | None = None, **config
) -> Path:
    """The pipeline test task with the payload above; returns its TOML file."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "payload.py").write_text(PAYLOAD.format(crash=crash, gate=str(gate) if gate else None))
    return write_config(tmp_path, code="payload:run", name=name, **config)


def shared_finished_task(tmp_path_factory: pytest.TempPathFactory) -> TaskDir:
    """Run the finished example task once per session, shared by xdist workers (file lock); its TaskDir."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the directory every worker's base temp directory is in
    root = base / "web-finished"
    with open(base / "web-finished.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        ready = root / "task-directory"
        if not ready.exists():
            from autosplit.pipeline.runner import resolve_task, run

            shutil.rmtree(root, ignore_errors=True)  # an attempt that failed half-way
            config = write_task(
                root, FINISHED_NAME, crash=(297050, CRASH_LUMI), n_units=24, target="3s", tails=1
            )
            status = run(config, poll=0.2, timeout=240)
            assert status["state"] == "completed-with-quarantine", status
            ready.write_text(str(resolve_task(config).root))
    return TaskDir(ready.read_text())


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> TaskDir:
    return shared_finished_task(tmp_path_factory)


@pytest.fixture(scope="module")
def client(finished) -> TestClient:
    # Serve the directory holding the task, as for a [task] workdir.
    with TestClient(create_app([finished.root.parent])) as test_client:
        yield test_client


def api_json(client: TestClient, path: str, status: int = 200):
    response = client.get(path)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def as_json(value):
    """What a value looks like after a JSON round trip (as ``status --json`` prints it)."""
    return json.loads(json.dumps(value, default=str))


def test_task_list_shows_state_and_progress(client, finished) -> None:
    listing = api_json(client, "/api/v1/tasks")
    assert listing["roots"] == [str(finished.root.parent)]
    (entry,) = listing["tasks"]
    status = task_status(finished)
    assert entry["id"] == FINISHED_NAME and entry["name"] == FINISHED_NAME
    assert entry["state"] == status["state"] == "completed-with-quarantine" and entry["final"] is True
    assert entry["units"] == status["units"]
    assert entry["progress"] == pytest.approx(status["units"]["done"] / status["units"]["total"])
    assert entry["stage"] == list(status["stages"])[-1]


def test_status_is_the_status_commands_document(client, finished) -> None:
    shown = api_json(client, f"/api/v1/tasks/{FINISHED_NAME}")
    assert shown == as_json(task_status(finished))
    assert shown["units"]["quarantined"] == 1 and shown["errors"], "the task has something to show"


def test_status_reads_the_ledger_read_only(finished) -> None:
    task = ReadOnlyTaskDir(finished.root)
    assert task_status(task) == task_status(finished)
    with task.ledger() as ledger, pytest.raises(sqlite3.OperationalError, match="readonly"):
        ledger.set_meta(state="changed")


def test_jobs_are_paged_and_filtered_like_status_counts_them(client, finished) -> None:
    status = task_status(finished)
    n_jobs = sum(stage["jobs"] for stage in status["stages"].values())
    everything = api_json(client, f"/api/v1/tasks/{FINISHED_NAME}/jobs?limit=1000")
    assert everything["total"] == n_jobs == len(everything["jobs"])
    pages = [
        api_json(client, f"/api/v1/tasks/{FINISHED_NAME}/jobs?limit=3&offset={o}")
        for o in range(0, n_jobs, 3)
    ]
    assert [job for page in pages for job in page["jobs"]] == everything["jobs"]
    assert all(page["total"] == n_jobs and len(page["jobs"]) <= 3 for page in pages)
    for name, stage in status["stages"].items():
        in_stage = api_json(client, f"/api/v1/tasks/{FINISHED_NAME}/jobs?stage={name}")
        assert in_stage["total"] == stage["jobs"]
        assert {job["stage"] for job in in_stage["jobs"]} == {name}
        for state, count in stage["states"].items():
            page = api_json(client, f"/api/v1/tasks/{FINISHED_NAME}/jobs?stage={name}&state={state}")
            assert page["total"] == count and {job["state"] for job in page["jobs"]} == {state}
    # Each job also says what kind it is and how it ended, as the ledger records it.
    with finished.ledger() as ledger:
        rows = {row["node"]: row for row in ledger.jobs().iter_rows(named=True)}
        attempts = {(r["node"], r["attempt"]): r for r in ledger.attempts().iter_rows(named=True)}
    for job in everything["jobs"]:
        row = rows[job["node"]]
        assert (job["kind"], job["outcome"], job["ended"]) == (row["kind"], row["outcome"], row["ended"])
        assert job["ended"] is not None and job["outcome"] is not None, "every job of a finished task ended"
        last = job["last_attempt"]
        assert last["elapsed_seconds"] == attempts[(job["node"], last["attempt"])]["elapsed_seconds"]
    assert {job["kind"] for job in everything["jobs"] if job["stage"].startswith("probe")} == {"probe"}
    failed = api_json(client, f"/api/v1/tasks/{FINISHED_NAME}/jobs?state=unit-failure")["jobs"]
    assert failed and all(f"lumi {CRASH_LUMI}" in job["last_attempt"]["message"] for job in failed)
    assert api_json(client, f"/api/v1/tasks/{FINISHED_NAME}/jobs?stage=no-such-stage")["total"] == 0
    assert client.get(f"/api/v1/tasks/{FINISHED_NAME}/jobs?limit=0").status_code == 422
    assert client.get(f"/api/v1/tasks/{FINISHED_NAME}/jobs?offset=-1").status_code == 422


def test_lumi_reports_equal_what_report_writes(client, finished, tmp_path) -> None:
    shown = api_json(client, f"/api/v1/tasks/{FINISHED_NAME}/lumis")
    summary = write_report(finished, tmp_path / "results")
    for name in ("processedLumis", "notFinishedLumis", "quarantinedLumis"):
        written = json.loads((tmp_path / "results" / f"{name}.json").read_text())
        assert shown[name] == written, name
        assert shown["lumis"][name] == LumiMask.from_json(tmp_path / "results" / f"{name}.json").n_lumis
    assert shown["quarantinedLumis"] == {"297050": [[CRASH_LUMI, CRASH_LUMI]]}
    assert shown["lumis"]["processedLumis"] == summary["units"]["done"] == 23
    assert not (finished.root / "results").exists(), "the server wrote no report into the task"


def test_runtimes_hold_the_plans_predictions_and_every_measured_attempt(client, finished) -> None:
    shown = api_json(client, f"/api/v1/tasks/{FINISHED_NAME}/runtimes")
    assert shown["target_seconds"] == 3.0 and shown["probe_seconds"] == 1.0
    with finished.ledger() as ledger:
        jobs, attempts = ledger.jobs(), ledger.attempts()
    assert [j["node"] for j in shown["jobs"]] == jobs["node"].to_list()
    by_node = {j["node"]: j for j in shown["jobs"]}
    for row in jobs.iter_rows(named=True):
        assert by_node[row["node"]]["predicted_seconds"] == row["predicted_seconds"]
        assert by_node[row["node"]]["soft_limit_seconds"] == row["soft_limit_seconds"]
    assert sum(len(j["measured"]) for j in shown["jobs"]) == attempts.height
    for row in attempts.iter_rows(named=True):
        (measured,) = [a for a in by_node[row["node"]]["measured"] if a["attempt"] == row["attempt"]]
        assert measured["wall_seconds"] == row["wall_seconds"] and measured["outcome"] == row["outcome"]
    assert any(j["predicted_seconds"] for j in shown["jobs"] if j["stage"] == "processing")


def test_timeline_counts_up_to_the_units_done(client, finished) -> None:
    shown = api_json(client, f"/api/v1/tasks/{FINISHED_NAME}/timeline")
    points = shown["points"]
    assert points[0]["units_done"] == 0 and shown["total_units"] == 24
    assert [p["time"] for p in points] == sorted(p["time"] for p in points)
    assert points[-1]["units_done"] == task_status(finished)["units"]["done"]


def test_unknown_task_is_a_404_json_problem(client) -> None:
    for path in (
        "/api/v1/tasks/nope",
        "/api/v1/tasks/nope/jobs",
        "/api/v1/tasks/nope/lumis",
        "/api/v1/tasks/nope/runtimes",
        "/api/v1/tasks/nope/timeline",
    ):
        problem = api_json(client, path, 404)
        assert "no task 'nope'" in problem["detail"], path
    page = client.get("/tasks/nope")
    assert page.status_code == 404 and "No such task" in page.text


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/tasks/..",
        "/api/v1/tasks/%2e%2e",
        "/api/v1/tasks/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/v1/tasks/%2Fetc%2Fpasswd",
        "/api/v1/tasks/.%2Fweb-done",
        "/api/v1/tasks/web-done%00",
        "/api/v1/tasks/tasks",
        "/tasks/..%2F..%2Fetc%2Fpasswd",
        "/tasks/%2e%2e%2f%2e%2e%2fetc",
        "/static/..%2Freadonly.py",
        "/static/%2e%2e/readonly.py",
        "/static/../../pipeline_helpers.py",
    ],
)
def test_path_traversal_is_refused(client, path) -> None:
    response = client.get(path)
    assert response.status_code == 404, (path, response.text[:300])
    assert "LEDGER_FORMAT" not in response.text and "root:" not in response.text


def test_a_directory_of_the_server_that_is_no_task_is_unknown(finished, tmp_path) -> None:
    (tmp_path / "stray").mkdir()  # a directory next to the tasks, not a task: not served
    (tmp_path / "stray" / "ledger.sqlite").write_text("not a ledger")
    with TestClient(create_app([tmp_path, finished.root])) as client:
        listing = api_json(client, "/api/v1/tasks")
        assert [t["id"] for t in listing["tasks"]] == [FINISHED_NAME]
        api_json(client, "/api/v1/tasks/stray", 404)


def test_tasks_with_the_same_name_get_distinct_stable_ids(finished, tmp_path) -> None:
    copy = tmp_path / "elsewhere" / finished.root.name
    shutil.copytree(finished.root, copy, ignore=shutil.ignore_patterns("jobs", "outputs"))
    ids = [e.id for e in TaskCatalog([finished.root, copy.parent]).entries()]
    assert len(set(ids)) == 2 and ids == [e.id for e in TaskCatalog([finished.root, copy.parent]).entries()]
    with TestClient(create_app([finished.root, copy.parent])) as client:
        for task_id in ids:
            assert api_json(client, f"/api/v1/tasks/{task_id}")["directory"] in (
                str(finished.root),
                str(copy.resolve()),
            )


def test_new_tasks_appear_without_a_restart(finished, tmp_path) -> None:
    with TestClient(create_app([tmp_path])) as client:
        assert api_json(client, "/api/v1/tasks")["tasks"] == []
        shutil.copytree(finished.root, tmp_path / "later", ignore=shutil.ignore_patterns("jobs", "outputs"))
        assert api_json(client, "/api/v1/tasks/later")["units"] == task_status(finished)["units"]


def test_openapi_describes_the_api(client) -> None:
    spec = api_json(client, "/openapi.json")
    assert spec["info"]["title"] == "autosplit monitor"
    for path in (
        "/api/v1/tasks",
        "/api/v1/tasks/{task_id}",
        "/api/v1/tasks/{task_id}/jobs",
        "/api/v1/tasks/{task_id}/lumis",
        "/api/v1/tasks/{task_id}/runtimes",
        "/api/v1/tasks/{task_id}/timeline",
    ):
        assert set(spec["paths"][path]) == {"get"}, path
    parameters = {p["name"] for p in spec["paths"]["/api/v1/tasks/{task_id}/jobs"]["get"]["parameters"]}
    assert {"stage", "state", "offset", "limit"} <= parameters
    assert not any(path.startswith("/tasks") for path in spec["paths"]), "pages are not API"


def test_the_server_only_reads(client) -> None:
    for method in ("post", "put", "delete", "patch"):
        assert getattr(client, method)(f"/api/v1/tasks/{FINISHED_NAME}").status_code == 405


def test_pages_render_from_the_same_documents(client, finished) -> None:
    index = client.get("/")
    assert index.status_code == 200 and f'href="/tasks/{FINISHED_NAME}"' in index.text
    page = client.get(f"/tasks/{FINISHED_NAME}")
    assert page.status_code == 200
    assert (
        "Content-Security-Policy" in page.headers
        and "script-src 'self'" in page.headers["Content-Security-Policy"]
    )
    units = task_status(finished)["units"]
    assert f'<span id="units-done">{units["done"]}</span>' in page.text
    assert 'data-plot="runtimes"' in page.text and 'data-plot="progress"' in page.text
    assert 'data-final="true"' in page.text, "a finished task's page does not refresh"
    for asset in ("/static/monitor.js", "/static/monitor.css"):
        assert client.get(asset).status_code == 200
    assert "http://" not in page.text.replace("http://www.w3.org/2000/svg", ""), "nothing from elsewhere"


def estimate_cells(html: str) -> dict[str, str]:
    """The estimates table of a task page: row key -> the text of its value."""
    return dict(
        re.findall(
            r'<tr data-key="([a-z_]+)"><th>[^<]*</th><td class="num"><span class="value">([^<]*)<', html
        )
    )


def test_task_page_shows_the_scheduler_estimates(client, finished) -> None:
    est = task_status(finished)["estimates"]
    assert est and est["seconds_per_event"]["estimate"] > 0, "the finished task has a fitted cost model"
    page = client.get(f"/tasks/{FINISHED_NAME}").text
    shown = estimate_cells(page)
    spe = est["seconds_per_event"]
    assert shown["seconds_per_event"] == f"{spe['estimate']:.4g}"
    assert f"95 % interval {spe['low']:.4g} – {spe['high']:.4g}" in page
    assert shown["jobs_measured"] == f"{est['jobs_measured']} job report(s)"
    assert shown["concurrency"] == str(est["concurrency"])
    assert shown["overhead_seconds"] == web_format.duration(est["overhead_seconds"])
    assert shown["packing_target_seconds"] == web_format.duration(est["packing_target_seconds"])
    assert shown["failure_rate_per_hour"] == f"{est['failure_rate_per_hour']:.3g} per slot-hour"
    assert shown["shared_cv"] == web_format.share(est["shared_cv"])
    # The CPU time left is that of the last model fit: not shown once the task has ended.
    assert "remaining_cpu_seconds" not in shown
    assert set(shown) <= set(est), "every row is a field of the status document's estimates"


def test_filters_show_a_dash_for_what_is_missing() -> None:
    from jinja2 import ChainableUndefined

    for missing in (None, ChainableUndefined(name="gone"), float("nan"), float("inf"), "n/a", {}):
        for name in ("count", "duration", "sig", "share", "size", "clock"):
            assert web_format.FILTERS[name](missing) == "–", (name, missing)
        assert web_format.percent(missing, 10) == 0.0 and web_format.percent(3, missing) == 0.0
    assert web_format.count(12345) == "12,345" and web_format.duration(200) == "3 min 20 s"
    assert web_format.sig(0.0020456) == "0.002046" and web_format.share(0.0228) == "2.3 %"
    assert web_format.size(1_200_000) == "1.2 MB" and web_format.percent(1, 4) == 25.0


def _without(document: dict, *paths: str) -> dict:
    """A copy of a status document without the fields at ``paths`` ('estimates.concurrency', ...)."""
    document = json.loads(json.dumps(document))
    for path in paths:
        *parents, key = path.split(".")
        holder = document
        for parent in parents:
            holder = holder[parent]
        holder.pop(key)
    return document


def _stage_without_states(document: dict) -> dict:
    document = json.loads(json.dumps(document))
    for stage in document["stages"].values():
        stage.pop("states")
    return document


DEGRADED = {
    "no estimates yet": lambda doc: doc | {"estimates": None, "remaining_seconds": None},
    "estimates without model fields": lambda doc: _without(
        doc,
        *(
            f"estimates.{k}"
            for k in (
                "remaining_cpu_seconds",
                "overhead_seconds",
                "shared_cv",
                "unit_cv",
                "jobs_measured",
                "concurrency",
                "packing_target_seconds",
                "failure_rate_per_hour",
            )
        ),
        "estimates.seconds_per_event.low",
        "estimates.seconds_per_event.high",
    ),
    "estimates as an older ledger saved them": lambda doc: (
        doc
        | {
            "estimates": {
                "from_stage": "processing",
                "seconds_per_event": {"estimate": 0.002, "low": 0.001, "high": 0.003},
                "overhead_seconds": None,
                "memory_bytes_per_event": 1000,
            }
        }
    ),
    "optional sections missing": lambda doc: _without(
        doc,
        "estimates",
        "sites",
        "errors",
        "quarantine_reasons",
        "remaining_seconds",
        "events",
        "backend",
        "error",
        "directory",
    ),
    "stages without job states": _stage_without_states,
    "units without in_jobs": lambda doc: _without(doc, "units.in_jobs"),
    "odd values": lambda doc: (
        doc
        | {
            "errors": [{"exit_code": None, "count": 2, "messages": "one message"}, "not an error"],
            "sites": [{"site": "T2_CH_CERN"}],
            "estimates": {"seconds_per_event": {"estimate": None}, "concurrency": "many"},
            "transfers": {},
        }
    ),
}


@pytest.mark.parametrize("degrade", list(DEGRADED), ids=list(DEGRADED))
def test_pages_render_a_status_document_missing_optional_fields(finished, monkeypatch, degrade) -> None:
    full = as_json(task_status(finished))
    document = DEGRADED[degrade](full)
    monkeypatch.setattr(documents, "task_status", lambda task: json.loads(json.dumps(document)))
    with TestClient(create_app([finished.root.parent])) as client:
        for path in ("/", "/live", f"/tasks/{FINISHED_NAME}", f"/tasks/{FINISHED_NAME}/live"):
            response = client.get(path)
            assert response.status_code == 200, (path, response.text[-2000:])
            assert "None" not in response.text.replace("none (finished)", ""), path
        assert api_json(client, f"/api/v1/tasks/{FINISHED_NAME}") == document, "the API passes it on as is"
        (entry,) = api_json(client, "/api/v1/tasks")["tasks"]
        assert entry["state"] == full["state"]
        page = client.get(f"/tasks/{FINISHED_NAME}").text
    # What the document still has is shown; what it lacks has no row.
    shown = estimate_cells(page)
    estimates = document.get("estimates") or {}
    assert set(shown) <= {k for k, v in estimates.items() if v is not None}
    spe = (estimates.get("seconds_per_event") or {}).get("estimate")
    if spe is not None:
        assert shown["seconds_per_event"] == f"{spe:.4g}"
    else:
        assert "seconds_per_event" not in shown
    if "units" in document and "in_jobs" in document["units"]:
        assert f'<span id="units-done">{document["units"]["done"]}</span>' in page
        assert f'<span id="units-in-jobs">{document["units"]["in_jobs"]}</span>' in page
    else:
        assert '<span id="units-in-jobs">–</span>' in page
    for name, stage in document["stages"].items():
        assert f'<tr data-stage="{name}">' in page
        for state, n in stage.get("states", {}).items():
            assert f'data-state="{state}">{state} <span class="count">{n}</span>' in page
    if degrade == "optional sections missing":
        assert 'id="estimates"' not in page and 'id="sites"' not in page and 'id="errors"' not in page
        assert 'id="events-done"' not in page
    if degrade == "odd values":
        assert '<div class="message">one message</div>' in page and 'data-site="T2_CH_CERN"' in page
        assert shown == {}, "no estimate worth a row"


def test_serve_command_explains_itself_and_warns_off_loopback() -> None:
    from click.testing import CliRunner

    from autosplit.cli import cli
    from autosplit.web.server import is_loopback

    result = CliRunner().invoke(cli, ["serve", "--help"])
    assert result.exit_code == 0 and "--host" in result.output and "authentication" in result.output
    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1") and not is_loopback("example.org")
    missing = CliRunner().invoke(cli, ["serve", f"/nonexistent-{time.time()}"])
    assert missing.exit_code == 2 and "no such directory" in missing.output


def test_the_failure_cap_is_shown_only_while_failures_shorten_jobs() -> None:
    from autosplit.web.views import estimate_rows

    calm = {"estimates": {"packing_target_seconds": 28_800.0, "failure_cap_seconds": None}}
    assert [r["key"] for r in estimate_rows(calm, final=False)] == ["packing_target_seconds"]
    failing = {"estimates": {"packing_target_seconds": 28_800.0, "failure_cap_seconds": 14_400.0}}
    rows = {r["key"]: r for r in estimate_rows(failing, final=False)}
    assert rows["failure_cap_seconds"]["value"] == web_format.duration(14_400.0)
    assert rows["failure_cap_seconds"]["note"] == "under failures"
