"""The pages' queries over large runs: read via Arrow and, once a run's pre-aggregated tables are
current, from them. Their results are the same as the queries they replaced, here kept as
references (their SQL as it was, read with .df()), on stores with the awkward rows: failed items,
NULLs, items without maps, summary maps that are not the mean, two methods, two grid shapes,
and a second run that shares items. Also: the tables are never read stale, and group_map_arrays."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from store import (AttentionChangeRecord, HeadMapRecord, ImageRecord, MapRecord, PredictionRecord, QuestionRecord,
                   RunRecord, StoreWriter, aggregates, connect, queries, scale_check, schema)
from vocabulary import MEAN_LAYER


# --- the queries as they were -----------------------------------------------------------------

def _old(db, sql, params):
    with queries._open(db) as con:
        return con.execute(sql, params).df()


def old_conditions(db, run_id):
    return _old(db, "SELECT DISTINCT condition FROM prediction_details WHERE run_id = ? AND status = 'ok'"
                    " AND condition IS NOT NULL ORDER BY condition", [run_id]).condition.tolist()


def old_condition_counts(db, run_id, conditions=None):
    df = _old(db, """
        SELECT condition, coalesce(ground_truth, 'all') AS ground_truth,
               count(*) AS n, sum(correct::INTEGER) AS n_correct
        FROM prediction_details
        WHERE run_id = ? AND status = 'ok'
          AND (? IS NULL OR list_contains(?, condition))
        GROUP BY GROUPING SETS ((condition, ground_truth), (condition))
        ORDER BY condition, ground_truth
    """, [run_id, conditions, conditions])
    df["n"] = df["n"].astype(int)
    df["n_correct"] = df["n_correct"].fillna(0).astype(int)
    return df


def old_predictions(db, run_id, conditions=None):
    return _old(db, """
        SELECT item_id, image_id, condition, question, ground_truth, answer, correct, p_yes,
               yes_no_mass, status, error, generated_text, latency_s
        FROM prediction_details
        WHERE run_id = ? AND (? IS NULL OR list_contains(?, condition))
        ORDER BY row_number
    """, [run_id, conditions, conditions])


def old_mapped_items(db, run_id):
    return _old(db, """
        SELECT d.item_id, d.image_id, d.image_key, d.condition, d.question, d.ground_truth, d.answer, d.correct, d.p_yes
        FROM prediction_details d
        WHERE d.run_id = ? AND d.status = 'ok'
          AND EXISTS (SELECT 1 FROM attention_maps m WHERE m.run_id = d.run_id AND m.item_id = d.item_id)
        ORDER BY d.row_number
    """, [run_id])


def old_phrasing_rows(db, run_id):
    return _old(db, """
        SELECT item_id, group_id, variant_index, strategy, strategy_category, condition, question,
               baseline_question, ground_truth, answer, correct, p_yes
        FROM prediction_details
        WHERE run_id = ? AND status = 'ok' AND group_id IS NOT NULL AND variant_index IS NOT NULL
        ORDER BY row_number
    """, [run_id])


def old_group_maps(db, run_id, method="attention"):
    return _old(db, """
        SELECT d.item_id, d.group_id, d.variant_index, d.answer, d.correct, m.layer, m.grid_rows, m.grid_cols,
               m.grid
        FROM prediction_details d
        JOIN attention_maps m ON m.run_id = d.run_id AND m.item_id = d.item_id AND m.method = ?
        WHERE d.run_id = ? AND d.status = 'ok' AND d.group_id IS NOT NULL AND d.variant_index IS NOT NULL
          AND m.layer = (SELECT CASE WHEN bool_or(x.layer = ?) THEN ? ELSE min(x.layer) END FROM attention_maps x
                         WHERE x.run_id = m.run_id AND x.item_id = m.item_id AND x.method = m.method)
        ORDER BY d.row_number
    """, [method, run_id, MEAN_LAYER, MEAN_LAYER])


def old_attention_changes(db, run_id):
    return _old(db, """
        SELECT c.* EXCLUDE (difference), d.group_id, d.image_id, d.condition, d.question, d.baseline_question,
               d.strategy, d.strategy_category, d.answer, d.correct, d.ground_truth
        FROM attention_changes c JOIN prediction_details d ON d.run_id = c.run_id AND d.item_id = c.item_id
        WHERE c.run_id = ?
        ORDER BY c.js_divergence DESC
    """, [run_id])


def old_compare_rows(db, run_id):
    return _old(db, """
        SELECT d.item_id, d.row_number, (SELECT f.sha256 FROM image_files f WHERE f.image_key = d.image_key)
               AS image_sha256, d.image_id, d.question, d.ground_truth,
               d.condition, d.answer, d.correct, d.p_yes, d.group_id, d.variant_index, d.strategy,
               d.strategy_category, d.baseline_question
        FROM prediction_details d
        WHERE d.run_id = ? AND d.status = 'ok'
        ORDER BY d.row_number, d.item_id
    """, [run_id])


def old_summary_maps(db, run_id, method="attention", item_id=None):
    return _old(db, """
        SELECT m.item_id, m.layer, m.grid_rows, m.grid_cols, m.grid, m.image_height, m.image_width
        FROM attention_maps m JOIN predictions p ON p.run_id = m.run_id AND p.item_id = m.item_id
        WHERE m.run_id = ? AND m.method = ? AND p.status = 'ok' AND (? IS NULL OR m.item_id = ?)
          AND m.layer = (SELECT CASE WHEN bool_or(x.layer = ?) THEN ? ELSE min(x.layer) END FROM attention_maps x
                         WHERE x.run_id = m.run_id AND x.item_id = m.item_id AND x.method = m.method)
        ORDER BY p.row_number, m.item_id
    """, [run_id, method, item_id, item_id, MEAN_LAYER, MEAN_LAYER])


def old_method_figures(db, run_id):
    return _old(db, """
        WITH summary AS (
            SELECT m.*, q.condition FROM attention_maps m JOIN questions q USING (item_id)
            WHERE m.run_id = ?
            QUALIFY row_number() OVER (PARTITION BY m.item_id, m.method ORDER BY (m.layer = ?) DESC, m.layer) = 1)
        SELECT method, condition, count(*) AS n, count(lesion_hit) AS n_lesion,
               avg(CASE WHEN lesion_hit THEN 1.0 WHEN NOT lesion_hit THEN 0.0 END) AS hit_rate,
               avg(lesion_attention_ratio) AS lesion_ratio, median(faithfulness_ratio) AS deletion_ratio,
               avg(sink_mass) AS sink_mass
        FROM summary GROUP BY method, condition ORDER BY method, condition
    """, [run_id, MEAN_LAYER])


def old_overview_counts(db, run_id):
    return _old(db, """
        SELECT count(*) FILTER (WHERE status = 'ok')                 AS n_done,
               count(*) FILTER (WHERE status = 'failed')             AS n_failed,
               CASE WHEN count(image_key) > 0 THEN count(DISTINCT image_key) FILTER (WHERE status = 'ok')
                    ELSE count(DISTINCT image_id) FILTER (WHERE status = 'ok') END AS n_images,
               count(*) FILTER (WHERE answer = 'uncertain')          AS n_uncertain,
               sum(correct::INTEGER) FILTER (WHERE status = 'ok')    AS n_correct,
               avg(yes_no_mass) FILTER (WHERE status = 'ok')         AS mean_yes_no_mass
        FROM prediction_details WHERE run_id = ?
    """, [run_id]).iloc[0].to_dict()


def old_item_map(db, run_id, item_id, method, layer):
    with queries._open(db) as con:
        row = con.execute("SELECT grid, grid_rows, grid_cols FROM attention_maps WHERE run_id = ? AND item_id = ?"
                          " AND method = ? AND layer = ?", [run_id, item_id, method, layer]).fetchone()
    return None if row is None else np.asarray(row[0], dtype=np.float64).reshape(row[1], row[2])


def old_item_head_maps(db, run_id, item_id, method, layer):
    return _old(db, "SELECT head, grid_rows, grid_cols, grid FROM head_maps WHERE run_id = ? AND item_id = ? "
                    "AND method = ? AND layer = ? ORDER BY head", [run_id, item_id, method, layer])


# --- stores -----------------------------------------------------------------------------------

def _map(run_id, item_id, method, layer, shape=(16, 16), seed=0, **metrics):
    rows, cols = shape
    grid = np.random.default_rng(seed).random(rows * cols)
    return MapRecord(run_id=run_id, item_id=item_id, method=method, layer=layer, requested_method=method,
                     fallback_reason=None, layers=[0, 1], heads="mean", query="answer", query_positions=[7],
                     term=None, strip_border=0, attn_implementation="eager", model_id="m", image_height=224,
                     image_width=224, grid_rows=rows, grid_cols=cols, grid=(grid / grid.sum()).tolist(), **metrics)


def _run(run_id):
    return RunRecord(run_id=run_id, study="phrasing", dataset="d", model_id="m", config={"run": run_id},
                     package_versions={})


def write_rich_store(db: Path) -> None:
    """Run r1: three groups of four variants (one group's maps 24x24, the others' 16x16), a
    failed item, an item outside any group with no condition, truth or image record, an item whose
    question row is missing, an item without maps, summary maps that are a lone layer or the lowest of
    two, Grad-CAM maps with lesion figures, head maps and attention changes (one without a JS
    divergence). Run r2 answers some of r1's items again, differently."""
    writer = StoreWriter(db)
    writer.start_run(_run("r1"))
    images = [ImageRecord.of(f"sha{g}", f"/img/{g}.png", 512, 512, "png") for g in range(3)]
    questions, predictions, maps = [], [], []
    row = 0
    for g in range(3):
        for v in range(4):
            item = f"g{g}v{v}"
            row += 1
            condition = ["edema", "pneumonia", "edema"][g]
            questions.append(QuestionRecord(item, "d", f"img{g}", f"Is there {condition}? ({v})",
                                            "yes" if v % 2 else "no", condition, group_id=f"g{g}", variant_index=v,
                                            strategy="baseline" if v == 0 else f"s{v}",
                                            baseline_question=f"Is there {condition}?",
                                            strategy_category="baseline" if v == 0 else "synonym",
                                            boxes=json.dumps([{"x_min": 1, "y_min": 1, "x_max": 9, "y_max": 9}])
                                            if v == 1 else None))
            answer = ["yes", "no", "uncertain", "yes"][(g + v) % 4]
            p_yes = [0.9, 0.2, float("nan"), None][(g + v) % 4]
            predictions.append(PredictionRecord("r1", item, row, "ok", generated_text=f"{answer}.", answer=answer,
                                                p_yes=p_yes, yes_no_mass=0.5 + 0.01 * row,
                                                correct=(answer == "yes") == bool(v % 2), latency_s=0.1 * row,
                                                image_key=images[g].image_key))
            shape = (24, 24) if g == 2 else (16, 16)
            if (g, v) == (1, 3):
                continue  # no maps
            if (g, v) == (0, 2):
                maps.append(_map("r1", item, "attention", 3, shape, seed=row))  # a lone layer: no mean
            elif (g, v) == (1, 1):
                maps += [_map("r1", item, "attention", layer, shape, seed=row + layer) for layer in (5, 2)]
            else:
                maps += [_map("r1", item, "attention", layer, shape, seed=row + layer, inside_body_ratio=0.1 * v,
                              sink_mass=0.01 * row if layer == MEAN_LAYER else 0.5)
                         for layer in (0, 1, MEAN_LAYER)]
            maps.append(_map("r1", item, "gradcam", 0, (14, 14), seed=100 + row,
                             lesion_hit=[True, False, None][v % 3], lesion_attention_ratio=[1.5, 0.5, None][v % 3],
                             faithfulness_ratio=0.1 * row if v else None))
    questions.append(QuestionRecord("lone", "d", "img9", "Anything?", None, None))
    predictions.append(PredictionRecord("r1", "lone", None, "ok", answer="no", p_yes=0.4, correct=None,
                                        image_key="no-such-file"))
    predictions.append(PredictionRecord("r1", "orphan", 98, "ok", answer="yes", p_yes=0.7, correct=True))
    questions.append(QuestionRecord("bad", "d", "img8", "Is there edema?", "yes", "edema"))
    predictions.append(PredictionRecord("r1", "bad", 99, "failed", error="image unreadable"))
    maps += [HeadMapRecord("r1", "g0v1", "attention", 0, h, 16, 16, [1 / 256] * 256) for h in range(2)]
    writer.write_batch(images, questions, predictions, maps)
    changes = []
    for g in range(3):
        for v in range(1, 4):
            shape = (24, 24) if g == 2 else (16, 16)
            changes.append(AttentionChangeRecord(
                "r1", f"g{g}v{v}", f"g{g}v0", "attention", MEAN_LAYER, "yes→no" if v == 1 else "unchanged",
                "unchanged", None if (g, v) == (2, 3) else 0.01 * (3 * g + v), 0.5, 0.1, 0.9, *shape,
                [0.0] * (shape[0] * shape[1])))
    writer.write_attention_changes(changes)
    writer.finish_run("r1", "completed")

    writer.start_run(_run("r2"))
    writer.write_batch([], [q for q in questions if q.item_id.startswith("g0")],
                       [PredictionRecord("r2", f"g0v{v}", 10 - v, "ok", answer="no", p_yes=0.1, correct=v % 2 == 0)
                        for v in range(4)],
                       [_map("r2", "g0v0", "attention", MEAN_LAYER, seed=7)])
    writer.finish_run("r2", "interrupted")


