"""DAG parser: DAGMan's lexical rules, two passes, and refusal of anything unsupported with file/line/keyword."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autosplit.backends.local import DagParseError, find_cycle, parse_dag
from autosplit.backends.local.parser import parse_vars


def write(tmp_path: Path, text: str, name: str = "t.dag") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_keywords_case_insensitive_dashes_comments_and_continuations(tmp_path: Path) -> None:
    dag = parse_dag(
        write(
            tmp_path,
            "# a comment\n"
            "// another comment\n"
            "job A a.sub\n"
            "Job \\\n   B b.sub DIR sub NOOP\n"
            "Script  Defer 4 30  Post  A post.sh $RETURN \\\n  $RETRY\n"
            "Abort-dag-on A 3 RETURN 7\n"
            "retry A 2 unless-exit 2\n"
            "pre-skip B 5\n"
            "Parent A child B\n",
        )
    )
    a, b = dag.nodes["A"], dag.nodes["B"]
    assert a.post is not None and a.post.tokens == ["post.sh", "$RETURN", "$RETRY"]
    assert (a.post.defer_status, a.post.defer_time) == (4, 30.0)
    assert (a.abort_on, a.abort_return, a.retry, a.unless_exit) == (3, 7, 2, 2)
    assert (b.dir, b.noop, b.pre_skip, b.parents) == ("sub", True, 5, ["A"])
    assert a.children == ["B"]


def test_second_pass_commands_may_precede_the_nodes(tmp_path: Path) -> None:
    dag = parse_dag(
        write(
            tmp_path,
            'VARS ALL_NODES x="all"\nPARENT A CHILD B\nVARS B x="mine"\nJOB A a.sub\nJOB B a.sub\nFINAL F a.sub\n',
        )
    )
    assert [(v.key, v.value) for v in dag.nodes["B"].vars] == [("x", "all"), ("x", "mine")]
    assert dag.nodes["B"].parents == ["A"]
    assert dag.nodes["F"].vars == [] and dag.final == "F"  # ALL_NODES skips the FINAL node


@pytest.mark.parametrize(
    "text, line, keyword",
    [
        ("JOB A a.sub\nFROBNICATE A\n", 2, "FROBNICATE"),
        ("JOB A a.sub\n\nSERVICE S s.sub\n", 3, "SERVICE"),
        ("JOB A a.sub\nTOLERANCE A 2\n", 2, "TOLERANCE"),
        ("JOB A a.sub\nWEAK PARENT A CHILD A\n", 2, "WEAK"),
        ("JOB A a.sub\nSET_JOB_ATTR x = 1\n", 2, "SET_JOB_ATTR"),
        ("JOB A a.sub\nJOB A b.sub\n", 2, "JOB"),
        ("JOB PARENT a.sub\n", 1, "JOB"),
        ("JOB a+b a.sub\n", 1, "JOB"),
        ("JOB A a.sub\nRETRY B 2\n", 2, "RETRY"),
        ("JOB A a.sub\nRETRY A two\n", 2, "RETRY"),
        ("JOB A a.sub\nPRE_SKIP A 0\n", 2, "PRE_SKIP"),
        ("JOB A a.sub\nABORT-DAG-ON A 1 RETURN 300\n", 2, "ABORT-DAG-ON"),
        ("FINAL F a.sub\nJOB A a.sub\nPARENT A CHILD F\n", 3, "PARENT"),
        ("FINAL F a.sub\nRETRY F 1\n", 2, "RETRY"),
        ("JOB A a.sub\nVARS A x=unquoted\n", 2, "VARS"),
        ('JOB A a.sub\nVARS A queue_x="1"\n', 2, "VARS"),
        ("JOB A a.sub\nSCRIPT PRE A\n", 2, "SCRIPT"),
        ("JOB A a.sub\nSCRIPT DEBUG f BOTH PRE A x.sh\n", 2, "SCRIPT"),
        ("JOB A a.sub DIRECTORY x\n", 1, "JOB"),
        ("JOB A x.condor.sub\n", 1, "JOB"),
        ("SPLICE S missing.dag\n", 1, "SPLICE"),
    ],
)
def test_refused_with_file_line_and_keyword(tmp_path: Path, text: str, line: int, keyword: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(DagParseError) as info:
        parse_dag(path)
    err = info.value
    assert (err.file, err.line, err.keyword) == (str(path), line, keyword)
    assert str(err).startswith(f"{path}:{line}: {keyword}: ")


def test_config_file_knobs_read_and_unknown_knob_refused(tmp_path: Path) -> None:
    write(tmp_path, "DAGMAN_MAX_JOBS_SUBMITTED = 3\n# comment\nDAGMAN_ALWAYS_RUN_POST = True\n", "ok.config")
    dag = parse_dag(write(tmp_path, "CONFIG ok.config\nJOB A a.sub\n"))
    assert dag.config == {"DAGMAN_MAX_JOBS_SUBMITTED": "3", "DAGMAN_ALWAYS_RUN_POST": "True"}
    bad = write(tmp_path, "DAGMAN_MAX_JOBS_SUBMITTED = 3\nDAGMAN_USE_JOIN_NODES = False\n", "bad.config")
    with pytest.raises(DagParseError) as info:
        parse_dag(write(tmp_path, "CONFIG bad.config\n", "u.dag"))
    assert (info.value.file, info.value.line, info.value.keyword) == (str(bad), 2, "DAGMAN_USE_JOIN_NODES")


def test_inline_and_named_submit_descriptions(tmp_path: Path) -> None:
    dag = parse_dag(
        write(
            tmp_path,
            "JOB A {\n  executable = /bin/true\n}\n"
            "SUBMIT-DESCRIPTION d @=end\nexecutable = /bin/echo\n@end\n"
            "JOB B d\n",
        )
    )
    assert dag.nodes["A"].inline_submit == "  executable = /bin/true\n"
    assert dag.descriptions["d"] == "executable = /bin/echo\n" and dag.nodes["B"].submit == "d"


def test_splice_scopes_names_dirs_and_categories(tmp_path: Path) -> None:
    (tmp_path / "s").mkdir()
    write(tmp_path, "JOB X x.sub DIR d\nJOB Y y.sub\nPARENT X CHILD Y\nCATEGORY X c\nCATEGORY Y +g\nMAXJOBS c 2\n",
          "s/inner.dag")  # fmt: skip
    dag = parse_dag(
        write(tmp_path, "JOB A a.sub\nSPLICE S inner.dag DIR s\nPARENT A CHILD S\nMAXJOBS S+c 5\n")
    )
    assert list(dag.nodes) == ["A", "S+X", "S+Y"]
    assert dag.nodes["S+X"].dir == "s/d" and dag.nodes["S+Y"].dir == "s"
    assert dag.nodes["S+X"].parents == ["A"] and dag.nodes["S+Y"].parents == ["S+X"]
    assert dag.nodes["S+X"].category == "S+c" and dag.nodes["S+Y"].category == "+g"
    assert dag.maxjobs["S+c"] == 5  # the including file wins


def test_include_is_textual_and_recursion_refused(tmp_path: Path) -> None:
    write(tmp_path, "JOB B b.sub\nPARENT A CHILD B\n", "inc.dag")
    dag = parse_dag(write(tmp_path, "JOB A a.sub\nINCLUDE inc.dag\n"))
    assert dag.nodes["B"].parents == ["A"]
    write(tmp_path, "INCLUDE loop.dag\n", "loop.dag")
    with pytest.raises(DagParseError, match="recursive"):
        parse_dag(tmp_path / "loop.dag")


def test_find_cycle(tmp_path: Path) -> None:
    dag = parse_dag(
        write(tmp_path, "JOB A a\nJOB B b\nJOB C c\nPARENT A CHILD B\nPARENT B CHILD C\nPARENT C CHILD B\n")
    )
    cycle = find_cycle(dag)
    assert cycle is not None and cycle[0] == cycle[-1] and set(cycle) == {"B", "C"}
    assert find_cycle(parse_dag(write(tmp_path, "JOB A a\nJOB B b\nPARENT A CHILD B\n", "ok.dag"))) is None


def test_status_file_and_jobstate_first_one_wins(tmp_path: Path) -> None:
    dag = parse_dag(
        write(tmp_path, "NODE_STATUS_FILE s1 5 ALWAYS-UPDATE\nNODE_STATUS_FILE s2\nJOBSTATE_LOG j\n")
    )
    assert dag.status_file is not None
    assert (dag.status_file.path, dag.status_file.min_interval, dag.status_file.always_update) == (
        "s1",
        5.0,
        True,
    )
    assert dag.jobstate_log == "j" and any("second NODE_STATUS_FILE" in w for w in dag.warnings)


@given(
    st.dictionaries(st.from_regex(r"[a-p][a-z0-9_]{0,8}", fullmatch=True), st.text(max_size=20), max_size=5)
)
def test_vars_escaping_round_trips(values: dict[str, str]) -> None:
    text = " ".join(f'{k}="' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for k, v in values.items())
    assert dict(parse_vars(text, ValueError)) == values
