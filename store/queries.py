"""Read-only queries the dashboard (and reports) use. Values always go in as parameters."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from store import aggregates
from store.connection import connect
from store.schema import current_version, usable_version
from vocabulary import MEAN_LAYER


@contextmanager
def _open(db_path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a store this code can read (StoreError otherwise)."""
    with connect(db_path, read_only=True) as con:
        usable_version(con, db_path)
        con.execute("SET arrow_large_buffer_size = true")  # Arrow strings as pandas holds them: no copy
        yield con


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> pd.DataFrame:
    """The query's result as DuckDB's .df() makes it (the same columns, dtypes and values), read via Arrow.
    Its columns' names must differ (.df() renames a repeated one, Arrow does not)."""
    return _arrow_frame(con, con.sql(sql, params=params).to_arrow_table())


def _arrow_frame(con: duckdb.DuckDBPyConnection, table: pa.Table) -> pd.DataFrame:
    """`table` as DuckDB's .df() would have made it from the query. .df() makes a Python object of
    every string on the way, seconds for a million rows; here the columns that Arrow converts as .df()
    does (strings that are not all NULL, to pandas' Arrow-backed strings without a copy; doubles; integers
    and booleans without NULLs) go through Arrow, and DuckDB converts the others."""
    direct = [k for k in range(table.num_columns) if _same_via_arrow(table.schema.field(k).type, table.column(k))]
    rest = [k for k in range(table.num_columns) if k not in set(direct)]
    columns: dict[int, pd.Series] = {}
    for ks, convert in ((direct, lambda t: t.to_pandas()), (rest, lambda t: con.from_arrow(t).df())):
        if ks:
            converted = convert(table.select(ks))
            columns.update({k: converted.iloc[:, j] for j, k in enumerate(ks)})
    frame = pd.concat([columns[k] for k in range(table.num_columns)], axis=1) if columns else pd.DataFrame()
    frame.columns = table.column_names
    return frame


def _same_via_arrow(kind: pa.DataType, column: pa.ChunkedArray) -> bool:
    """Whether Arrow's own conversion of `column` to pandas gives the dtype and values .df() gives."""
    if pa.types.is_large_string(kind) or pa.types.is_string(kind):
        return column.null_count < len(column)  # .df() leaves an all-NULL (or empty) string column as objects
    if pa.types.is_float64(kind):
        return True
    # with a NULL, .df() makes an integer column Int32 (say) and a boolean one boolean
    return (pa.types.is_integer(kind) or pa.types.is_boolean(kind)) and column.null_count == 0


def _in_position_order(table: pa.Table) -> pa.Table:
    """A pre-aggregated table's rows by their `position`, without it. They come back in the order
    they were stored, which is that order: checked, and sorted only if not."""
    positions = table.column("position").to_numpy()
    if len(positions) > 1 and not (np.diff(positions) > 0).all():
        table = table.take(pc.sort_indices(table.column("position")))
    return table.drop_columns(["position"])


def _cached(con: duckdb.DuckDBPyConnection, table: str, columns: str, run_id: str, where: str = "TRUE",
            params: list | None = None) -> pd.DataFrame:
    """`columns` of a run's rows of the pre-aggregated `table` (store.aggregates) that match `where`,
    in position order."""
    rows = con.sql(f"SELECT position, {columns} FROM {table} WHERE run_id = ? AND {where}",
                   params=[run_id, *(params or [])]).to_arrow_table()
    return _arrow_frame(con, _in_position_order(rows))


def _condition_filter(conditions: list[str] | None) -> tuple[str, list]:
    """(SQL, params) keeping the rows whose condition is one of `conditions` (None: all rows)."""
    return ("TRUE", []) if conditions is None else ("list_contains(?, condition)", [conditions])


def has_runs(db_path: str | Path) -> bool:
    """Whether the store holds a run. StoreError for a file that is not a store this code reads."""
    with _open(db_path) as con:
        if current_version(con) == 0:
            return False
        return con.execute("SELECT count(*) FROM runs").fetchone()[0] > 0


