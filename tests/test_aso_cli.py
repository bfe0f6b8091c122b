"""``autosplit aso`` commands (run, status, list, retry, kill), tested on the click group directly."""

from __future__ import annotations

import json

from click.testing import CliRunner

from autosplit.aso import agent_command, job_transfer_outcome
from autosplit.cli.aso_cmd import aso
from tests.test_aso_helpers import assert_delivered, fast_config, make_task

FAST = ["--lease", "0.5", "--poll", "0.01", "--backoff", "0", "--no-fsync"]


def invoke(*args: str):
    return CliRunner().invoke(aso, [str(a) for a in args], catch_exceptions=False)


def test_aso_cli_run_once_then_status_json_and_table(tmp_path) -> None:
    task = make_task(tmp_path, jobs=3, files_per_job=4, dest_sites=("A", "B"))
    before = json.loads(invoke("status", task.db_path, "--json").output)
    assert before["counts"]["NEW"] == 12 and before["bytes_pending"] == sum(map(len, task.expected.values()))
    assert before["oldest_pending"]["state"] == "NEW" and before["oldest_pending"]["age_s"] >= 0
    assert {d["dest_site"]: d["queued"] for d in before["destinations"]} == {"A": 8, "B": 4}
    assert before["temp_sites"] == [{"site": "T2_SITE", "files": 12, "bytes": before["bytes_total"]}]
    result = invoke("run", task.db_path, "--once", "--json", *FAST)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.output)
    assert stats["done"] == 12 and stats["failed"] == 0 and stats["db_calls"] > 0
    assert_delivered(task)
    after = json.loads(invoke("status", task.db_path, "--json").output)
    assert after["counts"]["DONE"] == 12 and after["bytes_done"] == before["bytes_pending"]
    assert after["bytes_pending"] == 0 and after["oldest_pending"] is None and after["temp_sites"] == []
    assert after["throughput_files_per_s"] > 0 and after["tasks"][0]["done"] == 12
    table = invoke("status", task.db_path)
    assert table.exit_code == 0 and "DONE" in table.output and "bytes done" in table.output
    human = invoke("run", task.db_path, "--once", *FAST)
    assert human.exit_code == 0 and human.output.startswith("aso: 0 done")


def test_aso_cli_list_retry_and_kill(tmp_path) -> None:
    task = make_task(tmp_path, jobs=2, files_per_job=2)
    victim = task.staged[("job-0", 0)][0]
    good = task.source(victim).read_bytes()
    task.source(victim).write_bytes(bytes([good[0] ^ 1]) + good[1:])
    invoke("run", task.db_path, "--drain", "--max-retries", "0", *FAST)
    failed = json.loads(invoke("list", task.db_path, "--state", "failed", "--json").output)
    assert [r["dest_path"] for r in failed] == [victim.dest_path]
    assert failed[0]["failure_reason"].startswith("checksum-mismatch")
    listing = invoke("list", task.db_path, "--task", "t1")
    assert listing.exit_code == 0 and "FAILED" in listing.output and failed[0]["id"][:8] in listing.output
    # the operator repairs the temp copy and retries by the short id `list` shows
    task.source(victim).write_bytes(good)
    assert json.loads(invoke("retry", task.db_path, "--id", failed[0]["id"][:12], "--json").output) == {
        "retried": 1
    }
    invoke("run", task.db_path, "--once", *FAST)
    assert_delivered(task)
    # kill: nothing left to kill in a finished job; a new attempt's transfers get cancelled
    assert json.loads(invoke("kill", task.db_path, "--task", "t1", "--json").output) == {"killed": 0}
    from autosplit.aso import register_outputs, stage_to_temp

    local = tmp_path / "again.root"
    local.write_bytes(b"again")
    staged = stage_to_temp({local: "x/again.root"}, task.temp_root, task="t1", job_id="job-0", attempt=1)
    register_outputs(
        task.db_path, "t1", "job-0", 1, staged, temp_root=task.temp_root, destination_root=task.dest_root
    )
    result = invoke("kill", task.db_path, "--task", "t1", "--job", "job-0", "--attempt", "1")
    assert result.output.strip() == "aso: 1 transfer killed"
    assert job_transfer_outcome(task.db_path, "t1", "job-0", 1).killed == 1


def test_aso_cli_errors_are_one_line(tmp_path) -> None:
    result = CliRunner().invoke(aso, ["status", str(tmp_path / "nothing.sqlite")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"autosplit: error: {tmp_path / 'nothing.sqlite'}: no transfer database here (nothing registered yet?)"
    ]
    bad = CliRunner().invoke(aso, ["run", str(tmp_path / "db"), "--max-bytes", "lots"])
    assert bad.exit_code == 2 and "is not a size" in bad.output
    bad = CliRunner().invoke(aso, ["run", str(tmp_path / "db"), "--dest-limit", "nonsense"])
    assert bad.exit_code == 2 and "SITE=N" in bad.output
    assert (
        "--job needs --task" in CliRunner().invoke(aso, ["list", str(tmp_path / "db"), "--job", "1"]).output
    )


def test_aso_cli_help_explains_and_agent_command_round_trips(tmp_path) -> None:
    for args in (["--help"], ["run", "--help"], ["status", "--help"]):
        result = invoke(*args)
        assert result.exit_code == 0 and "Usage" in result.output
    assert "lease" in invoke("run", "--help").output.lower()
    # the argv the local backend uses parses with the same options (dest limits, sizes)
    from autosplit.aso import DestinationLimit, FlowLimits

    config = fast_config(flow=FlowLimits(5, 10**6, {"T1_X": DestinationLimit(2, 2 * 10**6)}))
    argv = agent_command(tmp_path / "db.sqlite", config, until="idle", fsync=False)
    assert argv[1:4] == ["-m", "autosplit.aso", "run"]
    result = invoke(*argv[3:], "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["done"] == 0
