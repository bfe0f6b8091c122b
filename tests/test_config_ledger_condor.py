"""Task config validation, ledger invariants, DAG/submit text and the condor backend without a pool."""

from __future__ import annotations

import textwrap

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autosplit.dagbuilder import DagFile, DagNode, hard_limit_expression, job_submit
from autosplit.dagbuilder.dagfile import DagBuildError
from autosplit.ledger import Ledger, LedgerError, UnitChanges
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
    # Unset, a probe's soft limit is a sixteenth of the target (the scheduler's own default).
    assert config.target_seconds == 9000.0 and config.probe_seconds == 562.5
    assert config.dataset.source == str(tmp_path / "data/*.root")
    assert config.task.workdir == str(tmp_path / "autosplit-tasks")
    assert config.splitting.alpha == 0.05 and config.limits.retries == 1 and config.n_probes == config.slots


@pytest.mark.parametrize(("target", "probe"), [("20m", 300.0), ("4s", 2.0), ("48h", 1800.0), ("8h", 1800.0)])
def test_an_unset_probe_limit_follows_the_target_like_the_schedulers_default(tmp_path, target, probe) -> None:
    from autosplit.datasets import Dataset
    from autosplit.scheduler import Scheduler
    from autosplit.splitting.limits import default_probe_seconds

    config = load_config(write(tmp_path, BASE + f'[splitting]\ntarget_runtime = "{target}"\n'))
    assert config.splitting.probe_seconds is None and config.probe_seconds == probe
    assert default_probe_seconds(config.target_seconds) == probe
    # The scheduler resolves an unset limit with the same function.
    assert Scheduler.__init__.__kwdefaults__["probe_seconds"] is None
    units = pl.DataFrame({"run": [1], "lumi": [1], "events": [10], "file": ["/store/a.root"], "bytes": [1]})
    dataset = Dataset.from_units(units)
    assert Scheduler(dataset, target_runtime=config.target_seconds).probe_seconds == probe


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


# Every number has a finite, sensible range (issue 14, item 5): inf, nan, negative and absurd values are refused
# when the TOML is read, with one line naming the key and the allowed range -- not when a job runs.
@pytest.mark.parametrize(
    ("section", "key", "value", "allowed"),
    [
        ("splitting", "target_runtime", "inf", "between 1 s and 7 days"),
        ("splitting", "target_runtime", "nan", "between 1 s and 7 days"),
        ("splitting", "target_runtime", "-5", "between 1 s and 7 days"),
        ("splitting", "target_runtime", "'200h'", "between 1 s and 7 days"),
        ("splitting", "target_runtime", "1e400", "between 1 s and 7 days"),
        ("splitting", "target_runtime", "99999999999999999999999999", "between 1 s and 7 days"),
        ("splitting", "probe_seconds", "'0s'", "between 0.1 s and 1 day"),
        ("limits", "grace_seconds", "inf", "between 0 s and 1 h"),
        ("limits", "grace_seconds", "-1", "between 0 s and 1 h"),
        ("limits", "grace_seconds", "'2h'", "between 0 s and 1 h"),
        ("output", "transfer_timeout", "nan", "between 1 s and 7 days"),
        ("output", "transfer_timeout", "'30d'", "expected seconds or a duration"),
        ("splitting", "alpha", "1e-300", "[0.0001, 0.5)"),
        ("splitting", "alpha", "nan", "[0.0001, 0.5)"),
        ("splitting", "alpha", "0.5", "[0.0001, 0.5)"),
        ("splitting", "probe_fraction", "0.0", "[1e-06, 0.5]"),
        ("splitting", "probe_fraction", "inf", "[1e-06, 0.5]"),
        ("splitting", "rel_precision", "-0.1", "[0.001, 0.9]"),
        ("splitting", "max_tails", "-1", "[0, 20]"),
        ("splitting", "probes", "0", "[1, 10_000]"),
        ("splitting", "slots", "123456789", "[1, 1_000_000]"),
        ("splitting", "max_output_bytes", "10", "[1_000_000, 1_000_000_000_000_000] bytes"),
        ("splitting", "max_files_per_job", "0", "[1, 100_000]"),
        ("limits", "memory_mb", "0", "[16, 1_048_576] MB"),
        ("limits", "memory_mb", "99999999999999999999", "[16, 1_048_576] MB"),
        ("limits", "retries", "-1", "[0, 10]"),
        ("limits", "abort_fraction", "0.0", "(0, 1]"),
        ("limits", "abort_min_jobs", "0", "[1, 1_000_000]"),
        ("output", "temp_budget_bytes", "-1", "[1_000_000, 1_000_000_000_000_000_000] bytes"),
        ("backend", "max_jobs", "0", "[1, 100_000]"),
    ],
)
def test_config_numbers_have_finite_ranges(
    tmp_path, section: str, key: str, value: str, allowed: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, BASE + f"[{section}]\n{key} = {value}\n"))
    message = str(err.value)
    assert "\n" not in message and "task.toml" in message
    assert f"[{section}] {key} = " in message and allowed in message, message


def test_config_range_edges_are_accepted(tmp_path) -> None:
    text = BASE + (
        "[splitting]\ntarget_runtime = '168h'\nprobe_seconds = 1\nalpha = 0.0001\nprobe_fraction = 0.5\n"
        "[limits]\ngrace_seconds = 0\nmemory_mb = 16\n[output]\ntransfer_timeout = '1s'\n"
    )
    config = load_config(write(tmp_path, text))
    assert config.target_seconds == 7 * 86400 and config.probe_seconds == 1.0 and config.grace_seconds == 0.0
    assert config.splitting.alpha == 1e-4 and config.output.transfer_timeout == 1.0


