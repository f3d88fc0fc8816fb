"""The Browse page's queries (store.browse) on hand-built stores whose answers are known, and the page
itself (dashboard/views/browse.py) rendered by Streamlit's AppTest on them and on a real phrasing run."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest
from conftest import open_page, phrasing_store, tiny_map, write_imported_run
from PIL import Image

from store import (
    AttentionChangeRecord,
    ImageRecord,
    PredictionRecord,
    QuestionRecord,
    RunRecord,
    StoreWriter,
    aggregates,
    browse,
)
from store.browse import BrowseFilter

RUN = "ph"
HOSTILE = "**bold** it's'); DROP TABLE questions; -- [x](http://evil.example)"
NOTE = "it's'; DROP TABLE predictions; --"
# item: condition, truth, group, variant, strategy, answer (None: failed), p_yes, view, split, attributes (JSON)
ITEMS = {
    "a0": ("edema", "yes", "g1", 0, "baseline", "yes", 0.9, "PA", "train", '{"sex": "F", "a/b": "x"}'),
    "a1": ("edema", "yes", "g1", 1, "synonym", "yes", 0.6, "AP", "train", '{"sex": "M"}'),
    "a2": ("edema", "yes", "g1", 2, "voice", "no", 0.3, "PA", "test", '{"sex": "F"}'),
    "b0": ("effusion", "no", "g2", 0, "baseline", "no", 0.2, "AP", "test", '{"sex": "M", "note": "%s"}' % NOTE),
    "b1": ("effusion", "no", "g2", 1, "synonym", "no", 0.1, "PA", "test", None),
    "c0": ("effusion", "yes", "g3", 0, "baseline", None, None, "PA", "train", None),  # failed: g3 has no baseline
    "c1": ("effusion", "yes", "g3", 1, "voice", "yes", 0.8, "PA", "train", "{}"),
    "d0": (HOSTILE, "no", "g4", 0, "baseline", "uncertain", 0.5, None, None, None),
    "d1": (HOSTILE, "no", "g4", 1, "synonym", "yes", None, None, None, None),  # no P(yes)
    "e0": ("edema", "no", None, None, None, "no", 0.45, "AP", None, None),  # in no group
}
ORDER = list(ITEMS)
ANSWERED = [k for k in ORDER if ITEMS[k][5] is not None]
# (method, layer, JS divergence): only attention at the mean layer counts
CHANGES = {"a1": [("attention", -1, 0.2)], "a2": [("attention", -1, 0.7)],
           "b1": [("attention", -1, 0.05), ("gradcam", -1, 0.99)], "c1": [("attention", 2, 0.95)],
           "d1": [("attention", -1, 0.4)]}
MAPPED = {"a0", "a1", "a2", "b0", "e0"}
MISSING_IMAGE = "e0"  # its file is deleted after the run: the page says why it is not shown


def _ids(frame) -> list[str]:
    return frame["item_id"].tolist()


def _image(folder: Path, k: int) -> tuple[ImageRecord, Path]:
    path = folder / f"img{k}.png"
    Image.fromarray(np.full((32, 32), 40 + 20 * k, dtype=np.uint8)).save(path)
    return ImageRecord.of(hashlib.sha256(path.read_bytes()).hexdigest(), str(path.resolve())), path


def write_hand_store(folder: Path) -> Path:
    """A phrasing run of ITEMS written through StoreWriter, with images, maps and comparisons."""
    db = folder / "hand.duckdb"
    writer = StoreWriter(db)
    writer.start_run(RunRecord(run_id=RUN, study="phrasing", dataset="synth", model_id="models/demo",
                               config={"run": RUN}, package_versions={}))
    images, questions, predictions = [], [], []
    for k, (item, (condition, truth, group, variant, strategy, answer, p_yes, view, split, attributes)) in \
            enumerate(ITEMS.items()):
        image, path = _image(folder, k)
        images.append(image)
        questions.append(QuestionRecord(item, "synth", f"i{k}", f"Is there {condition}? ({item})", truth, condition,
                                        group_id=group, variant_index=variant, strategy=strategy, view=view,
                                        split=split, attributes=attributes))
        predictions.append(PredictionRecord(RUN, item, k + 1, "failed" if answer is None else "ok", answer=answer,
                                            p_yes=p_yes, correct=None if answer is None else answer == truth,
                                            image_key=image.image_key))
    maps = [tiny_map(RUN, item, grid=np.eye(16).ravel() / 16) for item in ORDER if item in MAPPED]
    writer.write_batch(images, questions, predictions, maps)
    writer.write_attention_changes([
        AttentionChangeRecord(RUN, item, item[0] + "0", method, layer, "unchanged", "unchanged", js, None, None, None,
                              2, 2, [0.0] * 4)
        for item, changes in CHANGES.items() for method, layer, js in changes])
    writer.finish_run(RUN, "completed")
    (folder / f"img{ORDER.index(MISSING_IMAGE)}.png").unlink()
    return db


@pytest.fixture(scope="module")
def hand_db(tmp_path_factory) -> Path:
    return write_hand_store(tmp_path_factory.mktemp("browse_hand"))


@pytest.fixture(scope="module", params=["run_items", "live tables"])
def either_db(request, hand_db, tmp_path_factory) -> Path:
    """The hand store read through its pre-aggregated run_items, and a copy whose aggregates are gone."""
    if request.param == "run_items":
        return hand_db
    copy = tmp_path_factory.mktemp("browse_stale") / "stale.duckdb"
    shutil.copy(hand_db, copy)
    con = duckdb.connect(str(copy))
    try:
        con.execute("DELETE FROM run_aggregates")
        assert not aggregates.current(con, RUN)
    finally:
        con.close()
    return copy


def _all(db: Path, filters: BrowseFilter = BrowseFilter(), sort: str = "manifest", descending: bool = False):
    total, page = browse.browse_page(db, RUN, filters, sort, descending, limit=100)
    assert total == len(page)
    return _ids(page)


def test_hand_store_reads_run_items(hand_db):
    con = duckdb.connect(str(hand_db), read_only=True)
    try:
        assert aggregates.current(con, RUN)
    finally:
        con.close()


@pytest.mark.parametrize(("filters", "expected"), [
    (BrowseFilter(), ANSWERED),
    (BrowseFilter(conditions=("edema",)), ["a0", "a1", "a2", "e0"]),
    (BrowseFilter(conditions=()), []),
    (BrowseFilter(ground_truths=("no",)), ["b0", "b1", "d0", "d1", "e0"]),
    (BrowseFilter(answers=("uncertain", "no")), ["a2", "b0", "b1", "d0", "e0"]),
    (BrowseFilter(correct=False), ["a2", "d0", "d1"]),
    (BrowseFilter(correct=True, conditions=("edema",)), ["a0", "a1", "e0"]),
    (BrowseFilter(p_yes=(0.3, 0.6)), ["a1", "a2", "d0", "e0"]),  # inclusive; d1 has no P(yes)
    (BrowseFilter(strategies=("synonym",)), ["a1", "b1", "d1"]),
    (BrowseFilter(columns=(("view", ("PA",)),)), ["a0", "a2", "b1", "c1"]),
    (BrowseFilter(columns=(("split", ("test",)), ("dataset", ("synth",)))), ["a2", "b0", "b1"]),
    (BrowseFilter(columns=(("attributes.sex", ("F",)),)), ["a0", "a2"]),
    (BrowseFilter(columns=(("attributes.a/b", ("x",)),)), ["a0"]),
    (BrowseFilter(columns=(("attributes.note", (NOTE,)),)), ["b0"]),
    (BrowseFilter(conditions=(HOSTILE,)), ["d0", "d1"]),
    (BrowseFilter(conditions=("edema' OR '1'='1",)), []),
])
def test_filters_keep_exactly_the_matching_predictions(either_db, filters, expected):
    assert _all(either_db, filters) == expected


@pytest.mark.parametrize(("flipped", "expected"), [
    ("flipped", ["a2", "d1"]),  # no against yes; yes against uncertain
    ("unflipped", ["a0", "a1", "b0", "b1", "d0"]),  # baselines are never flipped
    ("group_flipped", ["a0", "a1", "a2", "d0", "d1"]),
    ("group_unflipped", ["b0", "b1"]),
])  # c1 (its baseline failed) and e0 (no group) match none of them
def test_flipped_is_the_own_answer_against_the_group_baseline(either_db, flipped, expected):
    assert _all(either_db, BrowseFilter(flipped=flipped)) == expected


def test_page_columns_hold_the_definitions(either_db):
    _, page = browse.browse_page(either_db, RUN, limit=100)
    rows = page.set_index("item_id")
    for item in ANSWERED:
        p_yes = ITEMS[item][6]
        expected = None if p_yes is None else abs(p_yes - 0.5) * 2
        assert (rows.loc[item, "confidence"] if expected is not None else None) == pytest.approx(expected)
    assert rows.loc["a2", "baseline_answer"] == "yes" and bool(rows.loc["a2", "flipped"])
    assert rows.loc["d1", "baseline_answer"] == "uncertain"
    assert rows["js_divergence"].dropna().to_dict() == {"a1": 0.2, "a2": 0.7, "b1": 0.05, "d1": 0.4}
    assert set(rows.index[rows["has_maps"].astype(bool)]) == MAPPED
    assert rows.loc["b1", "view"] == "PA" and rows.loc["a2", "split"] == "test"


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("sort", ["p_yes", "confidence", "js_divergence"])
def test_sorts_put_items_without_a_value_last_in_manifest_order(either_db, sort, descending):
    def value(item):
        p_yes = ITEMS[item][6]
        if sort == "js_divergence":
            return next((js for m, layer, js in CHANGES.get(item, []) if m == "attention" and layer == -1), None)
        return None if p_yes is None else p_yes if sort == "p_yes" else abs(p_yes - 0.5) * 2

    valued = [k for k in ANSWERED if value(k) is not None]
    ordered = sorted(valued, key=lambda k: (-value(k) if descending else value(k), ORDER.index(k)))
    assert _all(either_db, sort=sort, descending=descending) == ordered + [k for k in ANSWERED if k not in valued]


def test_manifest_order_both_ways(either_db):
    assert _all(either_db) == ANSWERED
    assert _all(either_db, descending=True) == ANSWERED[::-1]


def test_bad_arguments_are_refused(hand_db):
    with pytest.raises(ValueError, match="unknown sort"):
        browse.browse_page(hand_db, RUN, sort="p_yes; DROP TABLE runs")
    with pytest.raises(ValueError, match="unknown flip"):
        browse.browse_page(hand_db, RUN, BrowseFilter(flipped="yes"))
    with pytest.raises(ValueError, match="not a dataset column"):
        browse.browse_page(hand_db, RUN, BrowseFilter(columns=(("question; --", ("x",)),)))
    with pytest.raises(ValueError, match="limit"):
        browse.browse_page(hand_db, RUN, limit=0)
    con = duckdb.connect(str(hand_db), read_only=True)
    try:  # the hostile values above went in as parameters
        assert con.execute("SELECT count(*) FROM predictions").fetchall()[0][0] == len(ITEMS)
        assert con.execute("SELECT count(*) FROM questions").fetchall()[0][0] == len(ITEMS)
    finally:
        con.close()


def test_choices(either_db):
    choices = browse.browse_choices(either_db, RUN)
    assert (choices.n_items, choices.n_p_yes, choices.n_grouped, choices.n_compared) == (9, 8, 7, 4)
    assert choices.conditions == tuple(sorted({"edema", "effusion", HOSTILE}))
    assert choices.strategies == ("baseline", "synonym", "voice")
    assert choices.answers == ("no", "uncertain", "yes") and choices.ground_truths == ("no", "yes")
    assert choices.methods == ("attention",)
    assert choices.columns == {"dataset": ("synth",), "view": ("AP", "PA"), "split": ("test", "train"),
                               "attributes.a/b": ("x",), "attributes.note": (NOTE,), "attributes.sex": ("F", "M")}
    assert choices.too_many == ()


N_BIG = 1200


@pytest.fixture(scope="module")
def big_db(tmp_path_factory) -> Path:
    """N_BIG predictions written in SQL: ten P(yes) values (many ties), an attribute of N_BIG values."""
    from store import ensure_schema
    db = tmp_path_factory.mktemp("browse_big") / "big.duckdb"
    con = duckdb.connect(str(db))
    try:
        ensure_schema(con)
        con.execute("INSERT INTO runs (run_id, study, dataset, model_id, config, package_versions, started_at, status)"
                    " VALUES ('big', 'baseline', 'synth', 'm', '{}', '{}', now(), 'completed')")
        con.execute("INSERT INTO questions (item_id, dataset, image_id, question, ground_truth, condition, attributes)"
                    " SELECT 'it' || i, 'synth', 'img' || i, 'Q' || i, 'yes', 'c' || (i % 3),"
                    " ('{\"pid\": ' || i || '}')::JSON FROM range(?) r(i)", [N_BIG])
        con.execute("INSERT INTO predictions (run_id, item_id, row_number, status, answer, p_yes, correct, created_at)"
                    " SELECT 'big', 'it' || i, ? - i, 'ok', 'yes', (i % 10) / 10, TRUE, now() FROM range(?) r(i)",
                    [N_BIG, N_BIG])
    finally:
        con.close()
    return db


def test_a_page_reads_only_its_rows_and_pages_do_not_overlap(big_db):
    seen = []
    for page in range(N_BIG // 100):
        total, rows = browse.browse_page(big_db, "big", sort="p_yes", descending=True, limit=100, offset=page * 100)
        assert total == N_BIG and len(rows) == 100
        seen += _ids(rows)
    assert len(seen) == len(set(seen)) == N_BIG  # every item once, across pages of tied values
    values = browse.browse_page(big_db, "big", sort="p_yes", descending=True, limit=500)[1]["p_yes"].to_numpy()
    assert (np.diff(values) <= 0).all()
    second = _ids(browse.browse_page(big_db, "big", limit=24, offset=24)[1])
    assert second == [f"it{N_BIG - 1 - k}" for k in range(24, 48)]  # manifest order is row_number
    assert browse.browse_page(big_db, "big", limit=24, offset=N_BIG)[1].empty


def test_a_column_of_too_many_values_is_not_offered(big_db):
    choices = browse.browse_choices(big_db, "big")
    assert choices.too_many == ("attributes.pid",) and "attributes.pid" not in choices.columns
    assert choices.n_grouped == 0 and choices.n_compared == 0


# ---- the page -------------------------------------------------------------------------------

def _browse(db: Path, monkeypatch, **params):
    """The Browse page opened by a link with these query parameters (open_page checks it raised nothing)."""
    return open_page(db, monkeypatch, "views/browse.py", **params)


def _links(at) -> list[str]:
    """The item ids the page links to the Attention page, in order."""
    from urllib.parse import parse_qs
    found = []
    for link in at.get("page_link"):
        query = parse_qs(link.proto.query_string)
        assert query["run"] == [RUN] or query["run"] == ["p"]
        found.append(query["item"][0])
    return found


def _param(at, name: str) -> list[str]:
    value = at.query_params.get(name, [])
    return [value] if isinstance(value, str) else list(value)


def test_page_shows_the_grid_with_links_and_reasons(hand_db, monkeypatch):
    at = _browse(hand_db, monkeypatch, run=RUN)
    assert _links(at) == [k for k in ANSWERED if k in MAPPED]
    assert len(at.get("image")) == len(ANSWERED) - 1
    assert any("Cannot show the image" in w.value for w in at.warning)  # e0's file is gone: said, as text
    assert sum("the plain image" in c.value for c in at.caption) == len([k for k in ANSWERED if k not in MAPPED])
    assert any("9 of 9 predictions match" in c.value for c in at.caption)
    # user text is escaped wherever Streamlit renders Markdown
    shown = [*(c.value for c in at.caption), *(m.value for m in at.markdown),
             *(p.proto.label for p in at.get("page_link"))]
    assert not any("**bold**" in s or "](http" in s for s in shown)
    assert any(r"\*\*bold\*\*" in s for s in shown)


def test_url_params_drive_the_filters_sort_and_page(hand_db, monkeypatch):
    at = _browse(hand_db, monkeypatch, run=RUN, condition="edema", sort="js_divergence", order="descending")
    assert {m.label: m for m in at.multiselect}["Condition"].value == ["edema"]
    assert {s.label: s for s in at.selectbox}["Sort by"].value == "js_divergence"
    # edema items with maps (e0's image is gone, but it has maps): a2 (JS 0.7), a1 (0.2), then a0 and e0
    assert _links(at) == ["a2", "a1", "a0", "e0"]
    at = _browse(hand_db, monkeypatch, run=RUN, flipped="group_flipped", size="48")
    assert {s.label: s for s in at.selectbox}["Answer under rephrasing"].value == "group_flipped"
    assert any("5 of 9 predictions match" in c.value for c in at.caption)
    at = _browse(hand_db, monkeypatch, run=RUN, p_yes=["0.3", "0.6"], correct="correct")
    assert at.slider[0].value == (0.3, 0.6) and _links(at) == ["a1", "e0"]
    assert _param(at, "p_yes") == ["0.3", "0.6"] and _param(at, "correct") == ["correct"]


def test_paging_through_the_url(big_db, monkeypatch):
    expected = _ids(browse.browse_page(big_db, "big", sort="p_yes", limit=48, offset=48)[1])
    at = _browse(big_db, monkeypatch, run="big", sort="p_yes", size="48", page="2")
    assert _page_items(at) == expected
    assert any(f"49–96 shown, page 2 of {N_BIG // 48}" in c.value for c in at.caption)
    at.number_input[0].set_value(3).run()
    assert not at.exception and _param(at, "page") == ["3"]
    assert _page_items(at) == _ids(browse.browse_page(big_db, "big", sort="p_yes", limit=48, offset=96)[1])
    {m.label: m for m in at.multiselect}["Condition"].set_value(["c1"]).run()  # new filters: back to page 1
    assert not at.exception and "page" not in at.query_params
    assert _page_items(at) == _ids(browse.browse_page(big_db, "big", BrowseFilter(conditions=("c1",)), "p_yes",
                                                      limit=48)[1])


def _page_items(at) -> list[str]:
    """The items shown, read from their labels (the big store's items have no maps: no links)."""
    return [m.value.split(" ", 1)[1].replace("Q", "it", 1) for m in at.markdown if m.value.startswith(("✓", "✗"))]


def test_invalid_url_values_warn_and_fall_back(big_db, monkeypatch):
    at = _browse(big_db, monkeypatch, run="big", page="abc", sort="bogus", p_yes=["2", "3"], flipped="flipped",
                 **{"col.nope": "x"})
    warnings = " ".join(w.value for w in at.warning)
    assert "not a page number" in warnings and "bogus" in warnings and "whole range" in warnings
    assert "no variant groups" in warnings and "nope" in warnings
    assert {s.label: s for s in at.selectbox}["Sort by"].value == "manifest"
    assert any(f"{N_BIG:,} of {N_BIG:,} predictions match" in c.value for c in at.caption)
    at = _browse(big_db, monkeypatch, run="big", page="999")
    assert any("past the last page" in w.value for w in at.warning)
    assert any(f"page {N_BIG // 24} of {N_BIG // 24}" in c.value for c in at.caption)


def test_a_run_without_p_yes_says_the_p_yes_filters_do_not_apply(tmp_path, monkeypatch):
    db = write_imported_run(tmp_path / "imported.duckdb")
    at = _browse(db, monkeypatch, run="imp", sort="p_yes")
    assert any("stored no P(yes)" in i.value for i in at.info)
    assert "p_yes" not in {s.label: s for s in at.selectbox}["Sort by"].options
    assert not at.slider and any("1 of 1 predictions match" in c.value for c in at.caption)


def test_an_empty_result_says_so(hand_db, monkeypatch):
    at = _browse(hand_db, monkeypatch, run=RUN, condition="edema", answer="uncertain")
    assert any("No prediction of this run matches" in i.value for i in at.info)


def test_dataset_columns_from_the_url(hand_db, tiny_store, monkeypatch):
    at = _browse(hand_db, monkeypatch, run=RUN, **{"col.view": "AP", "col.attributes.sex": "M"})
    assert {m.label: m for m in at.multiselect}["attributes\\.sex"].value == ["M"]
    assert _links(at) == ["a1", "b0"] and not at.warning  # e0 is AP but has no attributes
    plain = tiny_store({"r": ["yes", "no"]})  # a store without views
    at = _browse(plain, monkeypatch, run="r", **{"col.view": "PA"})
    assert any("filters by" in w.value and "view" in w.value for w in at.warning)
    assert "col.view" not in at.query_params and any("2 of 2 predictions match" in c.value for c in at.caption)


@pytest.fixture(scope="module")
def phrasing_db(tmp_path_factory) -> Path:
    """A real phrasing run of the committed demo model: 2 images x 2 questions x (baseline + 3 rewrites)."""
    return phrasing_store(tmp_path_factory.mktemp("browse_phrasing"), "p", variants=3)


def test_a_real_phrasing_run(phrasing_db, monkeypatch):
    con = duckdb.connect(str(phrasing_db), read_only=True)
    try:
        rows = con.execute("SELECT item_id, group_id, variant_index, answer FROM prediction_details"
                           " WHERE run_id = 'p' AND status = 'ok'").df()
    finally:
        con.close()
    baseline = rows[rows.variant_index == 0].set_index("group_id")["answer"]
    flipped = set(rows.item_id[rows.group_id.map(baseline).notna() & (rows.answer != rows.group_id.map(baseline))])
    assert set(_all_of(phrasing_db, BrowseFilter(flipped="flipped"))) == flipped
    unflipped = set(_all_of(phrasing_db, BrowseFilter(flipped="unflipped")))
    assert unflipped == set(rows.item_id) - flipped
    compared = browse.browse_page(phrasing_db, "p", sort="js_divergence", descending=True, limit=100)[1]
    assert compared["js_divergence"].notna().sum() == (rows.variant_index > 0).sum()
    at = _browse(phrasing_db, monkeypatch, run="p", sort="js_divergence", order="descending")
    assert _links(at) == _ids(compared)[:24]
    assert len(at.get("image")) == min(24, len(rows)) and not at.warning


def _all_of(db: Path, filters: BrowseFilter) -> list[str]:
    return _ids(browse.browse_page(db, "p", filters, limit=100)[1])
