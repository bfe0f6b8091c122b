"""LumiMask: set laws against a set-of-pairs model, round trips, vectorized membership, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autosplit import LumiMask, LumiMaskError
from tests.conftest import DATA

GOLDEN_2017 = DATA / "lumimask" / "Cert_294927-306462_13TeV_EOY2017ReReco_Collisions17_JSON.txt"

# Small run and lumi ranges so random masks overlap, touch and nest often.
runs_st = st.integers(min_value=1, max_value=4)
range_st = st.tuples(st.integers(0, 30), st.integers(0, 6)).map(lambda t: [t[0], t[0] + t[1]])
mask_dict_st = st.dictionaries(runs_st.map(str), st.lists(range_st, max_size=4), max_size=4)


def as_pairs(data: dict) -> set[tuple[int, int]]:
    return {(int(run), lumi) for run, ranges in data.items() for a, b in ranges for lumi in range(a, b + 1)}


def mask_pairs(mask: LumiMask) -> set[tuple[int, int]]:
    runs, lumis = mask.to_pairs()
    return set(zip(runs.tolist(), lumis.tolist(), strict=True))


@given(mask_dict_st, mask_dict_st)
def test_set_operations_match_a_set_of_pairs(a: dict, b: dict) -> None:
    ma, mb = LumiMask(a), LumiMask(b)
    pa, pb = as_pairs(a), as_pairs(b)
    assert mask_pairs(ma) == pa
    assert mask_pairs(ma & mb) == pa & pb
    assert mask_pairs(ma | mb) == pa | pb
    assert mask_pairs(ma - mb) == pa - pb
    assert (ma == mb) == (pa == pb)
    assert ma.n_lumis == len(pa)
    assert ma.runs == sorted({r for r, _ in pa})


@given(mask_dict_st)
def test_canonical_form_is_sorted_and_merged(data: dict) -> None:
    canonical = LumiMask(data).to_dict()
    assert list(canonical) == sorted(canonical, key=int)
    for ranges in canonical.values():
        for (a1, b1), (a2, _b2) in zip(ranges, ranges[1:], strict=False):
            assert a1 <= b1 and b1 + 1 < a2, "ranges must be disjoint and not adjacent"
    assert LumiMask(canonical) == LumiMask(data)


@given(mask_dict_st)
def test_json_and_cmssw_round_trips(data: dict) -> None:
    mask = LumiMask(data)
    assert LumiMask.from_json(mask.to_json()) == mask
    assert LumiMask.from_cmssw(mask.to_cmssw()) == mask
    assert json.loads(mask.to_json()) == mask.to_dict()


@given(mask_dict_st, st.lists(st.tuples(st.integers(-2, 5), st.integers(-3, 40)), max_size=60))
def test_contains_agrees_with_membership(data: dict, probes: list[tuple[int, int]]) -> None:
    mask = LumiMask(data)
    pairs = as_pairs(data)
    runs = np.array([p[0] for p in probes], dtype=np.int64)
    lumis = np.array([p[1] for p in probes], dtype=np.int64)
    got = mask.contains(runs, lumis)
    assert got.dtype == bool
    assert got.tolist() == [p in pairs for p in probes]
    assert [p in mask for p in probes] == [p in pairs for p in probes]


@settings(max_examples=50)
@given(st.lists(st.tuples(runs_st, st.integers(0, 50)), max_size=80))
def test_from_pairs_holds_exactly_those_pairs(pairs: list[tuple[int, int]]) -> None:
    mask = LumiMask.from_pairs([p[0] for p in pairs], [p[1] for p in pairs])
    assert mask_pairs(mask) == set(pairs)


def test_golden_json_2017() -> None:
    mask = LumiMask.from_json(GOLDEN_2017)
    raw = json.loads(GOLDEN_2017.read_text())
    assert mask.runs == sorted(int(r) for r in raw)
    assert mask.n_lumis == sum(b - a + 1 for ranges in raw.values() for a, b in ranges)
    assert (297050, 12) in mask and (297050, 137) in mask
    assert (297050, 138) not in mask and (297050, 11) not in mask
    assert LumiMask.from_json(mask.to_json()) == mask
    assert LumiMask.from_json(str(GOLDEN_2017)) == mask


def test_cmssw_examples() -> None:
    mask = LumiMask.from_cmssw("1:1-1:33,1:35, 2:5")
    assert mask.to_dict() == {"1": [[1, 33], [35, 35]], "2": [[5, 5]]}
    assert mask.to_cmssw() == "1:1-1:33,1:35,2:5"
    assert LumiMask({"1": [[1, 3], [4, 6]]}).to_dict() == {"1": [[1, 6]]}, "adjacent ranges merge"
    assert LumiMask({1: [[5, 9], [1, 6]]}).to_dict() == {"1": [[1, 9]]}, "int keys and overlaps"


def test_contains_is_vectorized_over_large_arrays() -> None:
    mask = LumiMask.from_json(GOLDEN_2017)
    runs, lumis = mask.to_pairs()
    assert mask.contains(runs, lumis).all()
    assert not mask.contains(runs, lumis + 100_000).any()


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"abc": [[1, 2]]}, "run key 'abc'"),
        ({"1.5": [[1, 2]]}, "run key '1.5'"),
        ({"-3": [[1, 2]]}, "run key '-3'"),
        ({"7": [[5, 3]]}, "run '7': range [5, 3] has first > last"),
        ({"7": [[-1, 3]]}, "run '7': range [-1, 3] has a negative lumi"),
        ({"7": [1, 2]}, "run '7': range 1 is not a [first, last] pair"),
        ({"7": [[1, 2, 3]]}, "run '7': range [1, 2, 3]"),
        ({"7": [["1", "2"]]}, "must hold two integers"),
        ({"7": [[True, 2]]}, "must hold two integers"),
        ({"7": "1-2"}, "run '7': expected a list"),
    ],
)
def test_bad_masks_name_run_and_range(data: dict, fragment: str) -> None:
    with pytest.raises(LumiMaskError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        LumiMask(data)


def test_bad_json_input(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LumiMaskError, match="bad.json: not valid JSON"):
        LumiMask.from_json(bad)
    with pytest.raises(LumiMaskError, match="cannot read"):
        LumiMask.from_json(tmp_path / "missing.json")
    listy = tmp_path / "list.json"
    listy.write_text("[1, 2]")
    with pytest.raises(LumiMaskError, match="JSON object"):
        LumiMask.from_json(listy)
    nested = tmp_path / "nested.json"
    nested.write_text('{"1": [[1, [2]]]}')
    with pytest.raises(LumiMaskError, match="nested.json: run '1'"):
        LumiMask.from_json(nested)


@pytest.mark.parametrize("text", ["1:5-2:3", "abc", "1-5", "1:9-1:2"])
def test_bad_cmssw_strings(text: str) -> None:
    with pytest.raises(LumiMaskError):
        LumiMask.from_cmssw(text)


def test_mask_is_immutable_value() -> None:
    a = LumiMask({"1": [[1, 5]]})
    b = LumiMask.from_cmssw("1:1-1:5")
    assert a == b and hash(a) == hash(b)
    assert len({a, b}) == 1
    assert not LumiMask() and a
    assert (1, 3) in a and ("1", 3) not in a and (1,) not in a
