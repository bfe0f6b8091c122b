"""Node status file: DAGMan's layout, read back identically by the fast reader and by classad2."""

from __future__ import annotations

from pathlib import Path

import classad2
from hypothesis import given, settings
from hypothesis import strategies as st

from autosplit.backends.local.statusfile import StatusRow, _read_fast, read_node_status, render_status

COUNTS = dict.fromkeys(
    ["NodesTotal", "NodesDone", "NodesPre", "NodesQueued", "NodesPost", "NodesReady", "NodesUnready",
     "NodesFutile", "NodesFailed", "JobProcsHeld", "JobProcsIdle"],
    1,
)  # fmt: skip

details = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), max_size=30)


@settings(max_examples=50)
@given(st.lists(st.tuples(st.from_regex(r"[A-Za-z0-9_.:+-]{1,12}", fullmatch=True), st.integers(0, 7), details),
                min_size=0, max_size=8, unique_by=lambda t: t[0]))  # fmt: skip
def test_round_trip_matches_classad2(tmp_path_factory, rows) -> None:
    text = render_status(
        ["a.dag", 'we"ird.dag'], 3, "", COUNTS, [StatusRow(n, s, d, 1, 0, 0) for n, s, d in rows], 1e9
    )
    path = tmp_path_factory.mktemp("s") / "x.status"
    path.write_text(text)
    report = read_node_status(path)
    ads = list(classad2.parseAds(text))
    assert report.dag["DagFiles"] == ["a.dag", 'we"ird.dag'] == list(ads[0]["DagFiles"])
    assert {k: dict(v) for k, v in report.nodes.items()} == {
        ad["Node"]: {k: ad[k] for k in ad.keys()} for ad in ads if ad["Type"] == "NodeStatus"
    }
    assert report.nodes == _read_fast(text).nodes and report.end["NextUpdate"] == 1_000_000_000
    assert [n for n, _, _ in rows] == list(report.nodes)  # file (declaration) order kept


def test_reads_a_file_in_another_layout_through_classad2(tmp_path: Path) -> None:
    path = tmp_path / "odd.status"
    path.write_text(
        '[ Type = "DagStatus"; DagStatus = 5; ]\n[ Type = "NodeStatus"; Node = "A"; NodeStatus = 5; ]\n'
    )
    report = read_node_status(path)
    assert report.dag["DagStatus"] == 5 and report.status_of("A").name == "DONE"