def _refresh(db):
    aggregates.refresh_store(db)
    with connect(db, read_only=True) as con:
        assert all(aggregates.current(con, r) for r in ("r1", "r2"))


@pytest.fixture(scope="module")
def rich(tmp_path_factory) -> tuple[Path, Path]:
    """(the rich store as written, a copy with its pre-aggregated tables refreshed)."""
    folder = tmp_path_factory.mktemp("rich")
    live, cached = folder / "live.duckdb", folder / "cached.duckdb"
    write_rich_store(live)  # finish_run refreshed its tables: the live copy drops them
    shutil.copy(live, cached)
    _refresh(cached)
    with connect(live, read_only=False) as con:
        con.execute("DELETE FROM run_aggregates")
    with connect(live, read_only=True) as con:
        assert not aggregates.current(con, "r1")
    return live, cached


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> tuple[Path, Path]:
    """(scale_check's store of 2200 predictions as built, the same refreshed)."""
    folder = tmp_path_factory.mktemp("synthetic")
    live, cached = folder / "live.duckdb", folder / "cached.duckdb"
    scale_check.build(live, 2200, run_id="r1", refresh=False)
    shutil.copy(live, cached)
    aggregates.refresh_store(cached)
    assert _current(cached, "r1") and not _current(live, "r1")
    return live, cached


