"""Task config validation, ledger invariants, DAG/submit text and the condor backend without a pool."""

from __future__ import annotations

import os
import textwrap

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autosplit.dagbuilder import DagFile, DagNode, hard_limit_expression, job_submit
from autosplit.dagbuilder.dagfile import DagBuildError
from autosplit.ledger import Ledger, LedgerError
from autosplit.pipeline.config import ConfigError, load_config, parse_duration
from tests.pipeline_helpers import make_task

BASE = """
[task]
name = "dimuon"
[dataset]
source = "data/*.root"
[code]
callable = "analysis:run"
"""


def write(tmp_path, text: str):
    path = tmp_path / "task.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_config_defaults_and_resolution(tmp_path) -> None:
    config = load_config(write(tmp_path, BASE + '[splitting]\ntarget_runtime = "2h30m"\n'))
    assert config.target_seconds == 9000.0 and config.probe_seconds == 900.0
    assert config.dataset.source == str(tmp_path / "data/*.root")
    assert config.task.workdir == str(tmp_path / "autosplit-tasks")
    assert config.splitting.alpha == 0.05 and config.limits.retries == 1 and config.n_probes == config.slots


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ("[splitting]\nalpha = 0.7\n", "[splitting] alpha"),
        ("[splitting]\ntarget_runtime = 'soon'\n", "[splitting] target_runtime = 'soon'"),
        ("[splitting]\ntarget_rutnime = '8h'\n", "unknown key 'target_rutnime'"),
        ("[splitting]\nprobe_seconds = '9h'\n", "probe_seconds must be shorter than target_runtime"),
        ("[backend]\nkind = 'slurm'\n", "[backend] kind"),
        ("[code]\nexecutable = ['run.sh']\n", "[code]"),
    ],
)
def test_config_errors_name_the_key(tmp_path, extra: str, fragment: str) -> None:
    text = BASE + extra
    if extra.startswith("[code]"):
        text = text.replace('[code]\ncallable = "analysis:run"\n', "") + 'callable = "a:b"\n'
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert fragment in str(err.value)
    assert "task.toml" in str(err.value)


def test_config_errors_for_name_and_missing_keys(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"\[task\] name = 'my task'.*letters, digits"):
        load_config(write(tmp_path, BASE.replace('"dimuon"', '"my task"')))
    with pytest.raises(ConfigError, match="missing required key 'dataset'"):
        load_config(write(tmp_path, '[task]\nname = "x"\n[code]\ncallable = "a:b"\n'))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[task\n"))
    assert parse_duration("90m", "x") == 5400.0 and parse_duration(30, "x") == 30.0


# ---------------------------------------------------------------------------------------------- ledger
def small_ledger(tmp_path, n: int = 12) -> Ledger:
    units = pl.DataFrame({"run": [1] * n, "lumi": list(range(1, n + 1)), "events": [10] * n})
    return Ledger.create(tmp_path / "ledger.sqlite", units, task="t")


def test_ledger_refuses_impossible_transitions(tmp_path) -> None:
    ledger = small_ledger(tmp_path)
    ledger.plan_stage("s", 0, [{"node": "a", "unit_ids": [0, 1, 2]}])
    with pytest.raises(LedgerError, match="not pending"):
        ledger.plan_stage("s2", 1, [{"node": "b", "unit_ids": [2, 3]}])
    assert ledger.stage("s2") is None, "a refused stage leaves nothing behind"
    with pytest.raises(LedgerError, match="lumi 5 is not assigned"):
        ledger.close_attempt("a", 0, decision=0, outcome="ok", done=[(1, 5)])
    assert not ledger.plan_stage("s", 0, [{"node": "a", "unit_ids": [0]}]), "re-planning is a no-op"
    with pytest.raises(LedgerError, match="already exists"):
        Ledger.create(
            tmp_path / "ledger.sqlite", pl.DataFrame({"run": [1], "lumi": [1], "events": [1]}), task="t"
        )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 11), st.booleans()), max_size=25))
