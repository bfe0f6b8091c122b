"""The monitor in a real browser: Debian's headless Chromium, driven by Playwright, against the real server
(``autosplit serve`` in a subprocess), on a finished task and on a running one.

The pages must show the numbers ``autosplit status --json`` prints (units done/total, pending, quarantined,
job counts per stage), update themselves while the task runs and stop once it has ended. Screenshots go to
each test's temporary directory.

Needs ``/usr/bin/chromium`` (``apt-get install chromium``; Playwright's own browser download is not used) and
the ``playwright`` package; skipped with the reason where either is missing, unless
``AUTOSPLIT_REQUIRE_BROWSER=1`` (set by CI) turns that into a failure.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autosplit.pipeline.control import kill, start
from autosplit.pipeline.runner import submit_or_resume
from autosplit.pipeline.status import FINAL_STATES, task_status, wait_for_end
from autosplit.pipeline.taskdir import TaskDir
from tests.test_web_api import FINISHED_NAME, shared_finished_task, write_task

pytestmark = pytest.mark.slow

CHROMIUM = Path(os.environ.get("AUTOSPLIT_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("AUTOSPLIT_REQUIRE_BROWSER", "") not in ("", "0")
# Playwright adds --headless and a fresh temporary profile (--user-data-dir) itself.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RUNNING_NAME = "web-running"
REFRESH_SECONDS = 1.0

# Everything the checks read from a task page, in one step (the page may swap its content at any time).
READ_PAGE = """() => {
  const number = (element) => Number(element.textContent.replace(/,/g, ""));
  const byId = (id) => number(document.getElementById(id));
  const stages = {};
  for (const row of document.querySelectorAll("#stages tr[data-stage]")) {
    const states = {};
    for (const chip of row.querySelectorAll(".chip[data-state]")) {
      states[chip.dataset.state] = number(chip.querySelector(".count"));
    }
    stages[row.dataset.stage] = {jobs: number(row.querySelector(".stage-jobs")), states: states};
  }
  const box = document.getElementById("live");
  return {
    state: document.getElementById("task-state").textContent.trim(),
    units: {
      total: byId("units-total"), done: byId("units-done"), pending: byId("units-pending"),
      quarantined: byId("units-quarantined"), in_jobs: byId("units-in-jobs"),
    },
    stages: stages,
    final: box.dataset.final === "true",
    live: box.dataset.live || null,
  };
}"""


# The estimates table of a task page: row key -> the text of its value.
READ_ESTIMATES = """() => {
  const rows = {};
  for (const row of document.querySelectorAll("#estimates tr[data-key]")) {
    rows[row.dataset.key] = row.querySelector(".value").textContent.trim();
  }
  return rows;
}"""


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return None


@pytest.fixture(scope="module", autouse=True)
def _browser_available() -> None:
    """Skip (or, when AUTOSPLIT_REQUIRE_BROWSER is set, fail) before any task is run for nothing."""
    missing = _browser_missing()
    if missing:
        if REQUIRE_BROWSER:
            pytest.fail(
                f"{missing}; AUTOSPLIT_REQUIRE_BROWSER is set, so the browser test must run", pytrace=False
            )
        pytest.skip(missing)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=LAUNCH_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture()
def page(browser) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> TaskDir:
    return shared_finished_task(tmp_path_factory)


@pytest.fixture(scope="module")
def live_root(tmp_path_factory) -> Path:
    """Where the running task's TOML goes; its task directory appears under ``tasks/`` (the workdir)."""
    root = tmp_path_factory.mktemp("web-live")
    (root / "tasks").mkdir()
    return root


