"""Summaries of baseline-to-variant map comparisons: pure functions of a table with
columns answer_change, correctness_change, js_divergence, pearson, cosine."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu

from vocabulary import AnswerChange, CorrectnessChange

METRICS = ("js_divergence", "pearson", "cosine")
CHANGE_TYPES = (AnswerChange.YES_TO_NO, AnswerChange.NO_TO_YES, CorrectnessChange.CORRECT_TO_WRONG,
                CorrectnessChange.WRONG_TO_CORRECT, AnswerChange.UNCHANGED)


def answer_change(baseline: str, variant: str) -> AnswerChange:
    if baseline == variant:
        return AnswerChange.UNCHANGED
    if {baseline, variant} == {"yes", "no"}:
        return AnswerChange.YES_TO_NO if baseline == "yes" else AnswerChange.NO_TO_YES
    return AnswerChange.OTHER  # an uncertain answer on one side


def correctness_change(baseline_correct: bool, variant_correct: bool) -> CorrectnessChange:
    if baseline_correct == variant_correct:
        return CorrectnessChange.UNCHANGED
    return CorrectnessChange.CORRECT_TO_WRONG if baseline_correct else CorrectnessChange.WRONG_TO_CORRECT


def by_change_type(changes: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Change type -> n and the mean and population SD of each metric. A variant counts under
    its answer change (yes→no, no→yes) and its correctness change (correct→wrong,
    wrong→correct); "unchanged" is a variant whose answer did not change."""
    column = {AnswerChange: "answer_change", CorrectnessChange: "correctness_change"}
    groups = {str(kind): changes[column[type(kind)]] == kind for kind in CHANGE_TYPES}
    out = {}
    for name, mask in groups.items():
        subset = changes[mask]
        row: dict[str, float] = {"n": int(len(subset))}
        for metric in METRICS:
            values = subset[metric].dropna().to_numpy(dtype=float)
            row[f"{metric}_mean"] = float(values.mean()) if len(values) else None
            row[f"{metric}_std"] = float(values.std(ddof=0)) if len(values) else None
        out[name] = row
    return out


def mann_whitney(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Two-sided Mann–Whitney U of two samples (None where either is empty)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) == 0 or len(b) == 0:
        return {"n_a": len(a), "n_b": len(b), "u": None, "p_value": None}
    result = mannwhitneyu(a, b, alternative="two-sided")
    return {"n_a": len(a), "n_b": len(b), "u": float(result.statistic), "p_value": float(result.pvalue)}


def change_tests(changes: pd.DataFrame, metric: str = "js_divergence") -> dict[str, dict[str, Any]]:
    """Mann–Whitney U on `metric`: correct→wrong vs wrong→correct, and changed vs unchanged answers."""
    values = changes[metric]
    return {
        "correct→wrong vs wrong→correct": mann_whitney(values[changes["correctness_change"] == CorrectnessChange.CORRECT_TO_WRONG],
                                                       values[changes["correctness_change"] == CorrectnessChange.WRONG_TO_CORRECT]),
        "changed vs unchanged": mann_whitney(values[changes["answer_change"] != AnswerChange.UNCHANGED],
                                             values[changes["answer_change"] == AnswerChange.UNCHANGED]),
    }


def change_distribution(changes: pd.DataFrame, metric: str = "js_divergence") -> pd.DataFrame:
    """A box plot's numbers of `metric` per answer change, drawn from these instead of from every
    comparison: answer_change, n, min, q1, median, q3, max (quartiles by linear interpolation, as
    numpy's percentile and Vega-Lite's box plot compute them; missing values left out; an answer
    change with no value left out)."""
    rows = []
    for change, values in changes.groupby("answer_change", observed=True)[metric]:
        kept = values.dropna().to_numpy(dtype=float)
        if len(kept):
            q1, median, q3 = np.percentile(kept, [25, 50, 75])
            rows.append({"answer_change": str(change), "n": len(kept), "min": float(kept.min()), "q1": float(q1),
                         "median": float(median), "q3": float(q3), "max": float(kept.max())})
    return pd.DataFrame(rows, columns=["answer_change", "n", "min", "q1", "median", "q3", "max"])