# --- comparisons ------------------------------------------------------------------------------

def same_frames(new: pd.DataFrame, old: pd.DataFrame, ties: list[str] | None = None) -> None:
    """Equal, dtypes and order included. `ties`: the columns the old query ordered by alone; rows equal
    in them came back in any order, so both sides are put in one order within them first."""
    if ties:
        key = [*ties, *(c for c in ("item_id", "method") if c in old.columns and c not in ties)]
        old = old.sort_values(key, kind="stable", na_position="last").reset_index(drop=True)
        new = new.sort_values(key, kind="stable", na_position="last").reset_index(drop=True)
    pd.testing.assert_frame_equal(new, old, check_exact=False, rtol=1e-12)


@pytest.fixture(params=["rich", "synthetic"])
def store(request):
    return request.getfixturevalue(request.param)


@pytest.mark.parametrize("which", [0, 1], ids=["live", "pre-aggregated"])
def test_run_queries_match_the_old_ones(store, which):
    db = store[which]
    for run in ("r1", "r2"):
        if run == "r2" and not queries.run_exists(db, run):
            continue
        assert queries.conditions(db, run) == old_conditions(db, run)
        for chosen in (None, ["edema"], []):
            same_frames(queries.condition_counts(db, run, chosen), old_condition_counts(db, run, chosen),
                        ties=["condition", "ground_truth"])
            same_frames(queries.predictions(db, run, chosen), old_predictions(db, run, chosen))
        same_frames(queries.mapped_items(db, run), old_mapped_items(db, run))
        same_frames(queries.phrasing_rows(db, run), old_phrasing_rows(db, run))
        same_frames(queries.compare_rows(db, run), old_compare_rows(db, run))
        same_frames(queries.attention_changes(db, run), old_attention_changes(db, run), ties=["js_divergence"])
        same_frames(queries.method_figures(db, run), old_method_figures(db, run))
        for method in ("attention", "gradcam", "absent"):
            same_frames(queries.group_maps(db, run, method), old_group_maps(db, run, method))
            same_frames(queries.summary_maps(db, run, method), old_summary_maps(db, run, method))
        for item in ("g0v2", "g1v1", "g1v3", scale_check.item_id(100), "nothing"):
            same_frames(queries.summary_maps(db, run, "attention", item),
                        old_summary_maps(db, run, "attention", item))
        overview = queries.run_overview(db, run)
        for key, value in old_overview_counts(db, run).items():
            expected = None if pd.isna(value) else value if key == "mean_yes_no_mass" else int(value)
            assert overview[key] is None if expected is None else overview[key] == pytest.approx(expected), key


