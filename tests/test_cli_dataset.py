"""CLI: --version, `dataset info` tables and JSON, errors as one line without a traceback."""

from __future__ import annotations

import json
import subprocess
import sys

from click.testing import CliRunner

from autosplit import __version__
from autosplit.cli import cli
from tests.conftest import DATA, DBS_JSON, ROOT_DIR

COSMICS_HI = "/Cosmics/ComissioningHI-PromptReco-v1/RECO"


def run(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0 and __version__ in result.output


def test_dataset_info_json_on_dbs_listing() -> None:
    result = run("dataset", "info", str(DBS_JSON), "--dataset", COSMICS_HI, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["files"] == 108 and info["units"] == 7985 and info["runs"] == 58
    assert info["events"] == 3008117
    assert info["events_per_lumi"]["max"] == 212213
    assert info["n_zero_event_files"] == 12


def test_dataset_info_table_with_mask_on_root_files() -> None:
    ttbar = str(ROOT_DIR / "nanoAOD_2015_CMS_Open_Data_ttbar.root")
    result = run("dataset", "info", ttbar, "--mask", "1:2272915-1:2272916")
    assert result.exit_code == 0, result.output
    assert "units (run, lumi)" in result.output and "Events per lumi" in result.output
    as_json = json.loads(run("dataset", "info", ttbar, "--mask", "1:2272915-1:2272916", "--json").output)
    assert as_json["units"] == 2 and as_json["events"] == 34 + 45
    assert as_json["mask"] == {"runs": 1, "lumis": 2}


def test_errors_are_one_line_without_traceback() -> None:
    result = CliRunner().invoke(cli, ["dataset", "info", str(ROOT_DIR / "missing_luminosityBlock.root")])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "luminosityBlock" in lines[0] and "missing_luminosityBlock.root" in lines[0]
    assert "Traceback" not in result.output
    bad_mask = CliRunner().invoke(
        cli, ["dataset", "info", str(DBS_JSON), "--dataset", COSMICS_HI, "--mask", "1:9-1:2"]
    )
    assert bad_mask.exit_code == 2 and "first > last" in bad_mask.output
    multi = CliRunner().invoke(cli, ["dataset", "info", str(DBS_JSON)])
    assert multi.exit_code == 2 and "--dataset" in multi.output


def test_console_script_runs() -> None:
    golden = DATA / "lumimask" / "Cert_294927-306462_13TeV_EOY2017ReReco_Collisions17_JSON.txt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "autosplit",
            "dataset",
            "info",
            str(ROOT_DIR / "nano_dimuon.root"),
            "--mask",
            str(golden),
            "--json",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["units"] == 0, "run 315267 is a 2018 run, outside the 2017 golden JSON"
