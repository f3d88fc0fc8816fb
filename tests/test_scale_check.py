"""`python -m store.scale_check` at a small size: the store it builds is shaped like a real
phrasing run with maps, and it times every query the dashboard pages call."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from store import aggregates, connect, queries, scale_check

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("scale") / "scale.duckdb"
    scale_check.build(db, 2200)
    return db


def test_every_query_the_pages_call_is_timed():
    calls = r"\b(queries|slices|browse)\.(\w+)\("
    called = set(re.findall(calls, (ROOT / "dashboard" / "data.py").read_text()))
    timed = set(re.findall(calls, inspect.getsource(scale_check.page_calls)))
    assert {("queries", "summary_maps"), ("queries", "compare_rows"), ("slices", "probability_rows"),
            ("browse", "browse_page"), ("browse", "browse_choices")} <= called
    assert called | {("queries", "require_run")} <= timed


def test_each_item_has_a_map_per_layer_and_their_mean(built):
    with connect(built, read_only=True) as con:
        assert con.execute("SELECT count(*), count(DISTINCT item_id) FROM predictions").fetchall() == [(2200, 2200)]
        layers = con.execute("SELECT layer, count(*), min(grid_rows), max(grid_cols), min(len(grid))"
                             " FROM attention_maps GROUP BY layer ORDER BY layer").fetchall()
        assert layers == [(layer, 2200, 16, 16, 256) for layer in (-1, 0, 1, 2, 3)]
        assert con.execute("SELECT count(*) FROM attention_changes").fetchall() == [(2000,)]  # every variant
        assert aggregates.current(con, "big")  # refreshed, as finishing a run does
    maps = queries.item_maps(built, "big", scale_check.item_id(12))
    assert sorted(maps.layer) == [-1, 0, 1, 2, 3] and set(maps.layers.map(list).map(tuple)) == {(0, 1, 2, 3)}


def test_page_calls_answer_on_the_built_store(built):
    calls = scale_check.page_calls(built, "big", 2200)
    assert len(calls["phrasing_rows"]()) == 2200
    assert len(calls["attention_changes (report CLI)"]()) == 2000
    assert len(calls["change_statistics"]()) == 2000
    matched, shown = calls["change_gallery"]()
    assert 0 < matched < 2000 and len(shown) == 6
    assert calls["change_choices"]()["strategy_category"] == sorted(scale_check.CATEGORIES[1:])  # no baseline variant
    assert len(calls["summary_maps (one item)"]()) == 1
    assert calls["item_map (baseline)"]().shape == (16, 16)
    assert calls["change_difference"]() is not None
    assert not calls["method_figures"]().empty


@pytest.mark.parametrize("stale", [False, True], ids=["refreshed", "stale"])
def test_main_prints_sizes_times_and_every_median(tmp_path, capsys, stale):
    db = tmp_path / "scale.duckdb"
    args = ["--db", str(db), "--predictions", "2200", "--repeat", "1", "--layers", "2"] + (["--stale"] if stale else [])
    assert scale_check.main(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"built .* in [\d.]+ s: \d+ MiB, \d+ bytes per prediction", out)
    assert ("refreshed the pre-aggregated tables" in out) != stale
    assert out.count("median") == len(scale_check.page_calls(db))
    with connect(db, read_only=True) as con:
        assert con.execute("SELECT count(DISTINCT layer) FROM attention_maps").fetchall() == [(3,)]
        assert aggregates.current(con, "big") != stale
