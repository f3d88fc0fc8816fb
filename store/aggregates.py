"""Pre-aggregated tables for the pages' queries on large runs, and when they may be read.

A page that shows a whole run would otherwise join its predictions to their questions and sort
them on every view: a second or more for a million predictions. `refresh` computes, per run,
run_items (prediction_details in manifest order, with each image's sha256 and whether the item
has maps), run_changes (attention_changes without the difference maps, with the variants'
details, most changed first) and run_method_figures (store.queries.method_figures), and records
in run_aggregates the stamp of the state it computed them from.

They are never read stale: store.queries reads a run's rows only while `current` finds the
stamp unchanged, and the live tables otherwise (correct, only slower). The stamp is the whole
runs table (every write this code makes happens between start_run and finish_run, and each
batch marks its run alive, so a write by any run changes it), the run's predictions (count and
created_at: a rewritten prediction has a new one), the counts of the run's maps and attention
changes, and the counts of questions and image files. Call `refresh(con)` as a run's last write
(in finish_run, whatever the status), after merge_parts, and after any other write to a store;
`python -m store.aggregates --db DB` refreshes an existing store.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb

from store.connection import StoreError, connect, transaction
from store.schema import SCHEMA_VERSION, current_version, ensure_schema
from vocabulary import MEAN_LAYER

VERSION = 7  # the schema version that created these tables
TABLES = ("run_items", "run_changes", "run_method_figures")

_STAMP_SQL = """
    SELECT (SELECT md5(coalesce(string_agg(r::VARCHAR, '|' ORDER BY r.run_id), '')) FROM runs r),
           (SELECT [count(*), max(epoch_us(created_at)), sum(epoch_us(created_at))]::VARCHAR
            FROM predictions WHERE run_id = $run),
           (SELECT count(*) FROM attention_maps WHERE run_id = $run),
           (SELECT count(*) FROM attention_changes WHERE run_id = $run),
           (SELECT count(*) FROM questions),
           (SELECT count(*) FROM image_files)
"""

# Each (item, method)'s summary map is its mean over layers (layer MEAN_LAYER), else its lowest layer:
# the smallest of this key, without a window over every map of the run.
_SUMMARY_KEY = "CASE WHEN layer = $mean THEN -1e12 ELSE layer END"
METHOD_FIGURES_SQL = f"""
    WITH summary AS (
        SELECT item_id, method, arg_min_null(lesion_hit, {_SUMMARY_KEY}) AS lesion_hit,
               arg_min_null(lesion_attention_ratio, {_SUMMARY_KEY}) AS lesion_attention_ratio,
               arg_min_null(faithfulness_ratio, {_SUMMARY_KEY}) AS faithfulness_ratio,
               arg_min_null(sink_mass, {_SUMMARY_KEY}) AS sink_mass
        FROM attention_maps WHERE run_id = $run GROUP BY item_id, method)
    SELECT method, condition, count(*) AS n, count(lesion_hit) AS n_lesion,
           avg(CASE WHEN lesion_hit THEN 1.0 WHEN NOT lesion_hit THEN 0.0 END) AS hit_rate,
           avg(lesion_attention_ratio) AS lesion_ratio, median(faithfulness_ratio) AS deletion_ratio,
           avg(sink_mass) AS sink_mass
    FROM summary JOIN questions q USING (item_id) GROUP BY method, condition
"""

_ITEMS_SQL = """
    INSERT INTO run_items
    SELECT d.run_id, row_number() OVER (ORDER BY d.row_number NULLS LAST, d.item_id) - 1 AS position, d.item_id,
           d.row_number, d.status, d.error, d.generated_text, d.answer, d.p_yes, d.yes_no_mass, d.correct,
           d.latency_s, d.image_key, f.sha256, d.image_id, d.question, d.ground_truth, d.condition, d.group_id,
           d.variant_index, d.strategy, d.strategy_category, d.baseline_question,
           d.item_id IN (SELECT item_id FROM attention_maps WHERE run_id = $run)
    FROM prediction_details d LEFT JOIN image_files f ON f.image_key = d.image_key
    WHERE d.run_id = $run
    ORDER BY position
