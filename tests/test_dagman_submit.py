"""Submit-description reader: argument/environment syntaxes, macros, queue statements, refused keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from autosplit.backends.local import SubmitError
from autosplit.backends.local.submit import build_job, parse_environment, split_arguments


@pytest.mark.parametrize(
    "value, argv",
    [
        # Examples from the condor_submit manual (arguments, new and old syntax).
        ('"3 simple arguments"', ["3", "simple", "arguments"]),
        ("\"one 'two with spaces' 3\"", ["one", "two with spaces", "3"]),
        ("\"one \"\"two\"\" 'spacey ''quoted'' argument'\"", ["one", '"two"', "spacey 'quoted' argument"]),
        ("one \\\"two\\\" 'three'", ["one", '"two"', "'three'"]),
        ("\"a '' b\"", ["a", "", "b"]),
        ("", []),
    ],
)
def test_split_arguments(value: str, argv: list[str]) -> None:
    assert split_arguments(value) == argv


@pytest.mark.parametrize("value", ['"unterminated \'quote"', '"lone " quote"', 'old "quote'])
def test_split_arguments_rejects_bad_quoting(value: str) -> None:
    with pytest.raises(SubmitError):
        split_arguments(value)


def test_parse_environment_both_syntaxes() -> None:
    assert parse_environment("A=1;B=two words") == {"A": "1", "B": "two words"}
    assert parse_environment('"A=1 B=\'x y\' C=""q"""') == {"A": "1", "B": "x y", "C": '"q"'}
    with pytest.raises(SubmitError):
        parse_environment('"A=1 novalue"')


def job(tmp_path: Path, text: str, **kw):
    (tmp_path / "exe").write_text("#!/bin/sh\n")
    (tmp_path / "exe").chmod(0o755)
    kw.setdefault("prepend", {})
    kw.setdefault("append", {})
    kw.setdefault("base_env", {"HOME": "/h", "PATH": "/bin", "CONDOR_X": "1"})
    kw.setdefault("dag_attributes", {"DAGNodeName": '"N"', "DAGParentNodeNames": '"P1,P2"'})
    return build_job(text, "test.sub", submit_dir=tmp_path, cluster=42, **kw)


def test_macros_vars_precedence_and_special_macros(tmp_path: Path) -> None:
    spec = job(
        tmp_path,
        "executable = exe\n"
        "x = file\n"
        "arguments = $(x) $(y) $(undefined) $(z:dflt) $(Cluster).$(Process) $(JOB) $CHOICE(IsWindows,lin,win)\n"
        "y = $(y) more\n"
        "queue 2\n",
        prepend={"x": "vars", "y": "base", "JOB": "N"},
        append={"z": "late"},
    )
    assert [p.argv[1:] for p in spec.procs] == [
        ["file", "base", "more", "late", "42.0", "N", "lin"],
        ["file", "base", "more", "late", "42.1", "N", "lin"],
    ]


def test_streams_initialdir_getenv_environment(tmp_path: Path) -> None:
    spec = job(
        tmp_path,
        "executable = exe\ninitialdir = run\noutput = $(Process).out\nerror = /abs/err\ninput = in.txt\n"
        'log = j.log\ngetenv = CONDOR*\nenvironment = "K=v"\nqueue\n',
    )
    p = spec.procs[0]
    assert (
        p.cwd == tmp_path / "run" and p.stdout == tmp_path / "run" / "0.out" and p.stderr == Path("/abs/err")
    )
    assert p.stdin == tmp_path / "run" / "in.txt" and spec.log == tmp_path / "run" / "j.log"
    assert p.env == {"CONDOR_X": "1", "K": "v"}
    assert p.argv == [str(tmp_path / "exe")]
    everything = job(tmp_path, "executable = exe\ngetenv = true\nqueue\n")
    assert everything.procs[0].env == {"HOME": "/h", "PATH": "/bin", "CONDOR_X": "1"}


def test_queue_in_and_from(tmp_path: Path) -> None:
    (tmp_path / "items.txt").write_text("a 1\nb 2\n")
    spec = job(tmp_path, "executable = exe\narguments = $(name)-$(n)\nqueue name, n from items.txt\n")
    assert [p.argv[1] for p in spec.procs] == ["a-1", "b-2"]
    spec = job(tmp_path, "executable = exe\narguments = $(Item)\nqueue 2 in (x, y)\n")
    assert [p.argv[1] for p in spec.procs] == ["x", "x", "y", "y"]