@pytest.mark.parametrize("which", [0, 1], ids=["live", "pre-aggregated"])
def test_the_attention_change_pages_queries_are_the_full_tables_filtered(store, which):
    """change_statistics, change_choices and change_gallery (what the page reads at a million rows)
    against the full attention_changes frame, filtered and cut as the page used to."""
    db = store[which]
    full = queries.attention_changes(db, "r1")
    stats = queries.change_statistics(db, "r1")
    assert list(stats.columns) == ["answer_change", "correctness_change", "js_divergence", "pearson", "cosine"]
    same_frames(stats, full[list(stats.columns)], ties=["js_divergence", "answer_change", "pearson", "cosine"])
    choices = queries.change_choices(db, "r1")
    for column in ("condition", "strategy_category", "answer_change"):
        assert choices[column] == sorted(full[column].dropna().unique())
    everything = (choices["condition"], choices["strategy_category"], choices["answer_change"], [True, False])
    picks = [everything, (choices["condition"][:1], *everything[1:]), (*everything[:2], ["unchanged"], [False]),
             (everything[0], choices["strategy_category"][-1:], *everything[2:]), (*everything[:3], []),
             ([], *everything[1:])]
    for conditions, categories, changes, correct in picks:
        expected = full[full.condition.isin(conditions) & full.strategy_category.isin(categories)
                        & full.answer_change.isin(changes) & full.correct.isin(correct)]
        for limit in (2, 1000):
            matched, shown = queries.change_gallery(db, "r1", conditions, categories, changes, correct, limit)
            assert matched == len(expected)
            if expected.empty:  # no rows: no dtype to infer from them
                assert shown.empty and list(shown.columns) == list(full.columns)
            else:
                same_frames(shown, expected.head(limit).reset_index(drop=True))
    assert queries.change_gallery(db, "nothing", *everything, 6)[0] == 0