@pytest.fixture(scope="module")
def server(finished, live_root, tmp_path_factory) -> Iterator[str]:
    """``autosplit serve`` on the finished task and on the (still empty) workdir of the running one."""
    log = tmp_path_factory.mktemp("web-server") / "serve.err"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-m", "autosplit", "serve", str(finished.root), str(live_root / "tasks")]
    with open(log, "w") as stderr:
        proc = subprocess.Popen(
            [*argv, "--port", "0", "--refresh", str(REFRESH_SECONDS)],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert line.startswith("autosplit monitor: http://127.0.0.1:"), f"{line!r}\n{log.read_text()}"
        yield line.split(": ", 1)[1].strip()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture()
def running(live_root) -> Iterator[tuple[TaskDir, Path]]:
    """A task held in the middle of its processing stage: its jobs wait for the gate file to appear."""
    gate = live_root / "gate"
    config = write_task(live_root, RUNNING_NAME, gate=gate, n_units=24, target="20s", tails=0)
    task, _ = submit_or_resume(config, backend="local")
    start(task)
    try:
        status = wait_until(lambda: _held(task_status(task)), 120, "processing jobs running")
        assert status["state"] == "running", status
        yield task, gate
    finally:
        gate.touch()
        if wait_for_end(task, timeout=120)["state"] not in FINAL_STATES:
            kill(task)
            wait_for_end(task, timeout=60)


def _held(status: dict[str, Any]) -> dict[str, Any] | None:
    processing = status["stages"].get("processing", {"states": {}})
    return status if processing["states"].get("running", 0) >= 1 else None


def wait_until(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``probe`` until it returns something true (returned), failing after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(0.3)


def status_json(task: TaskDir) -> dict[str, Any]:
    """``autosplit status TASK --json``, run as a user would."""
    proc = subprocess.run(
        [sys.executable, "-m", "autosplit", "status", str(task.root), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(proc.stdout)


def expected_numbers(status: dict[str, Any]) -> dict[str, Any]:
    """What the page must show, from a status document."""
    return {
        "state": status["state"],
        "units": status["units"],
        "stages": {name: {"jobs": s["jobs"], "states": s["states"]} for name, s in status["stages"].items()},
    }


def shown_numbers(page) -> dict[str, Any]:
    shown = page.evaluate(READ_PAGE)
    return {k: shown[k] for k in ("state", "units", "stages")}


def assert_page_matches_status(page, task: TaskDir, timeout: float = 0.0) -> dict[str, Any]:
    """The page's numbers equal ``status --json``'s (waiting up to ``timeout`` s for a refresh to catch up)."""
    deadline = time.monotonic() + timeout
    while True:
        expected = expected_numbers(status_json(task))
        shown = shown_numbers(page)
        if shown == expected or time.monotonic() > deadline:
            assert shown == expected
            return expected
        page.wait_for_timeout(500)


def assert_page_shows_the_estimates(page, task: TaskDir, timeout: float = 0.0) -> dict[str, str]:
    """The page's estimates table shows ``status --json``'s seconds per event (waiting for a refresh)."""
    deadline = time.monotonic() + timeout
    while True:
        est = status_json(task)["estimates"]
        assert est, "the task has a fitted cost model"
        expected = f"{est['seconds_per_event']['estimate']:.4g}"
        shown = page.evaluate(READ_ESTIMATES)
        if shown.get("seconds_per_event") == expected or time.monotonic() > deadline:
            assert shown.get("seconds_per_event") == expected
            assert shown["jobs_measured"] == f"{est['jobs_measured']} job report(s)"
            assert shown["concurrency"] == str(est["concurrency"])
            return shown
        page.wait_for_timeout(500)


def screenshot(page, path: Path) -> Path:
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000, "a real picture of the page"
    return path


def test_finished_task_page_shows_the_status_numbers(server, finished, page, tmp_path) -> None:
    response = page.goto(f"{server}tasks/{FINISHED_NAME}")
    assert response.status == 200
    expected = assert_page_matches_status(page, finished)
    assert expected["units"]["quarantined"] == 1 and expected["units"]["done"] == 23
    assert page.evaluate(READ_PAGE)["live"] == "off", "a finished task's page does not refresh"
    assert "none (finished)" in page.inner_text("#eta")
    # The plots are there and hold data: measured runtimes (probes, done, failed) and the progress curve.
    assert page.locator("svg[data-plot=runtimes] rect.bar-probe").count() >= 1
    assert page.locator("svg[data-plot=runtimes] rect.bar-failed").count() >= 1
    assert page.locator("svg[data-plot=runtimes] line.target").count() == 1
    assert page.locator("svg[data-plot=progress] polyline.progress").count() == 1
    assert "cannot process run 297050 lumi 7" in page.inner_text("#errors")
    assert page.locator("#sites tr[data-site=local]").count() == 1
    shown = assert_page_shows_the_estimates(page, finished)
    assert "remaining_cpu_seconds" not in shown, "no CPU time left is predicted for an ended task"
    screenshot(page, tmp_path / "finished.png")
    assert page.console_errors == [], "no script error, nothing blocked by the content security policy"


def test_running_task_page_updates_itself_until_the_task_ends(server, running, page, tmp_path) -> None:
    task, gate = running
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    assert page.goto(f"{server}tasks/{RUNNING_NAME}").status == 200
    page.evaluate("() => { window.loadedOnce = true; }")  # gone if the page were reloaded
    expected = assert_page_matches_status(page, task, timeout=15)
    assert expected["state"] == "running" and expected["stages"]["processing"]["states"]["running"] >= 1
    assert 0 < expected["units"]["pending"] and expected["units"]["in_jobs"] > 0
    # The API reads the ledger while the executor and its scripts write it (read-only WAL reader).
    api = page.request.get(f"{server}api/v1/tasks/{RUNNING_NAME}")
    assert api.ok and expected_numbers(api.json()) == expected
    lumis = page.request.get(f"{server}api/v1/tasks/{RUNNING_NAME}/lumis").json()
    assert lumis["lumis"]["notFinishedLumis"] == expected["units"]["pending"]
    assert lumis["lumis"]["processedLumis"] == expected["units"]["done"]
    # The processing stage was planned from the probes' cost model: its estimates are on the page, with the
    # predicted CPU time of the units left while the task runs.
    shown = assert_page_shows_the_estimates(page, task, timeout=10)
    assert "remaining_cpu_seconds" in shown
    assert page.inner_text("#eta") != "none (finished)"
    page.wait_for_function("() => document.getElementById('live').dataset.live === 'on'")
    deadline = time.monotonic() + 10
    while not any(url.endswith(f"/tasks/{RUNNING_NAME}/live") for url in requests):
        assert time.monotonic() < deadline, "the page of a running task refreshes itself"
        page.wait_for_timeout(200)  # (Playwright delivers events while it waits, not during time.sleep)
    screenshot(page, tmp_path / "running.png")

    gate.touch()  # let the jobs go: the page follows the task to its end without a reload
    page.wait_for_function("() => document.getElementById('live').dataset.final === 'true'", timeout=120_000)
    assert page.evaluate("() => window.loadedOnce === true")
    expected = assert_page_matches_status(page, task, timeout=10)
    assert expected["state"] == "completed" and expected["units"]["done"] == expected["units"]["total"] == 24
    assert "remaining_cpu_seconds" not in assert_page_shows_the_estimates(page, task, timeout=10)
    assert page.inner_text("#eta") == "none (finished)"
    page.wait_for_function("() => document.getElementById('live').dataset.live === 'off'")
    before = len(requests)
    page.wait_for_timeout(2.5 * REFRESH_SECONDS * 1000)
    assert requests[before:] == [], "no more refreshes once the task has ended"
    screenshot(page, tmp_path / "ended.png")
    assert page.console_errors == []


def test_index_lists_the_tasks_and_unknown_tasks_are_404(server, page) -> None:
    assert page.goto(server).status == 200
    assert page.locator(f"tr[data-task={FINISHED_NAME}]").count() == 1
    page.click(f"a[href='/tasks/{FINISHED_NAME}']")
    page.wait_for_url(f"**/tasks/{FINISHED_NAME}")
    assert page.inner_text("#task-state") == "completed-with-quarantine"
    response = page.goto(f"{server}tasks/no-such-task")
    assert response.status == 404 and "No such task" in page.inner_text("main")
    response = page.goto(f"{server}api/v1/tasks/..%2F..%2Fetc%2Fpasswd")
    assert response.status == 404
