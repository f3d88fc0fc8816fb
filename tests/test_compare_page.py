"""The Compare page, rendered by Streamlit's AppTest over a real store (tests/test_compare.py's
demo-model runs and imports): its tables against figures recomputed from the stored rows, the
item view with both runs' maps, and the selection kept in the URL."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from scipy.stats import binomtest
from streamlit.testing.v1 import AppTest

from tests.conftest import open_page
from tests.test_compare import build_compare_store

PAGE = "views/compare.py"

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return build_compare_store(tmp_path_factory.mktemp("compare_page"))


def _page(db: Path, monkeypatch, **params) -> AppTest:
    return open_page(db, monkeypatch, PAGE, **params)


def _table(at: AppTest, column: str):
    """The first dataframe on the page that has `column`."""
    return next(d for d in at.dataframe if column in d.value.columns)


def _disagreements(at: AppTest):
    return next(d for d in at.dataframe if d.key and d.key.startswith("disagreements"))


def _pairs(db: Path) -> list[tuple]:
    """Run a's and the import's answers, joined on image id and question text here."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("""
            SELECT x.item_id, x.question, x.correct, y.correct, x.answer, y.answer
            FROM prediction_details x JOIN prediction_details y ON y.image_id = x.image_id AND y.question = x.question
            WHERE x.run_id = 'a' AND y.run_id = 'imp' ORDER BY x.row_number""").fetchall()
    finally:
        con.close()


def test_tables_show_the_comparison_of_a_known_store(store, monkeypatch):
    at = _page(store, monkeypatch, runs=["a", "imp"])
    assert at.multiselect[0].value == ["a", "imp"]
    pairs = _pairs(store)
    accuracy = _table(at, "ci_low").value.set_index(["condition", "run"])
    assert accuracy.loc[("overall", "a"), "n_correct"] == sum(p[2] for p in pairs)
    assert accuracy.loc[("overall", "imp"), "n_correct"] == sum(p[3] for p in pairs)
    assert accuracy.loc[("overall", "imp"), "n"] == len(pairs) == 8
    overall = _table(at, "McNemar p").value.set_index("condition").loc["overall"]
    only_a = sum(1 for p in pairs if p[2] and not p[3])
    only_imp = sum(1 for p in pairs if p[3] and not p[2])
    assert (overall["right only in first"], overall["right only in second"]) == (only_a, only_imp)
    assert overall["McNemar p"] == pytest.approx(binomtest(only_a, only_a + only_imp).pvalue)
    differ = _disagreements(at).value
    assert set(differ["item"]) == {p[0] for p in pairs if p[4] != p[5]}
    assert len(differ) == 4  # three answers turned round and one uncertain
    assert not any("Phrasing" in h.value for h in at.subheader)


def test_picking_a_row_opens_the_item_with_both_maps_and_the_url_keeps_it(store, monkeypatch):
    at = _page(store, monkeypatch, runs=["a", "b", "imp"])
    table = _disagreements(at)
    at.session_state[table.key] = {"selection": {"rows": [1], "columns": [], "cells": []}}
    at.run()
    assert not at.exception, at.exception
    item = table.value["item"].iloc[1]
    assert at.query_params["item"] == [item] or at.query_params["item"] == item
    assert len(at.get("image")) == 2  # a and b stored maps; the import has none
    assert any("Imported from another tool" in i.value for i in at.info)
    assert any("a vs b on the common grid" in c.value for c in at.caption)
    at.session_state[table.key] = {"selection": {"rows": [], "columns": [], "cells": []}}
    at.run()
    assert not at.exception and "item" not in at.query_params and not at.get("image")  # unpicked: closed


def test_the_url_restores_runs_and_item(store, monkeypatch):
    pairs = _pairs(store)
    item, question = next((p[0], p[1]) for p in pairs if p[4] != p[5])
    at = _page(store, monkeypatch, runs=["a", "b", "imp"], item=item)
    assert at.multiselect[0].value == ["a", "b", "imp"]
    assert len(at.get("image")) == 2
    assert any(question.rstrip("?") in m.value for m in at.markdown)
    stale = _page(store, monkeypatch, runs=["a", "imp"], item="no-such-item")
    assert any("do not share" in w.value for w in stale.warning)
    assert not stale.get("image")


def test_phrasing_runs_side_by_side(store, monkeypatch):
    at = _page(store, monkeypatch, runs=["p1", "p2"])
    assert any("Phrasing" in h.value for h in at.subheader)
    figures = _table(at, "figure").value.set_index("figure")
    assert list(figures.columns) == ["p1", "p2"]
    assert figures.loc["groups", "p1"] == figures.loc["groups", "p2"] == "8"
    assert figures.loc["variants", "p1"] == "16"


def test_too_few_unknown_and_unshared_runs_say_so(store, monkeypatch):
    one = _page(store, monkeypatch, runs=["a", "nope"])
    assert any("nope" in w.value for w in one.warning)
    assert any("Pick two or three runs" in i.value for i in one.info)
    apart = _page(store, monkeypatch, runs=["a", "stranger"])
    assert any("share no answered item" in e.value for e in apart.error)


def test_a_store_with_one_run(tiny_store, monkeypatch):
    at = _page(tiny_store({"only": ["yes", "no"]}), monkeypatch)
    assert any("holds one run" in i.value for i in at.info)
