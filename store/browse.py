"""The Browse page's queries: one page of a run's answered predictions, filtered and sorted, and
the values its filters offer. Read-only; every value goes in as a parameter, and only names from
fixed lists (the sort keys, the dataset columns) are written into the SQL.

Definitions, as the page states them:

- **Confidence** = |P(yes) - 0.5| x 2, in [0, 1]: 0 for P(yes) = 0.5, 1 for P(yes) = 0 or 1.
  NULL (and NaN) P(yes), as imported runs store, has no confidence.
- **Flipped**: an item of a variant group (group_id and variant_index set) whose group has an
  answered baseline (variant_index 0, status ok, in the same run) is flipped when its own answer
  differs from the baseline's answer (as text: yes, no or uncertain; "yes" to "uncertain" is a
  flip). The baseline itself is never flipped. Its group is flipped when at least one of the
  group's items is. Items outside a group, or whose group has no answered baseline, are neither
  flipped nor unflipped: every flip filter leaves them out. (A group with two baselines takes the
  one of the smallest item_id.)
- **JS divergence**: the item's stored comparison with its group's baseline in attention_changes,
  of method 'attention' at the mean over layers (layer MEAN_LAYER); NULL for items without one
  (baselines, runs without maps), which sort last in either direction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from store import aggregates, slices
from store.queries import _frame, _open
from store.schema import current_version
from store.slices import ATTRIBUTE
from vocabulary import MEAN_LAYER

CHANGE_METHOD = "attention"  # the comparisons whose JS divergence the page sorts by
SORTS = ("manifest", "p_yes", "confidence", "js_divergence")  # manifest: the run's manifest order
# The flip filter's values: the item's own answer against its baseline's, or its group's.
FLIPS = ("flipped", "unflipped", "group_flipped", "group_unflipped")
_FLIP_SQL = {"flipped": "flipped IS TRUE", "unflipped": "flipped IS FALSE",
             "group_flipped": "group_flipped IS TRUE", "group_unflipped": "group_flipped IS FALSE"}
COLUMNS = {c: slices.COLUMNS[c] for c in ("dataset", "view", "split")}  # the dataset's columns: schema version
MAX_LIMIT = 500  # rows per page at most
MAX_VALUES = 200  # a dataset column with more distinct values than this is not offered as a filter

_SORT_SQL = {"manifest": "ord", "p_yes": "p_yes", "confidence": "confidence", "js_divergence": "js_divergence"}
PAGE_COLUMNS = ("item_id, image_id, question, condition, ground_truth, answer, correct, p_yes, confidence, strategy,"
                " group_id, variant_index, baseline_answer, flipped, group_flipped, js_divergence, has_maps, dataset,"
                " view, split")


@dataclass(frozen=True)
class BrowseFilter:
    """Which answered predictions to show. None: no filter on that field. A tuple of values keeps
    the items whose value is one of them (an empty tuple keeps none, and a NULL matches none)."""

    conditions: tuple[str, ...] | None = None
    ground_truths: tuple[str, ...] | None = None
    answers: tuple[str, ...] | None = None
    correct: bool | None = None
    p_yes: tuple[float, float] | None = None  # inclusive; items without a P(yes) never match
    flipped: str | None = None  # one of FLIPS (see the module's docstring)
    strategies: tuple[str, ...] | None = None
    # (column, values): a COLUMNS name or "attributes.KEY" (the manifest column KEY, compared as text)
    columns: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class BrowseChoices:
    """What a run's answered predictions hold, for the Browse page's filters."""

    n_items: int  # answered predictions
    n_p_yes: int  # of them, with a P(yes)
    n_grouped: int  # in a variant group with an answered baseline: the ones a flip filter can keep
    n_compared: int  # with a JS divergence to sort by
    conditions: tuple[str, ...] = ()
    ground_truths: tuple[str, ...] = ()
    answers: tuple[str, ...] = ()
    strategies: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()  # the map methods the run stored, sorted
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)  # dataset column: its values, sorted
    too_many: tuple[str, ...] = ()  # dataset columns with more than MAX_VALUES values, not offered


def browse_page(db_path: str | Path, run_id: str, filters: BrowseFilter = BrowseFilter(), sort: str = "manifest",
                descending: bool = False, limit: int = 24, offset: int = 0) -> tuple[int, pd.DataFrame]:
    """(how many answered predictions of the run match `filters`, the `limit` of them from `offset` on
    in `sort` order, with PAGE_COLUMNS). Rows without the sort's value come last in either direction;
    ties, and those, go in manifest order. ValueError for an unknown sort, flip filter or column."""
    if sort not in SORTS:
        raise ValueError(f"unknown sort {sort!r}; one of {', '.join(SORTS)}")
    if not 1 <= int(limit) <= MAX_LIMIT or int(offset) < 0:
        raise ValueError(f"limit must be 1 to {MAX_LIMIT} and offset at least 0, not {limit} and {offset}")
    with _rows(db_path, run_id) as (con, version, prefix, params):
        if not version:
            return 0, pd.DataFrame(columns=[c.strip() for c in PAGE_COLUMNS.split(",")])
        where, more = _where(filters, version)
        params = {**params, **more}
        (total,) = con.execute(f"{prefix} SELECT count(*) FROM browse_rows WHERE {where}", params).fetchall()[0]
        direction = "DESC" if descending else "ASC"
        ties = direction if sort == "manifest" else "ASC"
        order = f"{_SORT_SQL[sort]} {direction} NULLS LAST, ord {ties} NULLS LAST, item_id {ties}"
        page = _frame(con, f"{prefix} SELECT {PAGE_COLUMNS} FROM browse_rows WHERE {where} ORDER BY {order}"
                           " LIMIT $limit OFFSET $offset", {**params, "limit": int(limit), "offset": int(offset)})
    return int(total), page


def browse_choices(db_path: str | Path, run_id: str) -> BrowseChoices:
    """The run's answered predictions' counts and the distinct values of what they can be filtered by."""
    with _rows(db_path, run_id) as (con, version, prefix, params):
        if not version:
            return BrowseChoices(0, 0, 0, 0)
        counts = con.execute(f"{prefix} SELECT count(*), count(p_yes), count(flipped), count(js_divergence),"
                             " list(DISTINCT condition ORDER BY condition), list(DISTINCT ground_truth ORDER BY"
                             " ground_truth), list(DISTINCT answer ORDER BY answer), list(DISTINCT strategy ORDER BY"
                             " strategy) FROM browse_rows", params).fetchall()[0]
        columns = _column_values(con, version, prefix, params)
        methods = _methods(con, version, run_id)
    offered = {name: values for name, values in columns.items() if len(values) <= MAX_VALUES}
    return BrowseChoices(*(int(n) for n in counts[:4]), *(_texts(v) for v in counts[4:]), methods=methods,
                         columns=offered, too_many=tuple(c for c in columns if c not in offered))


def _texts(values: list | None) -> tuple[str, ...]:
    return tuple(str(v) for v in (values or []) if v is not None)


def _column_values(con: duckdb.DuckDBPyConnection, version: int, prefix: str,
                   params: dict) -> dict[str, tuple[str, ...]]:
    """Each dataset column with a value among the items: its distinct values, sorted."""
    present = [c for c, since in COLUMNS.items() if version >= since]
    found: dict[str, tuple[str, ...]] = {}
    if present:
        lists = con.execute(f"{prefix} SELECT {', '.join(f'list(DISTINCT {c} ORDER BY {c})' for c in present)}"
                            " FROM browse_rows", params).fetchall()[0]
        found = {c: _texts(v) for c, v in zip(present, lists, strict=True) if _texts(v)}
    if version >= 5:
        keys = con.execute(f"""{prefix}
            SELECT key, list(DISTINCT value ORDER BY value) FROM (
                SELECT key, json_extract_string(attributes, '/' || replace(replace(key, '~', '~0'), '/', '~1'))
                       AS value
                FROM (SELECT unnest(json_keys(attributes)) AS key, attributes FROM browse_rows
                      WHERE attributes IS NOT NULL AND json_type(attributes) = 'OBJECT'))
            GROUP BY key ORDER BY key""", params).fetchall()
        found.update({ATTRIBUTE + key: _texts(values) for key, values in keys if _texts(values)})
    return found


def _methods(con: duckdb.DuckDBPyConnection, version: int, run_id: str) -> tuple[str, ...]:
    if version < 2:
        return ()
    rows = con.execute("SELECT DISTINCT method FROM attention_maps WHERE run_id = ? ORDER BY method", [run_id])
    return tuple(r[0] for r in rows.fetchall())


def _pointer(key: str) -> str:
    """The JSON pointer of the top-level key `key` (RFC 6901: ~ as ~0, / as ~1)."""
    return "/" + key.replace("~", "~0").replace("/", "~1")


def _where(filters: BrowseFilter, version: int) -> tuple[str, dict]:
    """(SQL condition over `browse_rows`, its parameters) of `filters`."""
    clauses, params = ["TRUE"], {}
    for name, values in (("conditions", filters.conditions), ("ground_truths", filters.ground_truths),
                         ("answers", filters.answers), ("strategies", filters.strategies)):
        if values is not None:
            column = {"conditions": "condition", "ground_truths": "ground_truth", "answers": "answer",
                      "strategies": "strategy"}[name]
            clauses.append(f"list_contains(${name}, {column})")
            params[name] = [str(v) for v in values]
    if filters.correct is not None:
        clauses.append("correct = $correct")
        params["correct"] = bool(filters.correct)
    if filters.p_yes is not None:
        clauses.append("p_yes BETWEEN $p_low AND $p_high")
        params["p_low"], params["p_high"] = (float(v) for v in filters.p_yes)
    if filters.flipped is not None:
        if filters.flipped not in _FLIP_SQL:
            raise ValueError(f"unknown flip filter {filters.flipped!r}; one of {', '.join(FLIPS)}")
        clauses.append(_FLIP_SQL[filters.flipped])
    for k, (column, values) in enumerate(filters.columns):
        clauses.append(f"list_contains($column{k}, {_column_sql(column, version, k, params)})")
        params[f"column{k}"] = [str(v) for v in values]
    return " AND ".join(clauses), params


def _column_sql(column: str, version: int, k: int, params: dict) -> str:
    """The SQL of dataset column `column` as text (an attribute's pointer goes into `params`)."""
    if column in COLUMNS and version >= COLUMNS[column]:
        return f"{column}::VARCHAR"
    if column.startswith(ATTRIBUTE) and version >= 5:
        params[f"key{k}"] = _pointer(column[len(ATTRIBUTE):])
        return f"json_extract_string(attributes, $key{k})"
    raise ValueError(f"cannot filter by {column!r}: not a dataset column of this store")


@contextmanager
def _rows(db_path: str | Path, run_id: str) -> Iterator[tuple[duckdb.DuckDBPyConnection, int, str, dict]]:
    """(connection, schema version, a WITH clause defining `browse_rows`, its parameters): the run's answered
    predictions with their dataset columns, flip flags, confidence and JS divergence. Version 0 (an
    empty store) comes with no clause: it has no rows."""
    with _open(db_path) as con:
        version = current_version(con)
        params = {"run": run_id, "method": CHANGE_METHOD, "mean": MEAN_LAYER}
        prefix = f"WITH items AS ({_items_sql(con, version, run_id)}), {_derived(version)}" if version else ""
        yield con, version, prefix, params


def _item_columns(prediction: str, question: str) -> str:
    """The columns of `items` read from the predictions' table and the questions' table (aliases)."""
    p, q = prediction, question
    return (f"{p}.item_id, {q}.image_id, {q}.question, {q}.condition, {q}.ground_truth, {p}.answer, {p}.correct,"
            f" CASE WHEN isnan({p}.p_yes) THEN NULL ELSE {p}.p_yes END AS p_yes, {q}.group_id, {q}.variant_index,"
            f" {q}.strategy")


def _items_sql(con: duckdb.DuckDBPyConnection, version: int, run_id: str) -> str:
    """The run's answered predictions: run_items (with the questions' dataset columns) where current,
    else predictions with their questions. `ord` is the manifest order."""
    dataset = ", ".join(f"q.{c}" if version >= since else f"NULL::{kind} AS {c}" for c, since, kind in
                        (("dataset", 1, "VARCHAR"), ("view", 5, "VARCHAR"), ("split", 5, "VARCHAR"),
                         ("attributes", 5, "JSON")))
    if aggregates.current(con, run_id):
        return (f"SELECT r.position AS ord, {_item_columns('r', 'r')}, {dataset}, r.has_maps FROM run_items r"
                " LEFT JOIN questions q ON q.item_id = r.item_id WHERE r.run_id = $run AND r.status = 'ok'")
    maps = "p.item_id IN (SELECT item_id FROM attention_maps WHERE run_id = $run)" if version >= 2 else "FALSE"
    return (f"SELECT p.row_number AS ord, {_item_columns('p', 'q')}, {dataset}, {maps} AS has_maps"
            " FROM predictions p LEFT JOIN questions q ON q.item_id = p.item_id"
            " WHERE p.run_id = $run AND p.status = 'ok'")


def _derived(version: int) -> str:
    """The CTEs after `items`: each group's baseline answer, the items' flip flags, and `rows`."""
    changes = ("LEFT JOIN attention_changes c ON c.run_id = $run AND c.item_id = f.item_id AND c.method = $method"
               " AND c.layer = $mean" if version >= 3 else "")
    js = "c.js_divergence" if version >= 3 else "NULL::DOUBLE"
    return f"""
        baselines AS (
            SELECT group_id, arg_min(answer, item_id) AS baseline_answer FROM items
            WHERE group_id IS NOT NULL AND variant_index = 0 GROUP BY group_id),
        flagged AS (
            SELECT i.*, b.baseline_answer,
                   CASE WHEN b.group_id IS NOT NULL THEN i.answer IS DISTINCT FROM b.baseline_answer END AS flipped
            FROM items i LEFT JOIN baselines b ON b.group_id = i.group_id),
        group_flips AS (
            SELECT group_id, bool_or(flipped) AS group_flipped FROM flagged WHERE flipped IS NOT NULL
            GROUP BY group_id),
        browse_rows AS (
            SELECT f.*, g.group_flipped, abs(f.p_yes - 0.5) * 2 AS confidence, {js} AS js_divergence
            FROM flagged f LEFT JOIN group_flips g ON g.group_id = f.group_id {changes})
    """
