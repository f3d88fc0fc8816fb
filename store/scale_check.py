"""`python -m store.scale_check`: build a large synthetic store and time every dashboard query.

The store holds one phrasing run of --predictions answered items (groups of 11: a baseline
and 10 variants, nine conditions), each with a 16x16 attention map and its metrics, plus the
attention-change rows of every variant. Each query the dashboard pages call runs --repeat
times; the median is printed against the 300 ms budget.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from store import queries
from store.connection import connect
from store.records import RunRecord
from store.writer import StoreWriter

BUDGET_MS = 300.0
CONDITIONS = ["atelectasis", "cardiomegaly", "consolidation", "edema", "pleural_effusion", "pneumonia",
              "pneumothorax", "lung_opacity", "pleural_abnormality"]


def build(db: Path, n: int, run_id: str = "big") -> None:
    writer = StoreWriter(db)
    writer.start_run(RunRecord(run_id=run_id, study="phrasing", dataset="big", model_id="synthetic",
                               config={"n": n}, package_versions={}))
    conditions = "[" + ", ".join(f"'{c}'" for c in CONDITIONS) + "]"
    with connect(db, read_only=False) as con:
        con.execute(f"""
            CREATE TEMP TABLE items AS
            SELECT i, printf('it%08d', i) AS item_id, i // 11 AS g, i % 11 AS variant_index,
                   {conditions}[1 + (i // 11) % 9] AS condition, random() < 0.5 AS truth_yes, random() AS p
            FROM range({n}) t(i)""")
        con.execute("""INSERT INTO image_files SELECT printf('key%06d', g), printf('sha%06d', g),
                       printf('/data/images/img%06d.png', g), 512, 512, 'png' FROM (SELECT DISTINCT g FROM items)""")
        con.execute("""INSERT INTO questions (item_id, dataset, image_id, question, ground_truth, condition, group_id,
                       variant_index, strategy, baseline_question, strategy_category)
                       SELECT item_id, 'big', printf('img%06d', g), printf('Is there %s? (%d)', condition, variant_index),
                              CASE WHEN truth_yes THEN 'yes' ELSE 'no' END, condition, printf('g%06d', g),
                              variant_index, CASE WHEN variant_index = 0 THEN 'baseline' ELSE printf('s%d', variant_index % 7) END,
                              printf('Is there %s?', condition),
                              ['baseline', 'synonym', 'voice', 'register', 'clause_reordering', 'phrasing', 'combined'][1 + (CASE WHEN variant_index = 0 THEN 0 ELSE 1 + variant_index % 6 END)]
                       FROM items""")
        con.execute("""INSERT INTO predictions (run_id, item_id, row_number, status, generated_text, answer, p_yes,
                       yes_no_mass, correct, latency_s, created_at, image_key)
                       SELECT ?, item_id, i + 1, 'ok', CASE WHEN p > 0.5 THEN 'Yes' ELSE 'No' END,
                              CASE WHEN p > 0.5 THEN 'yes' ELSE 'no' END, p, 0.99, (p > 0.5) = truth_yes, 0.01,
                              current_timestamp, printf('key%06d', g)
                       FROM items""", [run_id])
        con.execute("""INSERT INTO attention_maps (run_id, item_id, method, layer, requested_method, layers, heads,
                       query, strip_border, attn_implementation, model_id, image_height, image_width, grid_rows,
                       grid_cols, grid, inside_body_ratio, attention_entropy)
                       SELECT ?, item_id, 'attention', -1, 'attention', [0, 1, 2, 3], 'mean', 'answer', 0,
                              'mgv_row_capture', 'synthetic', 224, 224, 16, 16,
                              list_transform(range(256), lambda x: (random() / 128)::FLOAT), random(), 5 + random() / 2
                       FROM items""", [run_id])
        con.execute("""INSERT INTO attention_changes
                       SELECT ?, item_id, printf('it%08d', g * 11), 'attention', -1,
                              CASE WHEN random() < 0.1 THEN 'yes→no' ELSE 'unchanged' END,
                              CASE WHEN random() < 0.1 THEN 'correct→wrong' ELSE 'unchanged' END,
                              random() / 20, random(), random(), random(), 16, 16,
                              list_transform(range(256), lambda x: ((random() - 0.5) / 500)::FLOAT)
                       FROM items WHERE variant_index > 0""", [run_id])
    writer.finish_run(run_id, "completed")


def time_queries(db: Path, run_id: str = "big", repeat: int = 5) -> list[tuple[str, float]]:
    item = "it00000012"
    calls = {
        "list_runs": lambda: queries.list_runs(db),
        "run_overview": lambda: queries.run_overview(db, run_id),
        "conditions": lambda: queries.conditions(db, run_id),
        "condition_counts": lambda: queries.condition_counts(db, run_id),
        "predictions (CSV download)": lambda: queries.predictions(db, run_id),
        "mapped_items": lambda: queries.mapped_items(db, run_id),
        "item_maps": lambda: queries.item_maps(db, run_id, item),
        "image_file": lambda: queries.image_file(db, run_id, item),
        "phrasing_rows": lambda: queries.phrasing_rows(db, run_id),
        "attention_changes": lambda: queries.attention_changes(db, run_id),
        "item_map": lambda: queries.item_map(db, run_id, item, "attention", -1),
        "change_difference": lambda: queries.change_difference(db, run_id, item),
    }
    out = []
    for name, call in calls.items():
        times = []
        for _ in range(repeat):
            start = time.perf_counter()
            call()
            times.append((time.perf_counter() - start) * 1000)
        out.append((name, statistics.median(times)))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store.scale_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=Path("/tmp/mgv_scale.duckdb"), help="store to build (replaced)")
    parser.add_argument("--predictions", type=int, default=100_000, help="answered items (default: 100000)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per query (default: 5)")
    args = parser.parse_args(argv)
    args.db.unlink(missing_ok=True)
    start = time.perf_counter()
    build(args.db, args.predictions)
    print(f"built {args.db} with {args.predictions} predictions and maps in {time.perf_counter() - start:.1f} s "
          f"({args.db.stat().st_size / 2**20:.0f} MiB)")
    slow = 0
    for name, ms in time_queries(args.db, repeat=args.repeat):
        flag = "" if ms <= BUDGET_MS else "  OVER BUDGET"
        slow += bool(flag)
        print(f"{name:28s} median {ms:8.1f} ms{flag}")
    return 1 if slow else 0


if __name__ == "__main__":
    raise SystemExit(main())
