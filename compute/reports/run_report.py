"""The report of any run: accuracy and n overall and per condition with 95% Wilson intervals,
plus the phrasing report's figures for a run with variant groups. Pure: the caller fetches
the counts and rows from the store (store.queries.condition_counts, phrasing_rows and
attention_changes)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from compute.metrics.calibration import summary, summary_by
from compute.reports.accuracy import overall_accuracy, with_accuracy
from compute.reports.phrasing import phrasing_report, to_markdown

UNKNOWN_CONDITION = "(unknown)"  # the key of items whose condition is not known


def accuracy_report(counts: pd.DataFrame, run_id: str, study: str | None = None,
                    n_failed: int | None = None) -> dict[str, Any]:
    """`counts` as store.queries.condition_counts returns them (one row per condition and
    ground truth, and one with ground_truth "all" per condition). Accuracy is None where n is 0."""
    per = counts[counts["ground_truth"] == "all"].copy()
    per["condition"] = per["condition"].astype(object).where(per["condition"].notna(), UNKNOWN_CONDITION)
    n, n_correct = int(per["n"].sum()), int(per["n_correct"].sum())
    accuracy, ci = overall_accuracy(n_correct, n)
    table = with_accuracy(per)
    return {
        "run": run_id,
        "study": study,
        "n": n,
        "n_correct": n_correct,
        "n_failed": n_failed,
        "accuracy": accuracy,
        "ci_low": None if ci is None else ci[0],
        "ci_high": None if ci is None else ci[1],
        "accuracy_by_condition": {
            str(r["condition"]): {"accuracy": _number(r["accuracy"]), "n": int(r["n"]),
                                  "ci_low": _number(r["ci_low"]), "ci_high": _number(r["ci_high"])}
            for _, r in table.iterrows()},
    }


def agreement_report(agreement: dict[str, int]) -> dict[str, Any]:
    """store.queries.answer_agreement's counts with their shares: how often the extracted
    answer agrees with the P(yes) answer, and how many answers are uncertain (None: no basis)."""
    compared, ok = agreement["n_compared"], agreement["n_ok"]
    return {**agreement, "agreement": agreement["n_agree"] / compared if compared else None,
            "uncertain_share": agreement["n_uncertain"] / ok if ok else None}


def calibration_report(probabilities: pd.DataFrame, n_without: int) -> dict[str, Any]:
    """ECE, Brier score and AUROC with its interval, over all and per condition, of
    store.slices.probability_rows; `n_without`: the answered questions that have no P(yes)."""
    if probabilities.empty:
        return {"n_without_p_yes": n_without, "overall": None, "by_condition": {}}
    rows = probabilities.assign(condition=probabilities["condition"].astype(object).where(
        probabilities["condition"].notna(), UNKNOWN_CONDITION))
    overall = summary(rows["p_yes"].to_numpy(), rows["truth"].to_numpy(bool))
    by = summary_by(rows, ["condition"]).set_index("condition")
    return {"n_without_p_yes": n_without, "overall": _figures(overall),
            "by_condition": {str(c): _figures(r) for c, r in by.iterrows()}}


def _figures(values) -> dict[str, Any]:
    return {k: int(v) if k in ("n", "n_yes") else _number(v) for k, v in dict(values).items()}


def run_report(counts: pd.DataFrame, rows: pd.DataFrame | None, changes: pd.DataFrame | None, run_id: str,
               study: str | None = None, n_failed: int | None = None, top: int = 10,
               agreement: dict[str, int] | None = None, methods: pd.DataFrame | None = None) -> dict[str, Any]:
    """accuracy_report, and for a run whose `rows` (store.queries.phrasing_rows) hold variant
    groups, every key of phrasing_report too (`changes`: store.queries.attention_changes).
    `agreement` (store.queries.answer_agreement) adds `answer_agreement`; `methods`
    (store.queries.method_figures) adds `maps_by_method`, the faithfulness figures per map method
    and condition (the pointing game and in-lesion mass where items have boxes or masks)."""
    report = accuracy_report(counts, run_id, study, n_failed)
    if agreement is not None:
        report["answer_agreement"] = agreement_report(agreement)
    if methods is not None and not methods.empty:
        report["maps_by_method"] = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
                                    for r in methods.astype(object).to_dict("records")]
    if rows is not None and not rows.empty:
        report.update(phrasing_report(rows, changes if changes is not None else pd.DataFrame(), run_id, top))
    return report


def is_phrasing(report: dict[str, Any]) -> bool:
    return "groups" in report


def report_markdown(report: dict[str, Any]) -> str:
    """The phrasing report's Markdown for a phrasing run, the accuracy section for every run, and
    the map methods' figures where the run has them."""
    head = to_markdown(report) + "\n" if is_phrasing(report) else f"# Accuracy: run `{report['run']}`\n\n"
    return (head + accuracy_markdown(report, heading=is_phrasing(report)) + calibration_markdown(report)
            + methods_markdown(report))