"""

CHANGE_COLUMNS = ("run_id, item_id, baseline_item_id, method, layer, answer_change, correctness_change, js_divergence,"
                  " pearson, l2, cosine, grid_rows, grid_cols, group_id, image_id, condition, question,"
                  " baseline_question, strategy, strategy_category, answer, correct, ground_truth")
_CHANGES_SQL = """
    INSERT INTO run_changes
    SELECT c.run_id, row_number() OVER (ORDER BY c.js_divergence DESC NULLS LAST, c.item_id, c.method) - 1 AS position,
           c.item_id, c.baseline_item_id, c.method, c.layer, c.answer_change, c.correctness_change, c.js_divergence,
           c.pearson, c.l2, c.cosine, c.grid_rows, c.grid_cols, d.group_id, d.image_id, d.condition, d.question,
           d.baseline_question, d.strategy, d.strategy_category, d.answer, d.correct, d.ground_truth
    FROM attention_changes c JOIN prediction_details d ON d.run_id = c.run_id AND d.item_id = c.item_id
    WHERE c.run_id = $run
    ORDER BY position
"""


def stamp(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """The store's state as far as the run's pre-aggregated rows depend on it."""
    (row,) = con.execute(_STAMP_SQL, {"run": run_id}).fetchall()
    return json.dumps([None if v is None else str(v) for v in row])


def current(con: duckdb.DuckDBPyConnection, run_id: str) -> bool:
    """Whether the run's pre-aggregated rows exist and were computed from the store as it is now."""
    if current_version(con) < VERSION:
        return False
    stored = con.execute("SELECT stamp FROM run_aggregates WHERE run_id = ?", [run_id]).fetchall()
    return bool(stored) and stored[0][0] == stamp(con, run_id)


def refresh(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> list[str]:
    """Recompute the pre-aggregated rows of `run_id`, or of every run whose rows are missing or
    stale (and drop those of runs no longer stored), on a writable connection at SCHEMA_VERSION;
    returns the runs recomputed. Runs inside the caller's transaction if it has one; either way a
    reader never takes half-written rows for current, since a run's stamp is removed first and
    recorded last. About 6 s per million predictions on two cores."""
    con.execute("SET enable_progress_bar = false")  # the statements over a big run take seconds: no bars on stdout
    stored = [r for (r,) in con.execute("SELECT run_id FROM runs ORDER BY run_id").fetchall()]
    runs = [r for r in stored if r == run_id] if run_id is not None else [r for r in stored if not current(con, r)]
    if run_id is None:  # rows of runs no longer in the store
        for table in ("run_aggregates", *TABLES):
            con.execute(f"DELETE FROM {table} WHERE run_id NOT IN (SELECT run_id FROM runs)")
    for run in runs:
        con.execute("DELETE FROM run_aggregates WHERE run_id = ?", [run])
        for table in TABLES:
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run])
        con.execute(_ITEMS_SQL, {"run": run})
        con.execute(_CHANGES_SQL, {"run": run})
        con.execute(f"INSERT INTO run_method_figures SELECT $run, * FROM ({METHOD_FIGURES_SQL})",
                    {"run": run, "mean": MEAN_LAYER})
        con.execute("INSERT INTO run_aggregates VALUES (?, ?, current_timestamp)", [run, stamp(con, run)])
    return runs


def refresh_store(db_path: str | Path, run_id: str | None = None) -> list[str]:
    """`refresh` in a transaction of its own, on a store brought to SCHEMA_VERSION first."""
    with connect(db_path, read_only=False) as con:
        ensure_schema(con, db_path)
        with transaction(con):
            return refresh(con, run_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store.aggregates", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", required=True, type=Path, help="the DuckDB store (upgraded to schema "
                                                                f"{SCHEMA_VERSION} if older)")
    parser.add_argument("--run", help="only this run (default: every run whose tables are missing or stale)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        runs = refresh_store(args.db, args.run)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.db}: refreshed {len(runs)} run(s) in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