def test_config_file_that_is_not_toml_text(tmp_path) -> None:
    binary = tmp_path / "task.toml"
    binary.write_bytes(b"[task]\nname = '\xff'\n")
    with pytest.raises(ConfigError, match=r"task.toml: not a text file"):
        load_config(binary)
    with pytest.raises(ConfigError, match="no such task file"):
        load_config(tmp_path / "absent.toml")


# ---------------------------------------------------------------------------------------------- ledger
def small_ledger(tmp_path, n: int = 12) -> Ledger:
    units = pl.DataFrame({"run": [1] * n, "lumi": list(range(1, n + 1)), "events": [10] * n})
    return Ledger.create(tmp_path / "ledger.sqlite", units, task="t")


def changes(ids, state, node=None) -> UnitChanges:
    ids = np.asarray(ids, dtype=np.int64)
    n = ids.size
    zeros = np.zeros(n, np.int64)
    return UnitChanges(
        ids, np.full(n, state), [node] * n, zeros, zeros, zeros, zeros.astype(bool), [None] * n
    )


def bind(ledger: Ledger, node: str, ids) -> int:
    return ledger.bind_job(
        node,
        stage="s",
        kind="bulk",
        unit_ids=ids,
        predicted_seconds=1.0,
        soft_limit_seconds=1.0,
        hard_limit_seconds=2.0,
        memory_mb=100,
    )


def test_ledger_refuses_impossible_transitions(tmp_path) -> None:
    ledger = small_ledger(tmp_path)
    v1 = bind(ledger, "a", [0, 1, 2])
    with pytest.raises(LedgerError, match="not pending"):
        bind(ledger, "b", [2, 3])
    assert ledger.job("b") is None and ledger.version() == v1, "a refused binding leaves nothing behind"
    with pytest.raises(LedgerError, match="already bound"):
        bind(ledger, "a", [5])
    with pytest.raises(LedgerError, match="only a unit a job held can be done"):
        ledger.record_outcome(
            "a", 0, decision=0, outcome="ok", units=changes([5], 2, "a"), job_state="finished"
        )
    assert ledger.attempts().height == 0, "a refused outcome records nothing"
    ledger.record_outcome(
        "a", 0, decision=0, outcome="ok", units=changes([0, 1, 2], 2, "a"), done=3, job_state="finished"
    )
    with pytest.raises(LedgerError, match="unit 1 is done"):
        ledger.record_changes(changes([1], 0))
    again = ledger.record_outcome("a", 0, decision=1, outcome="retry", job_state=None)
    assert again.outcome == "ok", "re-recording an attempt returns the stored decision"
    with pytest.raises(LedgerError, match="already exists"):
        Ledger.create(
            tmp_path / "ledger.sqlite", pl.DataFrame({"run": [1], "lumi": [1], "events": [1]}), task="t"
        )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 11), st.booleans()), max_size=25))
def test_ledger_units_are_never_lost_or_done_twice(tmp_path_factory, operations) -> None:
    """Random bind/outcome/quarantine/release sequences keep one state per unit and never undo a done
    unit; refused requests change nothing."""
    ledger = small_ledger(tmp_path_factory.mktemp("ledger"))
    done_ever: set[int] = set()
    version = ledger.version()
    for step, (kind, size, flag) in enumerate(operations):
        pending = ledger.pending_unit_ids().tolist()
        if kind == 0 and pending:
            version = bind(ledger, f"n{step}", pending[: size + 1])
        elif kind == 1:
            planned = ledger.jobs().filter(pl.col("state") == "planned")["node"].to_list()
            if planned:
                node = planned[0]
                ids = ledger.job_unit_ids(node)
                cut = size // 2
                back = 3 if flag else 0
                state = np.array([2] * min(cut, len(ids)) + [back] * max(len(ids) - cut, 0))
                update = changes(ids, 0)
                update.state = state
                update.node = [node if c == 2 else None for c in state.tolist()]
                ledger.record_outcome(
                    node,
                    0,
                    decision=0,
                    outcome="ok",
                    units=update,
                    done=int((state == 2).sum()),
                    job_state="finished",
                )
        elif kind == 2 and pending:
            ledger.quarantine(pending[:size], "test")
        else:
            quarantined = ledger.units("quarantined")["unit_id"].to_list()
            done = ledger.units("done")["unit_id"].to_list()
            if quarantined:
                ledger.record_changes(changes(quarantined, 0))
            if done:
                with pytest.raises(LedgerError, match="is done"):
                    ledger.record_changes(changes(done[:1], 0))
        assert ledger.version() >= version
        version = ledger.version()
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


# The condor backend without a schedd (isolated from any pool CONDOR_CONFIG names) and on a real pool:
# tests/test_condor_backend.py and tests/test_condor_pool.py.


def test_condor_dag_submit_description_is_written_offline(tmp_path) -> None:
    pytest.importorskip("htcondor2")
    from autosplit.backends.condor import dag_submit_description

    task = make_task(tmp_path)
    submit = dag_submit_description(task.top_dag, {"dagman": "/bin/true", "maxjobs": 4})
    text = str(submit)
    assert "universe = scheduler" in text and "-MaxJobs 4" in text
    assert (task.dag_dir / "task.dag.condor.sub").exists()


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
        _read_classad('[ Type = "DagStatus" ]', "s.status")
    assert _running_nodes(task) == {}  # status still works, without the running nodes