def test_one_items_maps_match_the_old_ones(rich):
    db = rich[0]
    for item, method, layer in (("g0v1", "attention", MEAN_LAYER), ("g0v1", "attention", 0), ("g0v2", "attention", 3),
                                ("g0v2", "attention", MEAN_LAYER), ("g1v1", "gradcam", 0), ("none", "attention", 0)):
        new, old = queries.item_map(db, "r1", item, method, layer), old_item_map(db, "r1", item, method, layer)
        assert (new is None and old is None) or np.array_equal(new, old)
        same_frames(queries.item_head_maps(db, "r1", item, method, layer),
                    old_item_head_maps(db, "r1", item, method, layer))
    assert len(queries.item_head_maps(db, "r1", "g0v1", "attention", 0)) == 2


def test_unknown_run_reads_empty(rich):
    for db in rich:
        same_frames(queries.predictions(db, "nope"), old_predictions(db, "nope"))
        same_frames(queries.attention_changes(db, "nope"), old_attention_changes(db, "nope"))
        assert queries.conditions(db, "nope") == []


def test_the_rich_store_has_what_the_comparisons_need(rich):
    """The awkward rows are there, so the comparisons above test them."""
    live, cached = rich
    rows = queries.predictions(cached, "r1")
    assert {"failed", "ok"} == set(rows.status) and rows.condition.isna().any() and rows.p_yes.isna().any()
    assert queries.predictions(cached, "r1").correct.dtype == "boolean"  # a NULL: .df()'s nullable dtype
    layers = queries.summary_maps(cached, "r1").set_index("item_id").layer
    assert layers["g0v2"] == 3 and layers["g1v1"] == 2 and layers["g0v0"] == MEAN_LAYER
    assert "g1v3" not in set(queries.mapped_items(cached, "r1").item_id)
    figures = queries.method_figures(cached, "r1")
    assert figures[figures.method == "gradcam"].n_lesion.sum() > 0
    assert queries.attention_changes(cached, "r1").js_divergence.isna().iloc[-1]


