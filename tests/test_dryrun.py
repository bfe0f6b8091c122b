"""autosplit dryrun: real probes on the bundled example, the --dataset/--code form, failures, the plot."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from autosplit.cli import cli
from tests.pipeline_helpers import write_dataset

EXAMPLE = Path(__file__).parents[1] / "examples" / "nanoaod" / "task.toml"


def test_dryrun_on_the_example_measures_plans_and_predicts(tmp_path) -> None:
    plot = tmp_path / "dryrun.png"
    result = CliRunner().invoke(
        cli, ["dryrun", str(EXAMPLE), "--budget", "30s", "--json", "--plot", str(plot)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["units"] == 240 and summary["events"] == 10808
    assert summary["probe_jobs"] >= 1 and summary["probe_events"] <= 0.2 * summary["events"]
    low, high = summary["seconds_per_event_interval"]
    assert 0 < low <= summary["seconds_per_event"] <= high
    assert summary["n_jobs"] >= 1 and summary["predicted_makespan_seconds"] > 0
    assert summary["predicted_runtime_seconds"]["max_quantile"] <= summary["target_runtime_seconds"] * 1.0001
    assert 0 <= summary["probability_soft_limit"] <= 1
    assert summary["submit_command"].startswith("autosplit run "), "the README's command (issue 14)"
    assert plot.read_bytes()[:4] == b"\x89PNG"


def test_dryrun_without_a_toml_and_more_slots_predicts_a_shorter_makespan(tmp_path, monkeypatch) -> None:
    write_dataset(tmp_path / "ds.parquet", n_units=60)
    (tmp_path / "payload.py").write_text(
        "import time\n\ndef run(job):\n    for unit in job.iter_units():\n        time.sleep(unit.events * 0.001)\n"
    )
    monkeypatch.chdir(tmp_path)
    args = [
        "dryrun",
        "--dataset",
        "ds.parquet",
        "--code",
        "payload:run",
        "--target",
        "2s",
        "--budget",
        "20s",
        "--json",
    ]
    one = CliRunner().invoke(cli, [*args, "--slots", "1"])
    four = CliRunner().invoke(cli, [*args, "--slots", "4"])
    assert one.exit_code == 0 and four.exit_code == 0, one.output + four.output
    slow, fast = json.loads(one.stdout), json.loads(four.stdout)
    assert fast["predicted_makespan_seconds"] < slow["predicted_makespan_seconds"]
    assert abs(slow["seconds_per_event"] - 0.001) < 0.0006, "the sleep per event is what the probes measured"


def test_dryrun_reports_failing_code_clearly(tmp_path, monkeypatch) -> None:
    write_dataset(tmp_path / "ds.parquet", n_units=20)
    (tmp_path / "broken.py").write_text("def run(job):\n    raise RuntimeError('no such branch Muon_pt')\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        cli, ["dryrun", "--dataset", "ds.parquet", "--code", "broken:run", "--budget", "10s"]
    )
    assert result.exit_code == 2
    assert (
        "no probe job produced a measurement" in result.output and "no such branch Muon_pt" in result.output
    )
    assert "Traceback" not in result.output
    bad = CliRunner().invoke(cli, ["dryrun"])
    assert bad.exit_code == 2 and "--dataset SOURCE and --code" in bad.output
