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

from store.connection import connect
from store.schema import current_version, usable_version
from vocabulary import MEAN_LAYER


@contextmanager
def _open(db_path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to a store this code can read (StoreError otherwise)."""
    with connect(db_path, read_only=True) as con:
        usable_version(con, db_path)
        yield con


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
        counts = con.execute("""
            SELECT count(*) FILTER (WHERE status = 'ok')                 AS n_done,
                   count(*) FILTER (WHERE status = 'failed')             AS n_failed,
                   CASE WHEN count(image_key) > 0 THEN count(DISTINCT image_key) FILTER (WHERE status = 'ok')
                        ELSE count(DISTINCT image_id) FILTER (WHERE status = 'ok') END AS n_images,
                   count(*) FILTER (WHERE answer = 'uncertain')          AS n_uncertain,
                   sum(correct::INTEGER) FILTER (WHERE status = 'ok')    AS n_correct,
                   avg(yes_no_mass) FILTER (WHERE status = 'ok')         AS mean_yes_no_mass
            FROM prediction_details WHERE run_id = ?
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


def conditions(db_path: str | Path, run_id: str) -> list[str]:
    with _open(db_path) as con:
        rows = con.execute("SELECT DISTINCT condition FROM prediction_details WHERE run_id = ? AND status = 'ok'"
                           " AND condition IS NOT NULL ORDER BY condition", [run_id]).fetchall()
    return [r[0] for r in rows]


def condition_counts(db_path: str | Path, run_id: str, conditions: list[str] | None = None) -> pd.DataFrame:
    """Answered and correct items per condition, split by ground truth ('yes', 'no', and 'all').
    "uncertain" answers count as wrong; failed items are excluded."""
    with _open(db_path) as con:
        df = con.execute("""
            SELECT condition, coalesce(ground_truth, 'all') AS ground_truth,
                   count(*) AS n, sum(correct::INTEGER) AS n_correct
            FROM prediction_details
            WHERE run_id = ? AND status = 'ok'
              AND (? IS NULL OR list_contains(?, condition))
            GROUP BY GROUPING SETS ((condition, ground_truth), (condition))
            ORDER BY condition, ground_truth
        """, [run_id, conditions, conditions]).df()
    df["n"] = df["n"].astype(int)
    df["n_correct"] = df["n_correct"].fillna(0).astype(int)
    return df


def predictions(db_path: str | Path, run_id: str, conditions: list[str] | None = None) -> pd.DataFrame:
    """Every item of a run with its question, answer and outcome (for tables and downloads)."""
    with _open(db_path) as con:
        return con.execute("""
            SELECT item_id, image_id, condition, question, ground_truth, answer, correct, p_yes,
                   yes_no_mass, status, error, generated_text, latency_s
            FROM prediction_details
            WHERE run_id = ? AND (? IS NULL OR list_contains(?, condition))
            ORDER BY row_number
        """, [run_id, conditions, conditions]).df()


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
        key = "d.image_key" if version >= 4 else "NULL::VARCHAR AS image_key"
        return con.execute(f"""
            SELECT d.item_id, d.image_id, {key}, d.condition, d.question, d.ground_truth, d.answer, d.correct, d.p_yes
            FROM prediction_details d
            WHERE d.run_id = ? AND d.status = 'ok'
              AND EXISTS (SELECT 1 FROM attention_maps m WHERE m.run_id = d.run_id AND m.item_id = d.item_id)
            ORDER BY d.row_number
        """, [run_id]).df()


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
        return con.execute("""
            SELECT item_id, group_id, variant_index, strategy, strategy_category, condition, question,
                   baseline_question, ground_truth, answer, correct, p_yes
            FROM prediction_details
            WHERE run_id = ? AND status = 'ok' AND group_id IS NOT NULL AND variant_index IS NOT NULL
            ORDER BY row_number
        """, [run_id]).df()


def group_maps(db_path: str | Path, run_id: str, method: str = "attention") -> pd.DataFrame:
    """Per answered item of a variant group: its summary map (the mean over layers, stored as
    layer MEAN_LAYER, or else its only layer) with the item's group, variant index, answer and correctness."""
    with _open(db_path) as con:
        return con.execute("""
            SELECT d.item_id, d.group_id, d.variant_index, d.answer, d.correct, m.layer, m.grid_rows, m.grid_cols,
                   m.grid
            FROM prediction_details d
            JOIN attention_maps m ON m.run_id = d.run_id AND m.item_id = d.item_id AND m.method = ?
            WHERE d.run_id = ? AND d.status = 'ok' AND d.group_id IS NOT NULL AND d.variant_index IS NOT NULL
              AND m.layer = (SELECT CASE WHEN bool_or(x.layer = ?) THEN ? ELSE min(x.layer) END FROM attention_maps x
                             WHERE x.run_id = m.run_id AND x.item_id = m.item_id AND x.method = m.method)
            ORDER BY d.row_number
        """, [method, run_id, MEAN_LAYER, MEAN_LAYER]).df()


def attention_changes(db_path: str | Path, run_id: str) -> pd.DataFrame:
    """Every stored baseline-to-variant map comparison of a run, with the variant's details,
    most changed first; without the difference maps (see change_difference)."""
    with _open(db_path) as con:
        if current_version(con) < 3:
            return pd.DataFrame()
        return con.execute("""
            SELECT c.* EXCLUDE (difference), d.group_id, d.image_id, d.condition, d.question, d.baseline_question, d.strategy,
                   d.strategy_category, d.answer, d.correct, d.ground_truth
            FROM attention_changes c JOIN prediction_details d ON d.run_id = c.run_id AND d.item_id = c.item_id
            WHERE c.run_id = ?
            ORDER BY c.js_divergence DESC
        """, [run_id]).df()


def item_map(db_path: str | Path, run_id: str, item_id: str, method: str, layer: int) -> np.ndarray | None:
    """One stored map as a (rows, columns) array, or None."""
    with _open(db_path) as con:
        row = con.execute("SELECT grid, grid_rows, grid_cols FROM attention_maps WHERE run_id = ? AND item_id = ?"
                          " AND method = ? AND layer = ?", [run_id, item_id, method, layer]).fetchone()
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
        sha = ("(SELECT f.sha256 FROM image_files f WHERE f.image_key = d.image_key)" if version >= 4
               else "NULL::VARCHAR")
        grouped = ("d.strategy_category, d.baseline_question" if version >= 3
                   else "NULL::VARCHAR AS strategy_category, NULL::VARCHAR AS baseline_question")
        return con.execute(f"""
            SELECT d.item_id, d.row_number, {sha} AS image_sha256, d.image_id, d.question, d.ground_truth,
                   d.condition, d.answer, d.correct, d.p_yes, d.group_id, d.variant_index, d.strategy, {grouped}
            FROM prediction_details d
            WHERE d.run_id = ? AND d.status = 'ok'
            ORDER BY d.row_number, d.item_id
        """, [run_id]).df()


def summary_maps(db_path: str | Path, run_id: str, method: str = "attention",
                 item_id: str | None = None) -> pd.DataFrame:
    """Per answered item of a run with a map of `method` (or only `item_id`): its summary map,
    the mean over layers (stored as layer MEAN_LAYER) or else its lowest layer; columns
    item_id, layer, grid_rows, grid_cols, grid (row-major), image_height, image_width."""
    columns = ["item_id", "layer", "grid_rows", "grid_cols", "grid", "image_height", "image_width"]
    with _open(db_path) as con:
        if current_version(con) < 2:
            return pd.DataFrame(columns=columns)
        return con.execute("""
            SELECT m.item_id, m.layer, m.grid_rows, m.grid_cols, m.grid, m.image_height, m.image_width
            FROM attention_maps m JOIN predictions p ON p.run_id = m.run_id AND p.item_id = m.item_id
            WHERE m.run_id = ? AND m.method = ? AND p.status = 'ok' AND (? IS NULL OR m.item_id = ?)
              AND m.layer = (SELECT CASE WHEN bool_or(x.layer = ?) THEN ? ELSE min(x.layer) END FROM attention_maps x
                             WHERE x.run_id = m.run_id AND x.item_id = m.item_id AND x.method = m.method)
            ORDER BY p.row_number, m.item_id
        """, [run_id, method, item_id, item_id, MEAN_LAYER, MEAN_LAYER]).df()


def method_figures(db_path: str | Path, run_id: str) -> pd.DataFrame:
    """Per map method and condition of a run, over each item's summary map (the mean over layers, else
    its lowest layer): n, the pointing-game hit rate and the mean in-lesion mass ratio (items with a
    lesion), the median deletion ratio (runs with --deletion) and the mean sink mass (with --sink-factor)."""
    columns = ["method", "condition", "n", "n_lesion", "hit_rate", "lesion_ratio", "deletion_ratio", "sink_mass"]
    with _open(db_path) as con:
        if current_version(con) < 6:
            return pd.DataFrame(columns=columns)
        return con.execute("""
            WITH summary AS (
                SELECT m.*, q.condition FROM attention_maps m JOIN questions q USING (item_id)
                WHERE m.run_id = ?
                QUALIFY row_number() OVER (PARTITION BY m.item_id, m.method ORDER BY (m.layer = ?) DESC, m.layer) = 1)
            SELECT method, condition, count(*) AS n, count(lesion_hit) AS n_lesion,
                   avg(CASE WHEN lesion_hit THEN 1.0 WHEN NOT lesion_hit THEN 0.0 END) AS hit_rate,
                   avg(lesion_attention_ratio) AS lesion_ratio, median(faithfulness_ratio) AS deletion_ratio,
                   avg(sink_mass) AS sink_mass
            FROM summary GROUP BY method, condition ORDER BY method, condition
        """, [run_id, MEAN_LAYER]).df()


def item_head_maps(db_path: str | Path, run_id: str, item_id: str, method: str, layer: int) -> pd.DataFrame:
    """Each head's map of one layer of one item (runs with --heads all): head, grid_rows, grid_cols, grid."""
    with _open(db_path) as con:
        if current_version(con) < 6:
            return pd.DataFrame(columns=["head", "grid_rows", "grid_cols", "grid"])
        return con.execute("SELECT head, grid_rows, grid_cols, grid FROM head_maps WHERE run_id = ? AND item_id = ? "
                           "AND method = ? AND layer = ? ORDER BY head", [run_id, item_id, method, layer]).df()