# --- never stale ------------------------------------------------------------------------------

def _current(db, run_id):
    with connect(db, read_only=True) as con:
        return aggregates.current(con, run_id)


def test_a_later_write_makes_the_tables_stale_until_refreshed(tmp_path):
    db = tmp_path / "s.duckdb"
    write_rich_store(db)
    _refresh(db)
    writer = StoreWriter(db)
    writer.write_batch([], [QuestionRecord("new", "d", "img5", "Is there edema?", "yes", "edema")],
                       [PredictionRecord("r1", "new", 50, "ok", answer="yes", correct=True)])  # no start_run
    assert not _current(db, "r1")
    assert "new" in set(queries.predictions(db, "r1").item_id)
    same_frames(queries.predictions(db, "r1"), old_predictions(db, "r1"))
    assert aggregates.refresh_store(db) == ["r1", "r2"]  # a new question: r2 could have been answering it
    assert _current(db, "r1") and aggregates.refresh_store(db) == []
    same_frames(queries.predictions(db, "r1"), old_predictions(db, "r1"))


def test_a_rewritten_prediction_or_another_runs_question_makes_them_stale(tmp_path):
    db = tmp_path / "s.duckdb"
    write_rich_store(db)
    _refresh(db)
    writer = StoreWriter(db)
    writer.write_batch([], [], [PredictionRecord("r1", "g0v0", 1, "ok", answer="no", correct=False)])
    assert not _current(db, "r1") and _current(db, "r2")  # r2 does not read r1's predictions
    same_frames(queries.phrasing_rows(db, "r1"), old_phrasing_rows(db, "r1"))
    _refresh(db)
    writer.start_run(_run("r3"))
    writer.write_batch([], [QuestionRecord("g0v1", "d", "img0", "Reworded?", "no", "edema", group_id="g0",
                                           variant_index=1)],
                       [PredictionRecord("r3", "g0v1", 1, "ok", answer="no", correct=True)])
    assert not _current(db, "r1")  # r3 rewrote a question of r1's
    assert "Reworded?" in set(queries.phrasing_rows(db, "r1").question)
    same_frames(queries.predictions(db, "r1"), old_predictions(db, "r1"))
    writer.finish_run("r3", "completed")  # which refreshes every run's tables
    assert all(_current(db, r) for r in ("r1", "r2", "r3")) and aggregates.refresh_store(db) == []
    assert "Reworded?" in set(queries.phrasing_rows(db, "r1").question)
    same_frames(queries.attention_changes(db, "r1"), old_attention_changes(db, "r1"), ties=["js_divergence"])