def calibration_markdown(report: dict[str, Any]) -> str:
    calibration = report.get("calibration")
    if not calibration:
        return ""
    if not calibration["by_condition"]:
        why = "no P(yes) was stored" if calibration["n_without_p_yes"] else "no yes/no question with a ground truth"
        return f"\n## Calibration\n\nNot available: {why}.\n"

    def num(x):
        return "n/a" if x is None else f"{x:.3f}"

    lines = ["", "## Calibration", "", "ECE over ten P(yes) bins; AUROC with its 95% stratified bootstrap interval.",
             "",
             "| condition | n | ECE | Brier | AUROC | 95% CI |", "|---|---|---|---|---|---|"]
    for name, r in {"(all)": calibration["overall"], **calibration["by_condition"]}.items():
        lines.append(f"| {name} | {r['n']} | {num(r['ece'])} | {num(r['brier'])} | {num(r['auroc'])} | "
                     f"{num(r['auroc_low'])} – {num(r['auroc_high'])} |")
    if calibration["n_without_p_yes"]:
        lines += ["", f"{calibration['n_without_p_yes']} answered questions without a P(yes) are left out."]
    return "\n".join(lines) + "\n"


def methods_markdown(report: dict[str, Any]) -> str:
    rows = report.get("maps_by_method")
    if not rows:
        return ""

    def num(x, form):
        return "n/a" if x is None else format(x, form)

    lines = ["", "## Maps by method", "",
             "| method | condition | n | with lesion | pointing game | in-lesion mass | deletion ratio | sink mass |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['condition']} | {r['n']} | {r['n_lesion']} | {num(r['hit_rate'], '.0%')} | "
                     f"{num(r['lesion_ratio'], '.2f')} | {num(r['deletion_ratio'], '.2f')} | "
                     f"{num(r['sink_mass'], '.3f')} |")
    return "\n".join(lines) + "\n"


def accuracy_markdown(report: dict[str, Any], heading: bool = False) -> str:
    """The overall accuracy and a per-condition table, under an "Accuracy" heading if asked."""
    def pct(x):
        return "n/a" if x is None else f"{x:.1%}"

    def ci(low, high):
        return "n/a" if low is None else f"{pct(low)} – {pct(high)}"

    lines = ["## Accuracy", ""] if heading else []
    failed = f", failed: {report['n_failed']}" if report.get("n_failed") is not None else ""
    lines += ([f"- study: {report['study']}"] if report.get("study") else []) + [
        f"- answered: {report['n']}{failed}",
        f"- accuracy: {pct(report['accuracy'])} (95% CI {ci(report['ci_low'], report['ci_high'])})"]
    if report.get("answer_agreement"):
        a = report["answer_agreement"]
        lines += [f"- extracted answer agrees with P(yes): {pct(a['agreement'])} ({a['n_agree']}/{a['n_compared']}); "
                  f"uncertain answers: {pct(a['uncertain_share'])} ({a['n_uncertain']}/{a['n_ok']})"]
    lines += ["", "| condition | accuracy | 95% CI | n |", "|---|---|---|---|"]
    lines += [f"| {name} | {pct(v['accuracy'])} | {ci(v['ci_low'], v['ci_high'])} | {v['n']} |"
              for name, v in report["accuracy_by_condition"].items()]
    return "\n".join(lines) + "\n"


def _number(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
