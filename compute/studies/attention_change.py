"""Attention-change study: how each variant's map differs from its group's baseline map.

Runs over a phrasing run's stored maps (no model needed) and stores, per variant, the
comparison (compute.metrics.compare_maps), the signed difference map, and how the answer
changed: yes→no, no→yes, correct→wrong, wrong→correct, or unchanged (the control).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from store import AttentionChangeRecord, StoreWriter, queries

from compute.metrics import compare_maps
from compute.metrics.attention_change import answer_change, correctness_change
from vocabulary import Method


def change_records(maps: pd.DataFrame, run_id: str, method: str = Method.ATTENTION) -> list[AttentionChangeRecord]:
    """One record per variant whose group has a baseline map (the first baseline row)."""
    out = []
    for _, group in maps.groupby("group_id", sort=False):
        baselines = group[group["variant_index"] == 0]
        if baselines.empty:
            continue
        base = baselines.iloc[0]
        base_grid = np.asarray(base["grid"], dtype=np.float64).reshape(int(base["grid_rows"]), int(base["grid_cols"]))
        for _, row in group[group["variant_index"] != 0].iterrows():
            grid = np.asarray(row["grid"], dtype=np.float64).reshape(int(row["grid_rows"]), int(row["grid_cols"]))
            c = compare_maps(base_grid, grid)
            out.append(AttentionChangeRecord(
                run_id=run_id, item_id=row["item_id"], baseline_item_id=base["item_id"], method=method,
                layer=int(row["layer"]), answer_change=str(answer_change(base["answer"], row["answer"])),
                correctness_change=str(correctness_change(bool(base["correct"]), bool(row["correct"]))),
                js_divergence=c["js_divergence"], pearson=None if np.isnan(c["pearson"]) else c["pearson"],
                l2=c["l2"], cosine=c["cosine"], grid_rows=grid.shape[0], grid_cols=grid.shape[1],
                difference=c["difference"].ravel().tolist()))
    return out


def run_attention_change(db: str | Path, run_id: str, method: str = Method.ATTENTION) -> int:
    """Compute and store the comparisons of a run; returns how many were stored."""
    records = change_records(queries.group_maps(db, run_id, method), run_id, method)
    StoreWriter(db).write_attention_changes(records)
    return len(records)
