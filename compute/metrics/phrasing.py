"""Statistics of a phrasing study: pure functions of a table with one row per asked
variant (columns group_id, variant_index, strategy, strategy_category, answer, correct,
and optionally condition and p_yes). `variant_index` 0 is the group's baseline.

Definitions (kept from the original study, so its tables can be compared):
- group consistency: the share of the group's answers equal to its majority answer;
- flip rate: the share of a group's variants whose answer differs from the baseline's.
A group asked its baseline more than once (repeated source questions) pairs its variants
with its first baseline row; every row still counts in the accuracies.
"""

from __future__ import annotations

import pandas as pd

from compute.metrics.stats import holm, mcnemar_exact, wilson_interval


def group_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per group: n, consistency, majority and baseline answers, flip rate, accuracy."""
    out = []
    for group_id, g in rows.groupby("group_id", sort=False):
        answers = g["answer"].tolist()
        counts = pd.Series(answers).value_counts()
        baseline = g[g["variant_index"] == 0]
        variants = g[g["variant_index"] != 0]
        base_answer = baseline["answer"].iloc[0] if len(baseline) else None
        out.append({
            "group_id": group_id,
            "condition": g["condition"].iloc[0] if "condition" in g else None,
            "n": len(g),
            "consistency": counts.iloc[0] / len(g),
            "majority_answer": counts.index[0],
            "baseline_answer": base_answer,
            "baseline_correct": bool(baseline["correct"].iloc[0]) if len(baseline) else None,
            "flips": int((variants["answer"] != base_answer).sum()) if base_answer is not None else None,
            "flip_rate": float((variants["answer"] != base_answer).mean())
            if base_answer is not None and len(variants) else float("nan"),
            "accuracy": float(g["correct"].mean()),
        })
    return pd.DataFrame(out)


def accuracy_by(rows: pd.DataFrame, column: str) -> pd.DataFrame:
    """Accuracy per value of `column`, with n and a 95% Wilson interval."""
    grouped = rows.groupby(column, dropna=False)["correct"].agg(["size", "sum"]).reset_index()
    grouped.columns = [column, "n", "n_correct"]
    grouped["n_correct"] = grouped["n_correct"].astype(int)
    grouped["accuracy"] = grouped["n_correct"] / grouped["n"]
    grouped["ci_low"], grouped["ci_high"] = wilson_interval(grouped["n_correct"], grouped["n"])
    return grouped.sort_values(["accuracy", column]).reset_index(drop=True)


def mcnemar_by_category(rows: pd.DataFrame) -> pd.DataFrame:
    """Per category, an exact McNemar test of variant correctness against the paired
    baseline's: b = baseline right and variant wrong, c = the reverse; p is the two-sided
    binomial test of b against b + c at 1/2. Holm-adjusted across categories."""
    baselines = (rows[rows["variant_index"] == 0].drop_duplicates("group_id")
                 .set_index("group_id")["correct"].astype(bool))
    variants = rows[(rows["variant_index"] != 0) & rows["group_id"].isin(baselines.index)]
    out = []
    for category, g in variants.groupby("strategy_category"):
        base = baselines.loc[g["group_id"]].to_numpy()
        var = g["correct"].astype(bool).to_numpy()
        b, c = int((base & ~var).sum()), int((~base & var).sum())
        p = mcnemar_exact(b, c)
        out.append({"category": category, "n_pairs": len(g), "baseline_right_variant_wrong": b,
                    "baseline_wrong_variant_right": c, "p_value": float(p)})
    table = pd.DataFrame(out, columns=["category", "n_pairs", "baseline_right_variant_wrong",
                                       "baseline_wrong_variant_right", "p_value"])
    table["p_holm"] = holm(table["p_value"]) if len(table) else []
    return table


def most_sensitive_groups(groups: pd.DataFrame, top: int = 10) -> pd.DataFrame:
    """Lowest consistency first, then most flips."""
    return groups.sort_values(["consistency", "flip_rate"], ascending=[True, False]).head(top).reset_index(drop=True)
