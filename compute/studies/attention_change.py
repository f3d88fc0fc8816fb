"""Attention-change study: how each variant's map differs from its group's baseline map.

Runs over a phrasing run's stored maps (no model needed) and stores, per variant, the
comparison (compute.metrics.compare_maps), the signed difference map, and how the answer
changed: yes→no, no→yes, correct→wrong, wrong→correct, or unchanged (the control).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from store import AttentionChangeRecord, StoreWriter, queries

from compute.metrics.attention import compare_maps_batch
from compute.metrics.attention_change import answer_change, correctness_change
from vocabulary import Method


def change_records(maps: pd.DataFrame, run_id: str, method: str = Method.ATTENTION,
                   grids: Sequence[np.ndarray] | None = None) -> list[AttentionChangeRecord]:
    """One record per variant whose group has a baseline map (the first baseline row). `grids`:
    each row's map (rows, columns), else read from the frame's `grid` column. The comparisons
    run as one batch per grid shape."""
    frame = maps.reset_index(drop=True)
    if grids is None:
        grids = [np.asarray(g, dtype=np.float64).reshape(int(r), int(c))
                 for g, r, c in zip(frame["grid"], frame["grid_rows"], frame["grid_cols"])]
    first_baseline = frame[frame["variant_index"] == 0].drop_duplicates("group_id")
    baseline_of = dict(zip(first_baseline["group_id"], first_baseline.index))
    pairs = [(k, baseline_of[g]) for k, g, v in zip(frame.index, frame["group_id"], frame["variant_index"])
             if v != 0 and g in baseline_of]
    by_shape: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for variant, baseline in pairs:
        by_shape.setdefault(np.shape(grids[variant]), []).append((variant, baseline))
    compared: dict[int, tuple[int, dict, int]] = {}  # variant row -> (baseline row, comparison, position in it)
    for members in by_shape.values():
        result = compare_maps_batch(np.stack([grids[b] for _, b in members]), np.stack([grids[v] for v, _ in members]))
        compared.update({v: (b, result, k) for k, (v, b) in enumerate(members)})
    rows = frame.drop(columns=["grid"], errors="ignore").to_dict("records")
    return [_record(rows, run_id, method, variant, *compared[variant]) for variant, _ in pairs]


def _record(rows: list[dict], run_id: str, method: str, variant: int, baseline: int, c: dict,
            k: int) -> AttentionChangeRecord:
    row, base = rows[variant], rows[baseline]
    difference = c["difference"][k]
    pearson = float(c["pearson"][k])
    return AttentionChangeRecord(
        run_id=run_id, item_id=row["item_id"], baseline_item_id=base["item_id"], method=method,
        layer=int(row["layer"]), answer_change=str(answer_change(base["answer"], row["answer"])),
        correctness_change=str(correctness_change(bool(base["correct"]), bool(row["correct"]))),
        js_divergence=float(c["js_divergence"][k]), pearson=None if np.isnan(pearson) else pearson,
        l2=float(c["l2"][k]), cosine=float(c["cosine"][k]), grid_rows=difference.shape[0],
        grid_cols=difference.shape[1], difference=difference.ravel().astype(np.float32))


def run_attention_change(db: str | Path, run_id: str, method: str = Method.ATTENTION) -> int:
    """Compute and store the comparisons of a run; returns how many were stored."""
    rows, grids = queries.group_map_arrays(db, run_id, method)  # every map at once, as float32 arrays
    per_row = [grids[(int(r), int(c))][int(k)] for r, c, k in zip(rows["grid_rows"], rows["grid_cols"],
                                                                 rows["grid_index"])]
    records = change_records(rows, run_id, method, [g.astype(np.float64) for g in per_row])
    StoreWriter(db).write_attention_changes(records)
    return len(records)
