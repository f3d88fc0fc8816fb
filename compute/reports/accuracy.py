"""Accuracy with its 95% Wilson interval, from the counts the store returns."""

from __future__ import annotations

import pandas as pd

from compute.metrics.stats import wilson_interval


def with_accuracy(counts: pd.DataFrame) -> pd.DataFrame:
    """`counts` (columns n and n_correct, one row per group) plus accuracy, ci_low and ci_high;
    NaN where n is 0."""
    out = counts.copy()
    n = out["n"].astype(float)
    out["accuracy"] = (out["n_correct"] / n).where(n > 0)
    out["ci_low"], out["ci_high"] = wilson_interval(out["n_correct"], out["n"])
    return out


def overall_accuracy(n_correct: int, n: int) -> tuple[float | None, tuple[float, float] | None]:
    """(accuracy, (low, high)) of n_correct out of n; (None, None) when n is 0."""
    if not n:
        return None, None
    low, high = wilson_interval(n_correct, n)
    return n_correct / n, (float(low), float(high))
