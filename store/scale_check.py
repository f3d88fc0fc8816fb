"""`python -m store.scale_check`: build a large synthetic store and time every dashboard query.

The store holds one phrasing run of --predictions answered items (groups of 11: a baseline
and 10 variants, nine conditions). Like a real phrasing run with maps, each item has one
16x16 attention map per layer (--layers, 4 by default) plus their mean (layer MEAN_LAYER),
each with its metrics, and every variant has its attention-change row; ids are hashes, as
real ones are, so no query finds an item by the order of the rows. The run's pre-aggregated
tables are then refreshed, as finishing a run does (store.aggregates; --stale skips that:
the pages then read the live tables, as while a run is being written). Each query the
dashboard pages call (and the CLI's require_run) runs --repeat times, called as the pages
call it; the median is printed against the 300 ms budget, with the build and refresh times
and the store's size on disk per prediction.

A million predictions take about 7 GB of disk (some 7 kB each: five 1 kB maps and an
attention change) and a few minutes to build on two cores.
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from store import aggregates, browse, queries, slices
from store.connection import connect, transaction
from store.records import RunRecord
from store.writer import StoreWriter
from vocabulary import MEAN_LAYER

BUDGET_MS = 300.0
GROUP = 11  # a baseline and 10 variants
GRID = 16
CONDITIONS = ["atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion", "pneumonia",
              "pneumothorax", "lung_opacity", "pleural_abnormality"]
CATEGORIES = ["baseline", "synonym", "voice", "register", "clause_reordering", "phrasing", "combined"]
_METRICS = ("inside_body_ratio", "border_fraction", "normalized_entropy", "focus_score", "sparsity",
            "right_lung_fraction", "left_lung_fraction", "apical_fraction", "middle_fraction", "basal_fraction")


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(f"'{v}'" for v in values) + "]"


def _hashed(prefix: str, number: str, length: int) -> str:
    """SQL: the first `length` hex digits of a hash of prefix and number: an id shaped like a real one
    (item ids are 16 hex digits of a hash of the manifest row, image keys 32, sha256s 64), in no order."""
    digest = f"{'md5' if length <= 32 else 'sha256'}(concat('{prefix}', {number}))"
    return f"substr({digest}, 1, {length})"


def item_id(i: int) -> str:
    """The id build gives item `i` (0, 1, ...): the baseline of group g is item 11 g."""
    return hashlib.md5(f"item{i}".encode()).hexdigest()[:16]


def build(db: Path, n: int, run_id: str = "big", layers: int = 4, refresh: bool = True) -> None:
    """Write the run of `n` items into `db` through the schema the writer creates; each item gets
    `layers` layer maps and their mean, in item order as a run writes them. `refresh`: then
    refresh its pre-aggregated tables, as finishing a run does."""
    writer = StoreWriter(db)
    writer.start_run(RunRecord(run_id=run_id, study="phrasing", dataset="big", model_id="synthetic",
                               config={"n": n, "layers": layers}, package_versions={}, n_items=n))
    per_item = layers + 1 if layers > 1 else 1  # records_for adds the mean only over two or more layers
    stored_layers = [*range(layers), MEAN_LAYER] if layers > 1 else [0]
    with connect(db, read_only=False) as con:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"""
            CREATE TEMP TABLE items AS
            SELECT i, {_hashed("item", "i", 16)} AS item_id, i // {GROUP} AS g, i % {GROUP} AS variant_index,
                   {_sql_list(CONDITIONS)}[1 + (i // {GROUP}) % 9] AS condition, random() < 0.5 AS truth_yes,
                   random() AS p
            FROM range({n}) t(i)""")
        con.execute(f"""INSERT INTO image_files SELECT {_hashed("key", "g", 32)}, {_hashed("image", "g", 64)},
                        printf('/data/images/img%06d.png', g), 512, 512, 'png' FROM (SELECT DISTINCT g FROM items)""")
        con.execute(f"""INSERT INTO questions (item_id, dataset, image_id, question, ground_truth, condition, group_id,
                        variant_index, strategy, baseline_question, strategy_category, source)
                        SELECT item_id, 'big', printf('img%06d', g),
                               printf('Is there %s? (%d)', condition, variant_index),
                               CASE WHEN truth_yes THEN 'yes' ELSE 'no' END, condition, printf('g%06d', g),
                               variant_index, CASE WHEN variant_index = 0 THEN 'baseline'
                                                   ELSE printf('s%d', variant_index % 7) END,
                               printf('Is there %s?', condition),
                               {_sql_list(CATEGORIES)}[CASE WHEN variant_index = 0 THEN 1
                                                            ELSE 2 + variant_index % 6 END],
                               printf('manifest.csv row %d', i + 1)
                        FROM items ORDER BY i""")
        con.execute(f"""INSERT INTO predictions (run_id, item_id, row_number, status, generated_text, answer, p_yes,
                        yes_no_mass, correct, latency_s, created_at, image_key)
                        SELECT ?, item_id, i + 1, 'ok', CASE WHEN p > 0.5 THEN 'Yes.' ELSE 'No.' END,
                               CASE WHEN p > 0.5 THEN 'yes' ELSE 'no' END, p, 0.99, (p > 0.5) = truth_yes, 0.01,
                               current_timestamp + to_microseconds(i), {_hashed("key", "g", 32)}
                        FROM items ORDER BY i""", [run_id])
        metrics = ", ".join("random()" for _ in _METRICS)
        con.execute(f"""INSERT INTO attention_maps (run_id, item_id, method, layer, requested_method, layers, heads,
                        query, query_positions, strip_border, attn_implementation, model_id, image_height,
                        image_width, grid_rows, grid_cols, grid, attention_entropy, peak_to_average,
                        {', '.join(_METRICS)})
                        SELECT ?, {_hashed("item", f"j // {per_item}", 16)}, 'attention',
                               {stored_layers}[1 + j % {per_item}], 'attention', {list(range(layers))}, 'mean',
                               'answer', [270], 0, 'mgv_row_capture', 'synthetic', 896, 896, {GRID}, {GRID},
                               list_transform(range({GRID * GRID}), lambda x: (random() / {GRID * GRID / 2})::FLOAT),
                               5 + random() / 2, 1 + 4 * random(), {metrics}
                        FROM range({n * per_item}) t(j)""", [run_id])
        con.execute(f"""INSERT INTO attention_changes
                        SELECT ?, item_id, {_hashed("item", f"g * {GROUP}", 16)}, 'attention', {stored_layers[-1]},
                               CASE WHEN random() < 0.1 THEN 'yes→no' ELSE 'unchanged' END,
                               CASE WHEN random() < 0.1 THEN 'correct→wrong' ELSE 'unchanged' END,
                               random() / 20, random(), random(), random(), {GRID}, {GRID},
                               list_transform(range({GRID * GRID}), lambda x: ((random() - 0.5) / 500)::FLOAT)
                        FROM items WHERE variant_index > 0 ORDER BY i""", [run_id])
        # completed without StoreWriter.finish_run, which would refresh the pre-aggregated tables: `refresh` says
        con.execute("UPDATE runs SET status = 'completed', finished_at = current_timestamp WHERE run_id = ?", [run_id])
    if refresh:
        with connect(db, read_only=False) as con, transaction(con):
            aggregates.refresh(con, run_id)


def page_calls(db: Path, run_id: str = "big", n: int | None = None) -> dict[str, Callable[[], object]]:
    """Every query a dashboard page (or the CLI's report and compare) calls, with the arguments it
    passes; the items are a baseline and one of its variants from the middle of the run."""
    group = (n // GROUP // 2) if n else 1
    base, item = item_id(group * GROUP), item_id(group * GROUP + 1)
    some = CONDITIONS[:2]
    return {
        "has_runs": lambda: queries.has_runs(db),
        "list_runs": lambda: queries.list_runs(db),
        "require_run": lambda: queries.require_run(db, run_id),
        "run_overview": lambda: queries.run_overview(db, run_id),
        "answer_agreement": lambda: queries.answer_agreement(db, run_id),
        "conditions": lambda: queries.conditions(db, run_id),
        "condition_counts": lambda: queries.condition_counts(db, run_id, None),
        "condition_counts (2 chosen)": lambda: queries.condition_counts(db, run_id, some),
        "predictions (CSV download)": lambda: queries.predictions(db, run_id, None),
        "predictions (2 chosen)": lambda: queries.predictions(db, run_id, some),
        "mapped_items": lambda: queries.mapped_items(db, run_id),
        "item_maps": lambda: queries.item_maps(db, run_id, item),
        "item_lesion": lambda: queries.item_lesion(db, item),
        "item_head_maps": lambda: queries.item_head_maps(db, run_id, item, "attention", 0),
        "image_file": lambda: queries.image_file(db, run_id, item),
        "phrasing_rows": lambda: queries.phrasing_rows(db, run_id),
        "change_statistics": lambda: queries.change_statistics(db, run_id),
        "change_choices": lambda: queries.change_choices(db, run_id),
        "change_gallery": lambda: queries.change_gallery(db, run_id, list(CONDITIONS), ["synonym", "baseline"],
                                                         ["yes→no", "unchanged"], [True, False], 6),
        "attention_changes (report CLI)": lambda: queries.attention_changes(db, run_id),
        "item_map (baseline)": lambda: queries.item_map(db, run_id, base, "attention", MEAN_LAYER),
        "item_map (variant)": lambda: queries.item_map(db, run_id, item, "attention", MEAN_LAYER),
        "change_difference": lambda: queries.change_difference(db, run_id, item, "attention"),
        "compare_rows": lambda: queries.compare_rows(db, run_id),
        "summary_maps (one item)": lambda: queries.summary_maps(db, run_id, "attention", item),
        "method_figures": lambda: queries.method_figures(db, run_id),
        "slice_columns": lambda: slices.slice_columns(db, run_id),
        "probability_rows (calibration)": lambda: slices.probability_rows(db, run_id, "strategy_category"),
        "browse_choices": lambda: browse.browse_choices(db, run_id),
        "browse_page (first page)": lambda: browse.browse_page(db, run_id, browse.BrowseFilter()),
        "browse_page (flipped, by JS, page 50)": lambda: browse.browse_page(
            db, run_id, browse.BrowseFilter(conditions=tuple(some), flipped="flipped"), "js_divergence", True,
            offset=49 * 24),
        "browse_page (P(yes) range, by confidence)": lambda: browse.browse_page(
            db, run_id, browse.BrowseFilter(p_yes=(0.2, 0.8)), "confidence"),
    }


def time_queries(db: Path, run_id: str = "big", repeat: int = 5, n: int | None = None) -> list[tuple[str, float]]:
    """(query, median milliseconds over `repeat` calls) for every call of page_calls."""
    out = []
    for name, call in page_calls(db, run_id, n).items():
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
        out.append((name, statistics.median(times)))
    return out


def store_bytes(db: Path) -> int:
    """The store's size on disk: the file and its write-ahead log."""
    wal = db.with_name(db.name + ".wal")
    return db.stat().st_size + (wal.stat().st_size if wal.exists() else 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store.scale_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=Path("/tmp/mgv_scale.duckdb"), help="store to build (replaced)")
    parser.add_argument("--predictions", type=int, default=100_000, help="answered items (default: 100000)")
    parser.add_argument("--layers", type=int, default=4,
                        help="map layers per item; each item also gets their mean (default: 4, so 5 maps)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per query (default: 5)")
    parser.add_argument("--stale", action="store_true",
                        help="leave the pre-aggregated tables unrefreshed: time the queries on the live tables")
    args = parser.parse_args(argv)
    args.db.unlink(missing_ok=True)
    args.db.with_name(args.db.name + ".wal").unlink(missing_ok=True)
    start = time.perf_counter()
    build(args.db, args.predictions, layers=args.layers, refresh=False)
    built = time.perf_counter() - start
    size = store_bytes(args.db)
    print(f"built {args.db} with {args.predictions} predictions and their maps in {built:.1f} s: "
          f"{size / 2**20:.0f} MiB, {size / args.predictions:.0f} bytes per prediction")
    if not args.stale:
        start = time.perf_counter()
        aggregates.refresh_store(args.db, "big")
        total = store_bytes(args.db)
        print(f"refreshed the pre-aggregated tables in {time.perf_counter() - start:.1f} s: "
              f"{(total - size) / args.predictions:.0f} more bytes per prediction, "
              f"{total / args.predictions:.0f} in all")
    slow = 0
    for name, ms in time_queries(args.db, repeat=args.repeat, n=args.predictions):
        flag = "" if ms <= BUDGET_MS else "  OVER BUDGET"
        slow += bool(flag)
        print(f"{name:28s} median {ms:8.1f} ms{flag}")
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