def list_runs(db_path: str | Path) -> pd.DataFrame:
    """One row per run, newest first, with item counts and accuracy over answered items."""
    with _open(db_path) as con:
        return con.execute("""
            SELECT r.run_id, r.study, r.dataset, r.model_id, r.status, r.started_at, r.finished_at,
                   r.n_items,
                   count(p.item_id) FILTER (WHERE p.status = 'ok')     AS n_done,
                   count(p.item_id) FILTER (WHERE p.status = 'failed') AS n_failed,
                   avg(p.correct::INTEGER) FILTER (WHERE p.status = 'ok') AS accuracy
            FROM runs r LEFT JOIN predictions p USING (run_id)
            GROUP BY ALL
            ORDER BY r.started_at DESC
        """).df()


def run_overview(db_path: str | Path, run_id: str) -> dict[str, Any]:
    """Model, dataset, prompt and the headline counts for one run (n_done, n_correct, ...)."""
    with _open(db_path) as con:
        run = con.execute("SELECT * FROM runs WHERE run_id = ?", [run_id]).df()
        if run.empty:
            raise KeyError(f"no run named {run_id!r}")
        # Images are counted by the file each prediction names; runs that name none, by image_id,
        # which needs the questions: only then is the join made.
        keyed = current_version(con) >= 4 and con.execute(
            "SELECT count(image_key) > 0 FROM predictions WHERE run_id = ?", [run_id]).fetchall()[0][0]
        images, source = (("image_key", "predictions") if keyed else ("image_id", "prediction_details"))
        counts = con.execute(f"""
            SELECT count(*) FILTER (WHERE status = 'ok')                          AS n_done,
                   count(*) FILTER (WHERE status = 'failed')                      AS n_failed,
                   count(DISTINCT {images}) FILTER (WHERE status = 'ok')          AS n_images,
                   count(*) FILTER (WHERE answer = 'uncertain')                   AS n_uncertain,
                   sum(correct::INTEGER) FILTER (WHERE status = 'ok')             AS n_correct,
                   avg(yes_no_mass) FILTER (WHERE status = 'ok')                  AS mean_yes_no_mass
            FROM {source} WHERE run_id = ?
        """, [run_id]).df().iloc[0].to_dict()
    overview = run.iloc[0].to_dict()
    overview["config"] = json.loads(overview["config"])
    overview["package_versions"] = json.loads(overview["package_versions"])
    overview.update({k: (None if pd.isna(v) else v) for k, v in counts.items()})
    for key in ("n_done", "n_failed", "n_images", "n_uncertain", "n_correct"):
        overview[key] = int(overview[key] or 0)
    return overview


_AGREEMENT_SQL = """
    SELECT count(*) FILTER (WHERE status = 'ok')                                AS n_ok,
           count(*) FILTER (WHERE status = 'ok' AND answer = 'uncertain')       AS n_uncertain,
           count(*) FILTER (WHERE status = 'ok' AND answer IN ('yes', 'no')
                            AND p_yes IS NOT NULL AND NOT isnan(p_yes))        AS n_compared,
           count(*) FILTER (WHERE status = 'ok' AND answer IN ('yes', 'no')
                            AND p_yes IS NOT NULL AND NOT isnan(p_yes)
                            AND (answer = 'yes') = (p_yes >= 0.5))             AS n_agree
    FROM predictions WHERE run_id = ?
"""


def answer_agreement(con: duckdb.DuckDBPyConnection | str | Path, run_id: str) -> dict[str, int]:
    """How often a run's extracted answer agrees with its P(yes) answer (yes iff p_yes >= 0.5).
    `con` is an open connection or a store's path. Keys: n_ok (ok predictions), n_uncertain
    (ok ones answered 'uncertain'), n_compared (ok ones answered yes or no with a p_yes that
    is neither NULL nor NaN) and n_agree (of those, the ones whose answer matches p_yes)."""
    if not isinstance(con, duckdb.DuckDBPyConnection):
        with _open(con) as opened:
            return answer_agreement(opened, run_id)
    row = con.execute(_AGREEMENT_SQL, [run_id]).fetchone()
    return dict(zip(("n_ok", "n_uncertain", "n_compared", "n_agree"), (int(v or 0) for v in row), strict=True))