def test_dropped_items_and_new_changes_make_them_stale(tmp_path):
    db = tmp_path / "s.duckdb"
    write_rich_store(db)
    _refresh(db)
    StoreWriter(db).write_attention_changes([AttentionChangeRecord(
        "r1", "g1v3", "g1v0", "gradcam", 0, "unchanged", "unchanged", 0.5, 0.1, 0.1, 0.1, 14, 14, [0.0] * 196)])
    assert not _current(db, "r1")
    same_frames(queries.attention_changes(db, "r1"), old_attention_changes(db, "r1"), ties=["js_divergence"])
    _refresh(db)
    assert StoreWriter(db).drop_other_items("r1", {"g0v0", "g0v1"}) > 0
    assert not _current(db, "r1")
    assert set(queries.predictions(db, "r1").item_id) == {"g0v0", "g0v1"}


def test_rows_read_back_in_position_order_even_if_stored_out_of_it(tmp_path):
    db = tmp_path / "s.duckdb"
    write_rich_store(db)
    _refresh(db)
    with connect(db, read_only=False) as con:  # store r1's rows backwards, as nothing here does
        con.execute("CREATE TEMP TABLE backwards AS SELECT * FROM run_items WHERE run_id = 'r1' ORDER BY position DESC")
        con.execute("DELETE FROM run_items WHERE run_id = 'r1'")
        con.execute("INSERT INTO run_items SELECT * FROM backwards")
    assert _current(db, "r1")
    same_frames(queries.predictions(db, "r1"), old_predictions(db, "r1"))


@pytest.mark.filterwarnings("ignore:.*summary tables were not refreshed")  # the store is written at schema 6
def test_a_version_6_store_upgrades_and_reads_live_until_refreshed(tmp_path, monkeypatch):
    db = tmp_path / "old.duckdb"
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:6])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", 6)
    write_rich_store(db)  # as version-6 code wrote it
    monkeypatch.undo()
    with connect(db, read_only=True) as con:
        assert schema.current_version(con) == 6 and not aggregates.current(con, "r1")
    expected = old_phrasing_rows(db, "r1")
    same_frames(queries.phrasing_rows(db, "r1"), expected)  # read-only: no upgrade, the live tables
    StoreWriter(db)
    with connect(db, read_only=True) as con:
        assert schema.current_version(con) == schema.SCHEMA_VERSION == 7
        assert con.execute("SELECT count(*) FROM run_items").fetchall() == [(0,)]
    assert aggregates.refresh_store(db) == ["r1", "r2"]
    same_frames(queries.phrasing_rows(db, "r1"), expected)


# --- group_map_arrays -------------------------------------------------------------------------