def test_ledger_units_are_never_lost_or_done_twice(tmp_path_factory, operations) -> None:
    """Random plan/close/quarantine sequences keep one state per unit and never undo a done unit."""
    ledger = small_ledger(tmp_path_factory.mktemp("ledger"))
    done_ever: set[int] = set()
    for step, (kind, size, flag) in enumerate(operations):
        pending = ledger.pending_unit_ids().tolist()
        if kind == 0 and pending:
            node = f"n{step}"
            ledger.plan_stage(f"stage{step}", step, [{"node": node, "unit_ids": pending[: size + 1]}])
        elif kind == 1:
            planned = ledger.jobs().filter(pl.col("state") == "planned")["node"].to_list()
            if planned:
                node = planned[0]
                pairs = ledger.job_assignment(node)
                ledger.close_attempt(
                    node,
                    0,
                    decision=0,
                    outcome="ok",
                    done=pairs[: size // 2],
                    returned="all",
                    quarantine_returned=flag,
                    final_job_state="finished",
                )
        elif kind == 2 and pending:
            ledger.quarantine(pending[:size], "test")
        else:
            ledger.release(("quarantined",))
        units = ledger.units()
        counts = ledger.unit_counts()
        assert counts["total"] == 12 == units.height
        assert counts["done"] + counts["pending"] + counts["quarantined"] == 12
        done_now = set(units.filter(pl.col("state") == "done")["unit_id"].to_list())
        assert done_ever <= done_now, "a done unit never goes back"
        done_ever = done_now
        attempts = ledger.attempts()
        if attempts.height:
            assert int(attempts["units_done"].sum()) == len(done_now), "each done unit counted once"


# ---------------------------------------------------------------------------------------------- DAG text
def test_dag_file_refuses_bad_names_and_arguments() -> None:
    dag = DagFile()
    dag.add(DagNode("job.1", submit="a.sub"))
    with pytest.raises(DagBuildError, match="node name 'job.1'"):
        dag.render()
    bad = DagFile()
    bad.add(DagNode("job-1", submit="a.sub", post=["/bin/echo", "two words"]))
    with pytest.raises(DagBuildError, match="contains blanks"):
        bad.render()
    orphan = DagFile()
    orphan.add(DagNode("b", submit="b.sub", parents=["a"]))
    with pytest.raises(DagBuildError, match="unknown parent"):
        orphan.render()


def test_hard_limit_expression_evaluates_with_classad2() -> None:
    classad2 = pytest.importorskip("classad2")
    expr = classad2.ExprTree(hard_limit_expression(3600))
    running_long = classad2.ClassAd({"JobStatus": 2, "EnteredCurrentStatus": 0})
    running_short = classad2.ClassAd({"JobStatus": 2, "EnteredCurrentStatus": 2**31 - 10})
    idle_long = classad2.ClassAd({"JobStatus": 1, "EnteredCurrentStatus": 0})
    assert expr.eval(running_long) is True
    assert expr.eval(running_short) is False
    assert expr.eval(idle_long) is False, "queue time does not count"


def test_job_submit_description_for_condor_and_local(tmp_path) -> None:
    common = dict(
        node="job-3",
        python="/venv/bin/python",
        spec_path=tmp_path / "spec.json",
        report_path=tmp_path / "report.json",
        job_dir=tmp_path,
        event_log=tmp_path / "jobs.log",
        soft_limit_seconds=3600.0,
        hard_limit_seconds=5400.0,
        grace_seconds=60.0,
        memory_mb=2500,
        site="T2_TEST",
        task="t",
        stage="processing",
    )
    condor = str(job_submit(**common))
    assert "periodic_remove = (JobStatus == 2) && (time() - EnteredCurrentStatus > 5520)" in condor
    assert "request_memory = 2500" in condor and "AUTOSPLIT_SOFT_LIMIT_SECONDS=3600" in condor
    assert "--attempt $(RETRY)" in condor and condor.rstrip().endswith("queue")
    local = str(job_submit(**common, batch_backstop=False))
    assert "periodic_remove" not in local


def test_condor_backend_without_a_schedd_fails_clearly_inside_the_task(tmp_path) -> None:
    from autosplit.backends.condor import CondorError
    from autosplit.pipeline.control import start

    task = make_task(tmp_path)
    task.config.backend.kind = "condor"
    before = set(os.listdir(tmp_path))
    with pytest.raises(CondorError, match="no HTCondor schedd is reachable.*--backend local"):
        start(task)
    assert set(os.listdir(tmp_path)) == before, "nothing written outside the task directory"
    assert not (task.dag_dir / "task.dag.condor.sub").exists(), "not even the DAGMan submit file"


def test_condor_dag_submit_description_is_written_offline(tmp_path) -> None:
    pytest.importorskip("htcondor2")
    from autosplit.backends.condor import dag_submit_description

    task = make_task(tmp_path)
    submit = dag_submit_description(task.top_dag, {"dagman": "/bin/true", "maxjobs": 4})
    text = str(submit)
    assert "universe = scheduler" in text and "-MaxJobs 4" in text
    assert (task.dag_dir / "task.dag.condor.sub").exists()


@pytest.mark.pool
@pytest.mark.skip(reason="needs a live HTCondor pool (schedd and condor_dagman); none exists on this machine")
def test_condor_submission_on_a_real_pool(tmp_path) -> None:  # pragma: no cover
    from autosplit.pipeline.control import start

    task = make_task(tmp_path)
    task.config.backend.kind = "condor"
    assert start(task) is None


def test_missing_htcondor_bindings_name_the_condor_extra(tmp_path, monkeypatch) -> None:
    import sys

    from autosplit.backends.condor import act
    from autosplit.backends.local.statusfile import _read_classad
    from autosplit.errors import AutosplitError, MissingDependencyError
    from autosplit.pipeline.status import _running_nodes

    task = make_task(tmp_path)  # (writing the task's DAGs needs htcondor2 too)
    monkeypatch.setitem(sys.modules, "htcondor2", None)  # as if htcondor were not installed
    monkeypatch.setitem(sys.modules, "classad2", None)
    hint = r"pip install 'autosplit\[condor\]'"
    with pytest.raises(MissingDependencyError, match=r"submit description needs .*htcondor2.*" + hint):
        job_submit(
            node="job-1",
            python="/venv/bin/python",
            spec_path=tmp_path / "spec.json",
            report_path=tmp_path / "report.json",
            job_dir=tmp_path,
            event_log=tmp_path / "jobs.log",
            soft_limit_seconds=None,
            hard_limit_seconds=None,
            grace_seconds=60.0,
            memory_mb=2000,
            site="T2_TEST",
            task="t",
            stage="processing",
        )
    with pytest.raises(AutosplitError, match="controlling a DAG on HTCondor needs .*" + hint):
        act(1, "hold")
    with pytest.raises(ImportError, match="classad2.*" + hint):
        _read_classad("[ Type = \"DagStatus\" ]", "s.status")
    assert _running_nodes(task) == {}  # status still works, without the running nodes