def _details(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """Where to read a run's prediction_details rows from: its pre-aggregated run_items when current."""
    return "run_items" if aggregates.current(con, run_id) else "prediction_details"


def conditions(db_path: str | Path, run_id: str) -> list[str]:
    with _open(db_path) as con:
        rows = con.execute(f"SELECT DISTINCT condition FROM {_details(con, run_id)} WHERE run_id = ? AND status = 'ok'"
                           " AND condition IS NOT NULL ORDER BY condition", [run_id]).fetchall()
    return [r[0] for r in rows]


def condition_counts(db_path: str | Path, run_id: str, conditions: list[str] | None = None) -> pd.DataFrame:
    """Answered and correct items per condition, split by ground truth ('yes', 'no', and 'all').
    "uncertain" answers count as wrong; failed items are excluded."""
    chosen, params = _condition_filter(conditions)
    with _open(db_path) as con:
        df = con.execute(f"""
            SELECT condition, coalesce(ground_truth, 'all') AS ground_truth,
                   count(*) AS n, sum(correct::INTEGER) AS n_correct
            FROM {_details(con, run_id)}
            WHERE run_id = ? AND status = 'ok' AND {chosen}
            GROUP BY GROUPING SETS ((condition, ground_truth), (condition))
            ORDER BY condition, ground_truth
        """, [run_id, *params]).df()
    df["n"] = df["n"].astype(int)
    df["n_correct"] = df["n_correct"].fillna(0).astype(int)
    return df


def predictions(db_path: str | Path, run_id: str, conditions: list[str] | None = None) -> pd.DataFrame:
    """Every item of a run with its question, answer and outcome (for tables and downloads)."""
    columns = ("item_id, image_id, condition, question, ground_truth, answer, correct, p_yes, yes_no_mass, status,"
               " error, generated_text, latency_s")
    chosen, params = _condition_filter(conditions)
    with _open(db_path) as con:
        if aggregates.current(con, run_id):
            return _cached(con, "run_items", columns, run_id, chosen, params)
        return _frame(con, f"SELECT {columns} FROM prediction_details WHERE run_id = ? AND {chosen}"
                           " ORDER BY row_number, item_id", [run_id, *params])


def run_exists(db_path: str | Path, run_id: str) -> bool:
    with _open(db_path) as con:
        if current_version(con) == 0:
            return False
        return con.execute("SELECT count(*) FROM runs WHERE run_id = ?", [run_id]).fetchone()[0] > 0


def mapped_items(db_path: str | Path, run_id: str) -> pd.DataFrame:
    """Items of a run that have stored maps, in manifest order, with their outcome and the
    image file they were answered on (image_key; None for runs stored before schema 4)."""
    with _open(db_path) as con:
        version = current_version(con)
        if version < 2:
            return pd.DataFrame(columns=["item_id", "image_id", "image_key", "condition", "question", "ground_truth",
                                         "answer", "correct", "p_yes"])
        if aggregates.current(con, run_id):
            return _cached(con, "run_items", "item_id, image_id, image_key, condition, question, ground_truth, answer,"
                                             " correct, p_yes", run_id, "status = 'ok' AND has_maps")
        key = "d.image_key" if version >= 4 else "NULL::VARCHAR AS image_key"
        return _frame(con, f"""
            SELECT d.item_id, d.image_id, {key}, d.condition, d.question, d.ground_truth, d.answer, d.correct, d.p_yes
            FROM prediction_details d
            WHERE d.run_id = ? AND d.status = 'ok'
              AND d.item_id IN (SELECT m.item_id FROM attention_maps m WHERE m.run_id = ?)
            ORDER BY d.row_number, d.item_id
        """, [run_id, run_id])


def item_maps(db_path: str | Path, run_id: str, item_id: str) -> pd.DataFrame:
    """Every stored map of one item (all methods and layers), with provenance and metrics."""
    with _open(db_path) as con:
        return con.execute("SELECT * FROM attention_maps WHERE run_id = ? AND item_id = ? ORDER BY method, layer",
                           [run_id, item_id]).df()


def item_lesion(db_path: str | Path, item_id: str) -> tuple[str | None, str | None]:
    """(boxes as JSON text, mask) of an item's finding; (None, None) when it has neither or the
    store predates schema 5."""
    with _open(db_path) as con:
        if current_version(con) < 5:
            return None, None
        row = con.execute("SELECT boxes, mask FROM questions WHERE item_id = ?", [item_id]).fetchone()
    return (row[0], row[1]) if row else (None, None)


@dataclass(frozen=True)
class ImageLocation:
    """Where a prediction's image file is, and the sha256 of the bytes the model was shown."""

    path: Path
    sha256: str | None
    exact: bool  # False for runs stored before schema 4: found by (dataset, image_id), which runs could share


def image_file(db_path: str | Path, run_id: str, item_id: str) -> ImageLocation | None:
    """The image file a run's prediction was computed on, or None if the store has no record.
    Since schema 4 each prediction names its file (by content and resolved path). Older
    runs are looked up by (dataset, image_id), as they were stored: not exact, because
    runs of the same dataset name could overwrite each other's records."""
    with _open(db_path) as con:
        version = current_version(con)
        if version >= 4:
            row = con.execute("SELECT f.path, f.sha256 FROM predictions p JOIN image_files f USING (image_key)"
                              " WHERE p.run_id = ? AND p.item_id = ?", [run_id, item_id]).fetchone()
            if row is not None:
                return ImageLocation(Path(row[0]), row[1], exact=True)
            keyed = con.execute("SELECT count(image_key) FROM predictions WHERE run_id = ?", [run_id]).fetchone()[0]
            if keyed:  # a run of schema 4 or later: no file recorded means none was read
                return None
        if version < 1:
            return None
        recorded = ", r.image_root" if version >= 3 else ", NULL"
        row = con.execute(f"""
            SELECT i.path, i.sha256, r.manifest_path, json_extract_string(r.config, '$.image_root'){recorded}
            FROM predictions p JOIN questions q USING (item_id) JOIN runs r ON r.run_id = p.run_id
            JOIN images i ON i.dataset = r.dataset AND i.image_id = q.image_id
            WHERE p.run_id = ? AND p.item_id = ?
        """, [run_id, item_id]).fetchone()
    if row is None:
        return None
    path, sha256, manifest, given_root, recorded_root = row
    stored = Path(path)
    if not stored.is_absolute():
        root = (Path(recorded_root) if recorded_root else Path(given_root) if given_root
                else Path(manifest).parent if manifest else Path("."))
        stored = root / stored
    return ImageLocation(stored, sha256, exact=False)


def phrasing_rows(db_path: str | Path, run_id: str) -> pd.DataFrame:
    """Answered items of a run that belong to variant groups, in manifest order."""
    with _open(db_path) as con:
        if current_version(con) < 3:
            return pd.DataFrame(columns=["item_id", "group_id", "variant_index", "strategy", "strategy_category",
                                         "condition", "question", "baseline_question", "ground_truth", "answer",
                                         "correct", "p_yes"])
        columns = ("item_id, group_id, variant_index, strategy, strategy_category, condition, question,"
                   " baseline_question, ground_truth, answer, correct, p_yes")
        grouped = "status = 'ok' AND group_id IS NOT NULL AND variant_index IS NOT NULL"
        if aggregates.current(con, run_id):
            return _cached(con, "run_items", columns, run_id, grouped)
        return _frame(con, f"SELECT {columns} FROM prediction_details WHERE run_id = ? AND {grouped}"
                           " ORDER BY row_number, item_id", [run_id])


def _summary_layers() -> str:
    """A CTE `chosen`: per item of run $run with a map of $method, the layer of its summary map: the
    mean over layers (stored as layer $mean) if it has one, else its lowest layer. One pass over the
    run's maps, where a subquery per map would rescan them."""
    return """chosen AS (
        SELECT item_id, CASE WHEN bool_or(layer = $mean) THEN $mean ELSE min(layer) END AS layer
        FROM attention_maps WHERE run_id = $run AND method = $method GROUP BY item_id)"""


_GROUP_MAPS_SQL = f"""
    WITH {_summary_layers()}
    SELECT d.item_id, d.group_id, d.variant_index, d.answer, d.correct, m.layer, m.grid_rows, m.grid_cols, m.grid
    FROM prediction_details d
    JOIN chosen c ON c.item_id = d.item_id
    JOIN attention_maps m ON m.run_id = d.run_id AND m.item_id = d.item_id AND m.method = $method AND m.layer = c.layer
    WHERE d.run_id = $run AND d.status = 'ok' AND d.group_id IS NOT NULL AND d.variant_index IS NOT NULL
    ORDER BY d.row_number, d.item_id
"""


def group_maps(db_path: str | Path, run_id: str, method: str = "attention") -> pd.DataFrame:
    """Per answered item of a variant group: its summary map (the mean over layers, stored as
    layer MEAN_LAYER, or else its only layer) with the item's group, variant index, answer and correctness.
    group_map_arrays reads the same rows with the grids as arrays."""
    with _open(db_path) as con:
        return _frame(con, _GROUP_MAPS_SQL, {"run": run_id, "method": method, "mean": MEAN_LAYER})


def group_map_arrays(db_path: str | Path, run_id: str,
                     method: str = "attention") -> tuple[pd.DataFrame, dict[tuple[int, int], np.ndarray]]:
    """group_maps' rows, in its order, with the grids as float32 arrays instead of lists, read without
    a Python step per row. Returns (rows, grids): `rows` has group_maps' columns but `grid`, plus
    `grid_index`; `grids` maps each (grid_rows, grid_cols) shape to an array (n, grid_rows, grid_cols)
    of that shape's maps, in row order: row k's map is grids[(grid_rows[k], grid_cols[k])][grid_index[k]].
    A run of one model and image size has one shape, so `(stack,) = grids.values()` is every row's map
    and grid_index is 0, 1, 2, ... . ValueError for a stored grid whose length is not grid_rows x grid_cols."""
    with _open(db_path) as con:
        table = con.sql(_GROUP_MAPS_SQL, params={"run": run_id, "method": method, "mean": MEAN_LAYER}).to_arrow_table()
        rows = _arrow_frame(con, table.drop_columns(["grid"]))
    grid = table.column("grid").combine_chunks()
    shape_rows, shape_cols = (table.column(c).to_numpy().astype(np.int64) for c in ("grid_rows", "grid_cols"))
    bad = np.flatnonzero(pc.list_value_length(grid).to_numpy(zero_copy_only=False) != shape_rows * shape_cols)
    if len(bad):
        k = bad[0]
        raise ValueError(f"run {run_id!r}: the stored {method} map of item {rows.item_id.iloc[k]!r} has "
                         f"{len(grid[k])} values, not {shape_rows[k]}x{shape_cols[k]}")
    index = np.zeros(len(rows), dtype=np.int64)
    grids: dict[tuple[int, int], np.ndarray] = {}
    shapes, first = np.unique(np.stack([shape_rows, shape_cols], axis=1), axis=0, return_index=True)
    for r, c in shapes[np.argsort(first)]:
        members = np.flatnonzero((shape_rows == r) & (shape_cols == c))
        index[members] = np.arange(len(members))
        chosen = grid if len(members) == len(rows) else grid.take(pa.array(members))
        values = pc.list_flatten(chosen).to_numpy(zero_copy_only=False, writable=True)
        grids[(int(r), int(c))] = values.astype(np.float32, copy=False).reshape(len(members), int(r), int(c))
    rows["grid_index"] = index
    return rows, grids


def attention_changes(db_path: str | Path, run_id: str) -> pd.DataFrame:
    """Every stored baseline-to-variant map comparison of a run, with the variant's details,
    most changed first; without the difference maps (see change_difference)."""
    with _open(db_path) as con:
        if current_version(con) < 3:
            return pd.DataFrame()
        if aggregates.current(con, run_id):
            return _cached(con, "run_changes", aggregates.CHANGE_COLUMNS, run_id)
        source, order = _changes_source(con, run_id)
        return _frame(con, f"SELECT {_prefixed(aggregates.CHANGE_COLUMNS)} FROM {source} WHERE c.run_id = ? "
                           f"ORDER BY {order}", [run_id])


_CHANGE_STATISTICS = "answer_change, correctness_change, js_divergence, pearson, cosine"


def _changes_source(con: duckdb.DuckDBPyConnection, run_id: str) -> tuple[str, str]:
    """(the FROM clause with a run's comparisons and their variants' details, its ORDER BY: most changed
    first): the summary table where it is current, else the live tables."""
    if aggregates.current(con, run_id):
        return "run_changes c", "c.position"
    return ("attention_changes c JOIN prediction_details d ON d.run_id = c.run_id AND d.item_id = c.item_id",
            "c.js_divergence DESC, c.item_id, c.method")


def change_statistics(db_path: str | Path, run_id: str) -> pd.DataFrame:
    """Every comparison of a run with only what its statistics read (compute.metrics.attention_change:
    by_change_type, change_tests, change_distribution): the change types and the metrics, no text."""
    with _open(db_path) as con:
        if current_version(con) < 3:
            return pd.DataFrame()
        table = "run_changes" if aggregates.current(con, run_id) else "attention_changes"
        return _frame(con, f"SELECT {_CHANGE_STATISTICS} FROM {table} WHERE run_id = ?", [run_id])


def change_choices(db_path: str | Path, run_id: str) -> dict[str, list[str]]:
    """The values a run's comparisons take, sorted, for the gallery's filters: condition,
    strategy_category and answer_change (NULLs left out)."""
    with _open(db_path) as con:
        if current_version(con) < 3:
            return {"condition": [], "strategy_category": [], "answer_change": []}
        source, _ = _changes_source(con, run_id)
        return {column: [r[0] for r in con.execute(
                    f"SELECT DISTINCT {column} FROM {source} WHERE c.run_id = ? AND {column} IS NOT NULL "
                    f"ORDER BY 1", [run_id]).fetchall()]
                for column in ("condition", "strategy_category", "answer_change")}


def change_gallery(db_path: str | Path, run_id: str, conditions: list[str], categories: list[str],
                   answer_changes: list[str], correct: list[bool], limit: int) -> tuple[int, pd.DataFrame]:
    """(how many comparisons match, the `limit` most changed of them as attention_changes has them):
    the variants whose condition, strategy category, answer change and correctness are among those
    given (a NULL matches none)."""
    with _open(db_path) as con:
        if current_version(con) < 3:
            return 0, pd.DataFrame()
        source, order = _changes_source(con, run_id)
        where = ("c.run_id = $run AND list_contains($conditions, condition) AND list_contains($categories, "
                 "strategy_category) AND list_contains($changes, c.answer_change) AND list_contains($correct, correct)")
        params = {"run": run_id, "conditions": list(conditions), "categories": list(categories),
                  "changes": list(answer_changes), "correct": [bool(c) for c in correct]}
        matched = con.execute(f"SELECT count(*) FROM {source} WHERE {where}", params).fetchall()[0][0]
        shown = _frame(con, f"SELECT {_prefixed(aggregates.CHANGE_COLUMNS)} FROM {source} WHERE {where} "
                            f"ORDER BY {order} LIMIT {int(limit)}", params)
    return int(matched), shown


def _prefixed(columns: str) -> str:
    """CHANGE_COLUMNS with each attention_changes column named through its table (`c.`), the
    details' through theirs, so that one list reads from run_changes and from the live join."""
    own = {"run_id", "item_id", "baseline_item_id", "method", "layer", "answer_change", "correctness_change",
           "js_divergence", "pearson", "l2", "cosine", "grid_rows", "grid_cols"}
    return ", ".join(f"c.{c}" if c in own else c for c in (c.strip() for c in columns.split(",")))


def item_map(db_path: str | Path, run_id: str, item_id: str, method: str, layer: int) -> np.ndarray | None:
    """One stored map as a (rows, columns) array, or None."""
    with _open(db_path) as con:  # the item's maps of the method, by its index; then the layer (see schema _V7)
        rows = con.execute("SELECT grid, grid_rows, grid_cols, layer FROM attention_maps WHERE run_id = ?"
                           " AND item_id = ? AND method = ?", [run_id, item_id, method]).fetchall()
    row = next((r for r in rows if r[3] == layer), None)
    if row is None:
        return None
    return np.asarray(row[0], dtype=np.float64).reshape(row[1], row[2])


def change_difference(db_path: str | Path, run_id: str, item_id: str, method: str = "attention") -> np.ndarray | None:
    """One variant's difference map (variant minus baseline) as a (rows, columns) array."""
    with _open(db_path) as con:
        row = con.execute("SELECT difference, grid_rows, grid_cols FROM attention_changes WHERE run_id = ? AND"
                          " item_id = ? AND method = ?", [run_id, item_id, method]).fetchone()
    if row is None:
        return None
    return np.asarray(row[0], dtype=np.float64).reshape(row[1], row[2])


class RunNotFoundError(KeyError):
    """No run of that name in the store; the message lists the runs it holds."""

    def __str__(self) -> str:
        return str(self.args[0])


def require_run(db_path: str | Path, run_id: str) -> None:
    """RunNotFoundError naming the store's runs, unless `run_id` is one of them."""
    if run_exists(db_path, run_id):
        return
    runs = list_runs(db_path).run_id.tolist() if has_runs(db_path) else []
    shown = ", ".join(repr(r) for r in runs[:10]) + (", ..." if len(runs) > 10 else "")
    raise RunNotFoundError(f"no run named {run_id!r} in {db_path}; "
                           + (f"its runs: {shown}" if runs else "it holds no runs"))


_COMPARE_COLUMNS = ["item_id", "row_number", "image_sha256", "image_id", "question", "ground_truth", "condition",
                    "answer", "correct", "p_yes", "group_id", "variant_index", "strategy", "strategy_category",
                    "baseline_question"]


def compare_rows(db_path: str | Path, run_id: str) -> pd.DataFrame:
    """Answered items of a run, in manifest order, with what identifies an item across runs:
    the sha256 of the image bytes the model was shown (image_sha256; NULL for imported runs,
    which read no image, and for runs stored before schema 4), the image id and the question
    text; and the outcome and variant-group columns (NULL before schema 3)."""
    with _open(db_path) as con:
        version = current_version(con)
        if version < 1:
            return pd.DataFrame(columns=_COMPARE_COLUMNS)
        if aggregates.current(con, run_id):
            return _cached(con, "run_items", ", ".join(_COMPARE_COLUMNS), run_id, "status = 'ok'")
        sha, files = (("f.sha256", "LEFT JOIN image_files f ON f.image_key = d.image_key") if version >= 4
                      else ("NULL::VARCHAR", ""))  # image_key is image_files' primary key: one row at most
        grouped = ("d.strategy_category, d.baseline_question" if version >= 3
                   else "NULL::VARCHAR AS strategy_category, NULL::VARCHAR AS baseline_question")
        return _frame(con, f"""
            SELECT d.item_id, d.row_number, {sha} AS image_sha256, d.image_id, d.question, d.ground_truth,
                   d.condition, d.answer, d.correct, d.p_yes, d.group_id, d.variant_index, d.strategy, {grouped}
            FROM prediction_details d {files}
            WHERE d.run_id = ? AND d.status = 'ok'
            ORDER BY d.row_number, d.item_id
        """, [run_id])


def summary_maps(db_path: str | Path, run_id: str, method: str = "attention",
                 item_id: str | None = None) -> pd.DataFrame:
    """Per answered item of a run with a map of `method` (or only `item_id`): its summary map,
    the mean over layers (stored as layer MEAN_LAYER) or else its lowest layer; columns
    item_id, layer, grid_rows, grid_cols, grid (row-major), image_height, image_width."""
    columns = ["item_id", "layer", "grid_rows", "grid_cols", "grid", "image_height", "image_width"]
    with _open(db_path) as con:
        if current_version(con) < 2:
            return pd.DataFrame(columns=columns)
        params = {"run": run_id, "method": method, "mean": MEAN_LAYER}
        if item_id is None:
            return _frame(con, f"""
                WITH {_summary_layers()}
                SELECT m.item_id, m.layer, m.grid_rows, m.grid_cols, m.grid, m.image_height, m.image_width
                FROM attention_maps m JOIN chosen c ON c.item_id = m.item_id AND c.layer = m.layer
                JOIN predictions p ON p.run_id = m.run_id AND p.item_id = m.item_id
                WHERE m.run_id = $run AND m.method = $method AND p.status = 'ok'
                ORDER BY p.row_number, m.item_id
            """, params)
        # One item: its layer chosen among its own maps, and its prediction, both found by the item_id indexes
        # (DuckDB scans a whole table instead when a join filters it, by item and layer)
        return _frame(con, """
            SELECT item_id, layer, grid_rows, grid_cols, grid, image_height, image_width FROM (
                SELECT m.item_id, m.layer, m.grid_rows, m.grid_cols, m.grid, m.image_height, m.image_width,
                       CASE WHEN bool_or(m.layer = $mean) OVER () THEN $mean ELSE min(m.layer) OVER () END AS summary
                FROM attention_maps m
                WHERE m.run_id = $run AND m.method = $method AND m.item_id = $item
                  AND EXISTS (SELECT 1 FROM predictions p WHERE p.run_id = $run AND p.item_id = $item
                                                            AND p.status = 'ok'))
            WHERE layer = summary
        """, {**params, "item": item_id})


def method_figures(db_path: str | Path, run_id: str) -> pd.DataFrame:
    """Per map method and condition of a run, over each item's summary map (the mean over layers, else
    its lowest layer): n, the pointing-game hit rate and the mean in-lesion mass ratio (items with a
    lesion), the median deletion ratio (runs with --deletion) and the mean sink mass (with --sink-factor)."""
    columns = ["method", "condition", "n", "n_lesion", "hit_rate", "lesion_ratio", "deletion_ratio", "sink_mass"]
    with _open(db_path) as con:
        if current_version(con) < 6:
            return pd.DataFrame(columns=columns)
        if aggregates.current(con, run_id):
            return con.execute(f"SELECT {', '.join(columns)} FROM run_method_figures WHERE run_id = ?"
                               " ORDER BY method, condition", [run_id]).df()
        return con.execute(f"SELECT * FROM ({aggregates.METHOD_FIGURES_SQL}) ORDER BY method, condition",
                           {"run": run_id, "mean": MEAN_LAYER}).df()


def item_head_maps(db_path: str | Path, run_id: str, item_id: str, method: str, layer: int) -> pd.DataFrame:
    """Each head's map of one layer of one item (runs with --heads all): head, grid_rows, grid_cols, grid."""
    with _open(db_path) as con:
        if current_version(con) < 6:
            return pd.DataFrame(columns=["head", "grid_rows", "grid_cols", "grid"])
        heads = con.execute("SELECT head, grid_rows, grid_cols, grid, layer FROM head_maps WHERE run_id = ?"
                            " AND item_id = ? AND method = ? ORDER BY head", [run_id, item_id, method]).df()
    return heads[heads.pop("layer") == layer].reset_index(drop=True)  # the layer after the index (schema _V7)
