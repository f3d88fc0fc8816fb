"""The phrasing-sensitivity report of a run, from its tables: a dict (JSON) or Markdown. Pure: the
callers fetch the tables from the store."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd

from compute.metrics.attention_change import by_change_type, change_tests
from compute.metrics.phrasing import accuracy_by, group_table, mcnemar_by_category, most_sensitive_groups


class ReportError(ValueError):
    pass


def phrasing_report(rows: pd.DataFrame, changes: pd.DataFrame, run_id: str, top: int = 10) -> dict[str, Any]:
    """The headline figures and tables of a phrasing run: `rows` one per answered variant
    (store.queries.phrasing_rows), `changes` its baseline-to-variant map comparisons
    (store.queries.attention_changes; empty when none were stored). The CLI's `report` and the
    dashboard's phrasing page both show this."""
    if rows.empty:
        raise ReportError(f"run {run_id!r} has no answered variant groups (rows with group_id and "
                          "variant_index); import some with `python -m compute import-results`")
    groups = group_table(rows)
    baseline = rows[rows["variant_index"] == 0]
    return {
        "run": run_id,
        "groups": len(groups),
        "variants": int((rows["variant_index"] != 0).sum()),
        "baseline_accuracy": float(baseline["correct"].mean()) if len(baseline) else None,
        "consistency_mean": float(groups["consistency"].mean()),
        "consistency_std": float(groups["consistency"].std(ddof=0)),  # population SD over groups
        "fully_consistent_groups": int((groups["consistency"] == 1).sum()),
        "groups_with_changes": int((groups["flips"].fillna(0) > 0).sum()),
        "flip_rate_mean": _number(groups["flip_rate"].mean()),
        "accuracy_by_strategy": _by_label(accuracy_by(rows.fillna({"strategy": "(none)"}), "strategy"), "strategy"),
        "accuracy_by_category": _by_label(accuracy_by(rows.fillna({"strategy_category": "other"}),
                                                      "strategy_category"), "strategy_category"),
        "mcnemar_vs_baseline": _records(mcnemar_by_category(rows.fillna({"strategy_category": "other"}))),
        "most_sensitive_groups": _records(most_sensitive_groups(groups, top)),
        **_attention_change(changes, top),
    }


def _attention_change(changes: pd.DataFrame, top: int) -> dict[str, Any]:
    if changes.empty:
        return {"attention_change": {}, "attention_change_tests": {}, "most_attention_sensitive": []}
    sensitive = changes.head(top)[["item_id", "group_id", "question", "baseline_question", "answer_change",
                                   "js_divergence", "pearson"]]
    return {"attention_change": by_change_type(changes), "attention_change_tests": change_tests(changes),
            "most_attention_sensitive": _records(sensitive)}


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _by_label(table: pd.DataFrame, column: str) -> dict[str, dict[str, float]]:
    return {str(r[column]): {"accuracy": float(r["accuracy"]), "n": int(r["n"]), "ci_low": float(r["ci_low"]),
                             "ci_high": float(r["ci_high"])} for _, r in table.iterrows()}


def _records(table: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(table.replace({np.nan: None}).to_json(orient="records"))


def to_markdown(report: dict[str, Any]) -> str:
    def pct(x):
        return "n/a" if x is None else f"{x:.1%}"

    lines = [f"# Phrasing sensitivity: run `{report['run']}`", "",
             f"- groups: {report['groups']}, variants: {report['variants']}",
             f"- baseline accuracy: {pct(report['baseline_accuracy'])}",
             f"- group consistency: mean {report['consistency_mean']:.3f}, SD {report['consistency_std']:.3f} "
             f"(population); fully consistent groups: {report['fully_consistent_groups']}; "
             f"groups with changes: {report['groups_with_changes']}",
             f"- mean flip rate against the baseline answer: {pct(report['flip_rate_mean'])}", ""]
    for title, key in (("Accuracy by strategy", "accuracy_by_strategy"), ("Accuracy by category", "accuracy_by_category")):
        lines += [f"## {title}", "", "| label | accuracy | 95% CI | n |", "|---|---|---|---|"]
        lines += [f"| {label} | {pct(v['accuracy'])} | {pct(v['ci_low'])} – {pct(v['ci_high'])} | {v['n']} |"
                  for label, v in report[key].items()]
        lines.append("")
    lines += ["## Each category against the baseline (exact McNemar, Holm-adjusted)", "",
              "| category | pairs | baseline right, variant wrong | baseline wrong, variant right | p | p (Holm) |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {r['category']} | {r['n_pairs']} | {r['baseline_right_variant_wrong']} | "
              f"{r['baseline_wrong_variant_right']} | {r['p_value']:.3g} | {r['p_holm']:.3g} |"
              for r in report["mcnemar_vs_baseline"]]
    lines += ["", "## Most sensitive groups", "", "| group | condition | consistency | flip rate | n |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['group_id']} | {r['condition'] or ''} | {r['consistency']:.2f} | {pct(r['flip_rate'])} | {r['n']} |"
              for r in report["most_sensitive_groups"]]
    if report["attention_change"]:
        lines += ["", "## Attention change against the baseline map", "",
                  "| change | n | JS divergence | Pearson | cosine |", "|---|---|---|---|---|"]
        for name, r in report["attention_change"].items():
            cells = [f"{r[m + '_mean']:.3f} ± {r[m + '_std']:.3f}" if r[m + "_mean"] is not None else "n/a"
                     for m in ("js_divergence", "pearson", "cosine")]
            lines.append(f"| {name} | {r['n']} | " + " | ".join(cells) + " |")
        lines += ["", "Mann–Whitney U on the JS divergence (two-sided):", ""]
        for name, t in report["attention_change_tests"].items():
            p = "n/a" if t["p_value"] is None else f"{t['p_value']:.3g}"
            lines.append(f"- {name}: n = {t['n_a']} vs {t['n_b']}, p = {p}")
    return "\n".join(lines) + "\n"