def test_job_ad_references_and_tag(tmp_path: Path) -> None:
    spec = job(
        tmp_path,
        'executable = exe\n+Foo = "bar"\nMy.Count = 3\n+job_tag_name = "+Foo"\n'
        "arguments = $$([DAGParentNodeNames]) $$([Count * 2]) $$([Foo])\nqueue\n",
    )
    assert spec.procs[0].argv[1:] == ["P1,P2", "6", "bar"] and spec.tag == "bar"
    with pytest.raises(SubmitError, match="machine attribute"):
        job(tmp_path, "executable = exe\narguments = $$(Memory)\nqueue\n")


@pytest.mark.parametrize(
    "line, needle",
    [
        ("periodic_remove = true", "periodic_remove"),
        ("on_exit_remove = false", "on_exit_remove"),
        ("hold = true", "hold"),
        ("universe = docker", "universe"),
        ("max_retries = 3", "max_retries"),
        ("arguments = $RANDOM_INTEGER(1,2)", "RANDOM_INTEGER"),
    ],
)
def test_refused_keys_are_named(tmp_path: Path, line: str, needle: str) -> None:
    with pytest.raises(SubmitError, match=needle):
        job(tmp_path, f"executable = exe\n{line}\nqueue\n")


@pytest.mark.parametrize(
    "text, needle",
    [
        ("queue\n", "no executable"),
        ("executable = missing\nqueue\n", "does not exist"),
        ("executable = exe\n", "no queue statement"),
        ("executable = exe\nqueue\nqueue\n", "only one queue"),
        ("executable = exe\nif defined X\nqueue\n", "'if'"),
        ("executable = exe\nqueue 2\n", "DAGMAN_PROHIBIT_MULTI_JOBS"),
        ("executable = exe\na = $(b)\nb = $(a)\narguments = $(a)\nqueue\n", "too deep"),
    ],
)
def test_invalid_descriptions(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(SubmitError, match=needle):
        job(tmp_path, text, prohibit_multi=True)


def test_pool_only_keys_and_user_macros_accepted(tmp_path: Path) -> None:
    spec = job(
        tmp_path,
        "executable = exe\nuniverse = vanilla\nrequest_memory = 2GB\nrequirements = True\n"
        "transfer_input_files = a, b\nnotification = NEVER\nmy_macro = hello\narguments = $(my_macro)\n"
        "kill_sig = SIGINT\njob_max_vacate_time = 3\nqueue\n",
    )
    assert spec.procs[0].argv[1:] == ["hello"] and spec.kill_sig == 2 and spec.vacate_time == 3.0


# ------------------------------------------------------------------ $(...) that is not a macro reference
# condor_submit (config.cpp, next_config_macro) expands $(body) only when the body is a macro name -- letters,
# digits, '_', '.', '/' -- optionally followed by ':' and a default (which may also hold '$', ' ', ',', '\').
# Anything else is left as written: the local executor used to turn it into an empty string.
@pytest.mark.parametrize(
    ("arguments", "argv"),
    [
        (
            "\"-c 'n=$(cat n.txt 2>/dev/null || echo 0); echo $((n+1))'\"",
            ["-c", "n=$(cat n.txt 2>/dev/null || echo 0); echo $((n+1))"],
        ),
        (
            "$((N+1)) $(( N )) $(N+1) $(N N) $(N:a:b)",
            ["$((N+1))", "$((", "N", "))", "$(N+1)", "$(N", "N)", "$(N:a:b)"],
        ),
        ("$(cat $(N).txt)", ["$(cat", "5.txt)"]),  # the inner reference is expanded, the outer text kept
        ("$(A:$(N)) $(M:a,b\\c) $(M:x y)", ["5", "a,b\\c", "x", "y"]),  # defaults may hold $ , \ and blanks
        ("$(My.dotted) $(un/defined)x $() $(N:)", ["dot", "x", "5"]),  # . and / are name characters
        ("$(DOLLAR)(N) $(DOLLAR)$(DOLLAR) $$([1 + 1])", ["$(N)", "$$", "2"]),
        (
            "$env(HOME) $ENV(HOME) $ENV(HOME X) $Cluster(1)",
            ["$env(HOME)", "/h", "$ENV(HOME", "X)", "$Cluster(1)"],
        ),
        ("$(EMPTY:fallback) $(N:fallback)", ["fallback", "5"]),  # the default applies to an empty value too
    ],
    ids=["shell", "arithmetic", "nested", "defaults", "name-chars", "dollar", "functions", "empty-value"],
)
def test_only_macro_names_are_expanded_like_condor_submit(tmp_path: Path, arguments: str, argv: list) -> None:
    spec = job(
        tmp_path,
        f"executable = exe\nN = 5\nEMPTY =\nMy.dotted = dot\narguments = {arguments}\nqueue\n",
    )
    assert spec.procs[0].argv[1:] == argv
