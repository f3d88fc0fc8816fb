"""What a run's answers can be sliced by (the dataset's columns, the strategy, the image format,
the manifest's own columns), and the P(yes) of its yes/no questions with one such slice: what the
Calibration and ROC page and the report's calibration read. Values go in as parameters."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from store.queries import _frame, _open
from store.schema import current_version

ATTRIBUTE = "attributes."  # a slice named attributes.KEY is the manifest column KEY
# The columns of prediction_details (with the schema version that added each) a run can be sliced by.
COLUMNS = {"dataset": 1, "strategy": 3, "strategy_category": 3, "view": 5, "split": 5}
IMAGE_FORMAT = "image_format"  # png | jpeg | dicom, of the file the item was answered on (schema 4)


def slice_columns(db_path: str | Path, run_id: str) -> list[str]:
    """The slices of a run with at least two distinct values among its answered items."""
    with _open(db_path) as con:
        version = current_version(con)
        if version == 0:
            return []
        present = [c for c, since in COLUMNS.items() if version >= since]
        if version >= 4:
            present.append(IMAGE_FORMAT)
        counts = con.execute(f"SELECT {', '.join(f'count(DISTINCT {_expression(c)})' for c in present)}"
                             f" FROM {_source(version)} WHERE d.run_id = ? AND d.status = 'ok'", [run_id]).fetchall()[0]
        found = [c for c, n in zip(present, counts, strict=True) if n >= 2]
        if version >= 5:
            keys = con.execute("SELECT DISTINCT unnest(json_keys(d.attributes)) FROM prediction_details d WHERE"
                               " d.run_id = ? AND d.status = 'ok' AND d.attributes IS NOT NULL", [run_id]).fetchall()
            found += [ATTRIBUTE + k for (k,) in sorted(keys)]
    return found


def _source(version: int) -> str:
    return ("prediction_details d LEFT JOIN image_files f ON f.image_key = d.image_key" if version >= 4
            else "prediction_details d")


def _expression(column: str) -> str:
    return "f.format" if column == IMAGE_FORMAT else f"d.{column}"


def probability_rows(db_path: str | Path, run_id: str, slice_by: str | None = None) -> tuple[pd.DataFrame, int]:
    """(rows, n_without): each answered yes/no question with a P(yes), in manifest order, as columns
    condition, truth (ground truth is "yes"), p_yes and, with `slice_by`, `slice` (text; None where
    the item has no value); and how many answered yes/no questions have no P(yes) (an imported run's).
    ValueError for a `slice_by` that is not one of slice_columns' kinds."""
    with _open(db_path) as con:
        version = current_version(con)
        if slice_by is None:
            chosen = "NULL::VARCHAR"
        elif slice_by.startswith(ATTRIBUTE) and version >= 5:
            chosen = "d.attributes::VARCHAR"
        elif slice_by in COLUMNS and version >= COLUMNS[slice_by] or slice_by == IMAGE_FORMAT and version >= 4:
            chosen = f"{_expression(slice_by)}::VARCHAR"
        else:
            raise ValueError(f"cannot slice by {slice_by!r}: not a column of this store")
        where = "d.run_id = ? AND d.status = 'ok' AND d.ground_truth IN ('yes', 'no')"
        rows = _frame(con, f"SELECT d.condition, d.ground_truth = 'yes' AS truth, d.p_yes, {chosen} AS slice"
                           f" FROM {_source(version)} WHERE {where} AND d.p_yes IS NOT NULL"
                           " ORDER BY d.row_number, d.item_id", [run_id])
        n_without = con.execute(f"SELECT count(*) FROM prediction_details d WHERE {where} AND d.p_yes IS NULL",
                                [run_id]).fetchall()[0][0]
    if slice_by is not None and slice_by.startswith(ATTRIBUTE):
        rows["slice"] = rows["slice"].map(lambda text, key=slice_by[len(ATTRIBUTE):]: _attribute(text, key))
    if slice_by is None:
        rows = rows.drop(columns="slice")
    return rows, int(n_without)


def _attribute(text: str | None, key: str) -> str | None:
    value = json.loads(text).get(key) if text else None
    return None if value is None else value if isinstance(value, str) else json.dumps(value)