def _arrays_match_group_maps(db, run_id, method="attention"):
    frame, grids = queries.group_map_arrays(db, run_id, method)
    expected = queries.group_maps(db, run_id, method)
    same_frames(frame.drop(columns="grid_index"), expected.drop(columns="grid"))
    for k, row in expected.iterrows():
        stack = grids[(row.grid_rows, row.grid_cols)]
        assert stack.dtype == np.float32 and stack.flags.writeable
        np.testing.assert_array_equal(stack[frame.grid_index[k]],
                                      np.asarray(row.grid, dtype=np.float32).reshape(row.grid_rows, row.grid_cols))
    assert sum(len(s) for s in grids.values()) == len(expected)
    return frame, grids


def test_group_map_arrays_one_shape(synthetic):
    frame, grids = _arrays_match_group_maps(synthetic[0], "r1")
    ((shape, stack),) = grids.items()
    assert shape == (16, 16) and stack.shape == (2200, 16, 16)
    assert frame.grid_index.tolist() == list(range(2200))


def test_group_map_arrays_two_shapes(rich):
    frame, grids = _arrays_match_group_maps(rich[0], "r1")
    assert list(grids) == [(16, 16), (24, 24)]  # in the order the rows first have them
    assert grids[(24, 24)].shape == (4, 24, 24) and len(grids[(16, 16)]) == len(frame) - 4
    assert frame[frame.grid_rows == 24].grid_index.tolist() == [0, 1, 2, 3]


def test_group_map_arrays_without_maps(rich):
    frame, grids = queries.group_map_arrays(rich[0], "r1", "absent")
    assert frame.empty and grids == {} and "grid_index" in frame.columns


def test_group_map_arrays_refuses_a_grid_of_the_wrong_length(tmp_path):
    db = tmp_path / "s.duckdb"
    write_rich_store(db)
    with connect(db, read_only=False) as con:
        con.execute("UPDATE attention_maps SET grid_rows = 15 WHERE item_id = 'g0v1' AND layer = -1")
    with pytest.raises(ValueError, match="g0v1.*256 values, not 15x16"):
        queries.group_map_arrays(db, "r1")


def test_frames_read_via_arrow_are_what_df_makes(tmp_path):
    """_frame against .df() on the types and NULL patterns the queries return."""
    db = tmp_path / "t.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("""CREATE TABLE t AS SELECT * FROM (VALUES
            ('a', NULL::VARCHAR, 1, NULL::INTEGER, 2::BIGINT, true, NULL::BOOLEAN, 1.5::DOUBLE, NULL::DOUBLE,
             '{"a": 1}'::JSON, [1.5, 2.5]::FLOAT[], [1, 2], now()::TIMESTAMP, 3::HUGEINT, 1.25::DECIMAL(5, 2)),
            (NULL, NULL, NULL, 2, 3, NULL, false, NULL, 2.0, NULL, NULL, [], NULL, NULL, NULL))
            v(s, s_null, i, i_some, b, t, t_some, d, d_some, j, f, l, ts, h, dec)""")
    with connect(db, read_only=True) as con:
        con.execute("SET arrow_large_buffer_size = true")
        for sql in ("SELECT * FROM t", "SELECT * FROM t LIMIT 1", "SELECT * FROM t WHERE false",
                    "SELECT * FROM t WHERE i IS NULL"):
            pd.testing.assert_frame_equal(queries._frame(con, sql), con.execute(sql).df())


def test_refresh_command(tmp_path, capsys):
    db = tmp_path / "s.duckdb"
    write_rich_store(db)
    with connect(db, read_only=False) as con:
        con.execute("DELETE FROM run_aggregates")  # as a store written before finish_run refreshed them
    assert aggregates.main(["--db", str(db)]) == 0
    assert "refreshed 2 run(s)" in capsys.readouterr().out and _current(db, "r1")
    assert aggregates.main(["--db", str(db), "--run", "r1"]) == 0 and "refreshed 1 run(s)" in capsys.readouterr().out
    (tmp_path / "folder.duckdb").mkdir()
    assert aggregates.main(["--db", str(tmp_path / "folder.duckdb")]) == 2
